"""``sealedmeta keyring status``: each version's state and the times that
decide what may be done with it next."""

from cliff import columns
from cliff import lister

from sealedmeta import admin
from sealedmeta import audit
from sealedmeta import keyring_status
from sealedmeta import sources as sm_sources
from sealedmeta.cmd import keyring as keyring_cmd

# The sources whose backups the status counts (sealedmeta.sources plug-ins).
STATUS_SOURCES = ("cinder-database",)


class Blank(columns.FormattableColumn):
    """A value that may be absent: empty in a table, null in JSON."""

    def human_readable(self):
        return "" if self._value is None else str(self._value)


def _iso(ts):
    return Blank(None if ts is None else keyring_cmd.iso(ts))


class KeyringStatus(lister.Lister):
    """Show each version of a keyring with the times that govern it.

    For every version: its state; when it was created; when it stopped
    being active (deactivated); when the settle window (cache_ttl +
    stale_grace) after that ends, before which key retire and key destroy
    refuse it, and the seconds left until then; when a version pending
    destruction is destroyed (empty while none is). With --scan-cinder
    CINDER_CONF, also how many backups of that Cinder database have their
    metadata sealed under each version (read through the configured backup
    driver, as key destroy --scan-cinder reads them).
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="KEYRING", help="Keyring.")
        self.sources = sm_sources.load(STATUS_SOURCES)
        for source in self.sources:
            source.add_arguments(
                parser, help="Count the backups of the Cinder database"
                             " this cinder.conf names under each version.")
        return parser

    def take_action(self, parsed_args):
        store = self.app.store
        ring = store.get_keyring(parsed_args.name)
        report = None
        sources, _ = sm_sources.build(self.sources, parsed_args, self.app.conf)
        if sources:
            report = audit.Auditor(
                store, self.app.conf.sealedmeta.max_envelope_size).run(
                    [], sources)
            ring = store.get_keyring(parsed_args.name)   # as it is now
        rows = keyring_status.status(ring, admin.settle_window(self.app.conf),
                                     report=report)
        names = ("version", "key_id", "state", "created", "deactivated",
                 "settle_ends", "settle_left_seconds", "pending_destruction")
        if report is not None:
            names += ("backups",)
        return names, [
            (r.number, r.key_id, r.state, _iso(r.created), _iso(r.deactivated),
             _iso(r.settle_ends), Blank(r.settle_left),
             _iso(r.pending_destruction))
            + ((r.backups,) if report is not None else ())
            for r in rows]
