"""The ``[sealedmeta]`` options in Cinder's configuration, and the per-process
Sealer of the sealed backup drivers. Imports nothing from Cinder.

The options of one store live in that store's options module
(:mod:`sealedmeta.cinder.swift_options`); :func:`register_opts` and
:func:`list_opts` gather them."""

import threading

from oslo_config import cfg

from sealedmeta import conf as sm_conf
from sealedmeta import events
from sealedmeta import sealer as sm_sealer
from sealedmeta.cinder import swift_options

GROUP = sm_conf.GROUP

FAIL = "fail"
DROP = "drop"
ON_INVALID = (FAIL, DROP)

TRUST = "trust"
DROP_GLANCE = "drop-glance"
REJECT = "reject"
LEGACY_BACKUPS = (TRUST, DROP_GLANCE, REJECT)

cinder_opts = [
    cfg.StrOpt("on_invalid", default=FAIL,
               choices=[(FAIL, "refuse the restore (InvalidBackup) before any"
                               " data is written"),
                        (DROP, "restore the data, but none of the backup's"
                               " metadata: the target volume's Glance metadata"
                               " is cleared and it is marked not bootable")],
               help="What a restore does with a backup whose sealed metadata"
                    " cannot be trusted: it fails authentication, was sealed"
                    " for another backup, or is missing or unsealed although"
                    " the backup was made by a sealed driver."),
    cfg.StrOpt("legacy_backups", default=TRUST,
               choices=[(TRUST, "restore their metadata as the stock driver"
                                " does, with a WARNING per restore"),
                        (DROP_GLANCE, "restore their user metadata and name,"
                                      " but no Glance metadata: the target's"
                                      " Glance metadata is cleared and it is"
                                      " marked not bootable"),
                        (REJECT, "refuse to restore them (InvalidBackup)")],
               help="What a restore does with a backup made before sealing"
                    " (by the stock driver class, recorded in the backup's"
                    " 'service' field) whose metadata is not sealed. Such"
                    " metadata cannot be authenticated; 'sealedmeta cinder"
                    " reseal' seals it from the Cinder database."),
    cfg.BoolOpt("refuse_permissive_policy", default=False,
                help="Refuse to start (the sealed backup drivers and"
                     " 'sealedmeta cinder reseal') when Cinder's effective"
                     " policy lets a non-admin change a volume's Glance image"
                     " metadata or bootable flag, which sealing cannot"
                     " protect. When false, such rules are logged as errors"
                     " at start."),
    cfg.IntOpt("max_chunk_size", default=0, min=0,
               help="Largest data object of a backup a restore reads, and"
                    " the most one may decompress to, in bytes, where a"
                    " tenant can write the objects (the sealed Swift class:"
                    " with backup_swift_auth = per_user they are in the"
                    " tenant's own account). A larger object is refused"
                    " from the size Swift reports, before its body is read."
                    " 0: four times the driver's chunk size"
                    " (backup_swift_object_size); set it when backups were"
                    " made with a chunk size more than four times today's."),
]


def register_opts(conf):
    """Register the ``[sealedmeta]`` options on *conf* (Cinder's CONF), and
    each store's (``[sealedmeta_swift_service_user]``).

    Only the ``[sealedmeta]`` group of :mod:`sealedmeta.conf` is registered:
    its ``[coordination] backend_url`` collides with Cinder's own option of
    that name (``DuplicateOptError``), and drivers never change key states,
    which is all the coordination lock is for.
    """
    conf.register_opts(sm_conf.sealedmeta_opts, group=GROUP)
    conf.register_opts(cinder_opts, group=GROUP)
    swift_options.register_opts(conf)
    events.register_opts(conf)


def list_opts():
    """For oslo-config-generator, namespace ``sealedmeta.cinder``: the
    options the drivers read beyond those of the namespace ``sealedmeta``
    (:func:`sealedmeta.conf.list_opts`), each store's from its own module."""
    return [(GROUP, cinder_opts)] + swift_options.list_opts()


_lock = threading.Lock()
_sealers = {}


def _cache_key(conf):
    group = conf[GROUP]
    return (id(conf),) + tuple(
        (opt.dest, repr(group[opt.dest])) for opt in sm_conf.sealedmeta_opts)


def get_sealer(conf):
    """The process's Sealer for *conf*'s ``[sealedmeta]`` settings.

    Built once with :meth:`Sealer.from_config` and kept, so its keyring cache
    (``cache_ttl``) and keys serve every backup and restore of the process. A
    changed setting (e.g. a reloaded configuration) builds a new one.
    """
    key = _cache_key(conf)
    sealer = _sealers.get(key)
    if sealer is None:
        with _lock:
            sealer = _sealers.get(key)
            if sealer is None:
                sealer = sm_sealer.Sealer.from_config(conf)
                _sealers[key] = sealer
    return sealer


def clear_sealer_cache():
    """Forget the cached Sealers (tests; after rotating a file key store by
    hand). Closes their key stores."""
    with _lock:
        sealers = list(_sealers.values())
        _sealers.clear()
    for sealer in sealers:
        try:
            sealer.store.close()
        except Exception:  # noqa: S110 - closing is best effort
            pass
