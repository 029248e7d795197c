"""The Cinder adapter's sources of envelopes for the scanning commands
(``sealedmeta.sources`` plug-ins): a Ceph backup pool (``--ceph-pool``)
and the backups of a Cinder database (``--scan-cinder``).

Imports nothing from Cinder, nor the rados bindings: a pool and a
database are read only when a command names one.
"""

from sealedmeta import admin
from sealedmeta import cli_common
from sealedmeta import exceptions
from sealedmeta import sources
from sealedmeta.cinder import cli as cinder_cli


class CephPoolSource(sources.Source):
    """``--ceph-pool POOL`` (with ``--ceph-conf``, ``--ceph-user``): the
    ``backup.<id>.meta`` objects of Ceph backup pools
    (:class:`sealedmeta.cinder.ceph_pool.CephPool`)."""

    option = "--ceph-pool"
    metavar = "POOL"

    @property
    def errors(self):
        from sealedmeta.cinder import ceph_pool
        return (ceph_pool.CephPoolError,)

    def add_arguments(self, parser, help=None):
        parser.add_argument("--ceph-pool", metavar="POOL", action="append",
                            default=[],
                            help=help or "Also scan the backup.<id>.meta"
                                         " objects of this Ceph backup pool,"
                                         " through librados (repeatable).")
        parser.add_argument("--ceph-conf", metavar="FILE", default=None,
                            help="Ceph configuration file for --ceph-pool"
                                 " (default: librados' own search).")
        parser.add_argument("--ceph-user", metavar="ID", default=None,
                            help="Ceph client id for --ceph-pool, e.g."
                                 " cinder-backup (default: admin); its keyring"
                                 " is found through the configuration file.")

    def given(self, parsed_args):
        return bool(parsed_args.ceph_pool)

    def build(self, parsed_args, conf):
        if not parsed_args.ceph_pool:
            return []
        from sealedmeta.cinder import ceph_pool
        return [ceph_pool.CephPool(pool, parsed_args.ceph_conf,
                                   parsed_args.ceph_user,
                                   conf.sealedmeta.max_envelope_size,
                                   conf.sealedmeta.max_metadata_object_size)
                for pool in parsed_args.ceph_pool]


class CinderDatabaseSource(sources.Source):
    """``--scan-cinder CINDER_CONF``: every backup of that Cinder database,
    read through its configured driver
    (:class:`sealedmeta.cinder.audit.CinderSource`); :attr:`settle` is the
    window of that cinder.conf's ``[sealedmeta]`` (the agents')."""

    option = "--scan-cinder"
    metavar = "CINDER_CONF"

    def add_arguments(self, parser, help=None):
        parser.add_argument("--scan-cinder", metavar="CINDER_CONF",
                            help=help or "Also scan every backup of the Cinder"
                                         " database this cinder.conf names,"
                                         " each read through its configured"
                                         " backup driver.")

    def given(self, parsed_args):
        return bool(parsed_args.scan_cinder)

    def build(self, parsed_args, conf):
        self.settle = None
        if not parsed_args.scan_cinder:
            return []
        try:
            from sealedmeta.cinder import audit as cinder_audit
        except ImportError:
            raise cli_common.CommandError(
                cinder_cli.no_cinder("--scan-cinder")) from None
        self.settle = admin.settle_window(
            cinder_cli.load_cinder_conf([parsed_args.scan_cinder]))
        try:
            return [cinder_audit.CinderSource(conf.sealedmeta.max_envelope_size)]
        except exceptions.SetupError as exc:
            raise cli_common.CommandError(str(exc)) from None
