"""oslo.config options of sealedmeta and ``list_opts()`` for the generator."""

import os

from oslo_config import cfg

from sealedmeta import envelope
from sealedmeta import events
from sealedmeta import safefs

GROUP = "sealedmeta"

#: Largest Cinder backup metadata object read (``max_metadata_object_size``).
#: Cinder's are kilobytes: a chunk list entry is about 290 bytes, so 8 MiB
#: lists some 28 000 chunks (1.4 TB at Swift's and S3's default 50 MB
#: objects).
DEFAULT_MAX_METADATA_OBJECT_SIZE = 8 * 1024 * 1024
COORDINATION_GROUP = "coordination"
# Each key store's options, by its options module's list_opts(): this
# module imports no key store.
KEYSTORE_OPTS_NAMESPACE = "sealedmeta.keystore_opts"

sealedmeta_opts = [
    cfg.StrOpt("keystore", default="file",
               help="Key store plug-in (entry point in the sealedmeta.keystores "
                    "namespace): 'file' (embedded, a local directory) or "
                    "'barbican'."),
    cfg.StrOpt("key_repository",
               sample_default="$XDG_DATA_HOME/sealedmeta/keys",
               help="Directory of the file key store. Must be private to the "
                    "service user (0700). Default: sealedmeta/keys under the "
                    "user's data directory ($XDG_DATA_HOME, else "
                    "~/.local/share)."),
    cfg.StrOpt("keyring", default="cinder-backup",
               help="Keyring that seals new envelopes."),
    cfg.IntOpt("cache_ttl", default=300, min=0,
               help="Seconds a process keeps a keyring's description before "
                    "reading it again from the key store. A rotation made by "
                    "another agent is used for sealing after at most this "
                    "long; it is used for opening at once (an unknown key id "
                    "triggers a refresh)."),
    cfg.IntOpt("stale_grace", default=0, min=0,
               help="Seconds past cache_ttl for which a process keeps "
                    "sealing and opening with the keyring it read last when "
                    "the key store cannot be read (unreachable, refusing), "
                    "logging a warning and trying the store again at most "
                    "every refresh_interval. 0 (the default) fails at once. "
                    "A rotation, retirement or destruction made meanwhile "
                    "reaches this process only when the store answers "
                    "again; keys it has not used yet still need the store."),
    cfg.FloatOpt("refresh_interval", default=2.0, min=0,
                 help="Minimum seconds between two refreshes caused by "
                      "envelopes naming an unknown key, so forged envelopes "
                      "cannot flood the key store."),
    cfg.FloatOpt("user_write_timeout",
                 default=safefs.DEFAULT_USER_WRITE_TIMEOUT, min=0.1,
                 help="Seconds a write made as another user may take. Run as "
                      "root, rewrap and 'cinder reseal' replace a file another "
                      "user owns, in a directory that user can change, from a "
                      "child process that has become that user, which that "
                      "user can signal: a child that stops (SIGSTOP) is killed "
                      "at once, one still running after this long is killed "
                      "then, and that file is reported failed (it holds its "
                      "old content or the new one); the run goes on."),
    cfg.IntOpt("max_envelope_size", default=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
               min=1024, max=64 * 1024 * 1024,
               help="Largest envelope accepted, in bytes (before armour)."),
    cfg.IntOpt("max_metadata_object_size",
               default=DEFAULT_MAX_METADATA_OBJECT_SIZE, min=64 * 1024,
               help="Largest Cinder backup metadata object read, in bytes:"
                    " a chunked driver's <prefix>_metadata object or a Ceph"
                    " backup's backup.<id>.meta, by a restore, reseal,"
                    " export, 'cinder audit', 'key destroy --scan-cinder'"
                    " and 'verify' / 'rewrap' / '--ceph-pool'. A larger one"
                    " is refused as too large from the size its store"
                    " reports, before its body is read. Cinder's are"
                    " kilobytes plus about 290 bytes per chunk of the"
                    " backup: the default covers some 28 000 chunks (1.4 TB"
                    " at Swift's and S3's default 50 MB chunks). Parsing one"
                    " costs at most about twelve times this in memory."),
]


coordination_opts = [
    cfg.StrOpt("backend_url",
               sample_default="file://<directory holding key_repository>/locks",
               help="tooz backend URL of the lock taken around every keyring "
                    "state change (keyring create, rekey, key retire / "
                    "reinstate / destroy), e.g. redis://127.0.0.1:6379 or "
                    "etcd3+http://127.0.0.1:2379. Every host that changes the "
                    "same keyrings must use the same backend. Default: a "
                    "file:// lock directory 'locks' next to the file key "
                    "store's repository, which serialises processes of one "
                    "host only."),
    cfg.FloatOpt("lock_timeout", default=30.0, min=0,
                 help="Seconds to wait for a keyring's lock before refusing "
                      "the state change. The wait ends within this plus 2 "
                      "seconds even if the backend dies or stops answering "
                      "during it; a networked backend is probed every second "
                      "while waiting, so one that goes away is reported at "
                      "once."),
]


def default_key_repository():
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "sealedmeta", "keys")


def key_repository(conf):
    return conf.sealedmeta.key_repository or default_key_repository()


def default_backend_url(conf):
    """``file://`` lock directory next to the key repository (computed at run
    time, so the sample config holds no machine path)."""
    repository = os.path.abspath(os.path.expanduser(key_repository(conf)))
    return "file://" + os.path.join(os.path.dirname(repository), "locks")


def backend_url(conf):
    return conf.coordination.backend_url or default_backend_url(conf)


def register_opts(conf):
    conf.register_opts(sealedmeta_opts, group=GROUP)
    conf.register_opts(coordination_opts, group=COORDINATION_GROUP)
    events.register_opts(conf)


def list_opts():
    """Options for oslo-config-generator (namespace ``sealedmeta``), with
    those of every key store that has some (``sealedmeta.keystore_opts``
    entry points, in name order)."""
    # Loaded here: the Barbican store's options pull in castellan.
    from stevedore import extension
    stores = extension.ExtensionManager(KEYSTORE_OPTS_NAMESPACE)
    return [(GROUP, sealedmeta_opts),
            (COORDINATION_GROUP, coordination_opts)] + events.list_opts() \
        + [item for ext in sorted(stores, key=lambda e: e.name)
           for item in ext.plugin()]
