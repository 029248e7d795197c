"""A real Cinder (29.x) without services, for the sealed backup drivers.

Once per test process: Cinder's objects, its configuration (SQLite in memory,
migrated by ``cinder.db.migration.db_sync()``), an oslo.messaging ``fake:/``
transport for the drivers' notifications. Per test: a backup directory, a
file key store holding keyring ``cinder-backup``, fresh ``[sealedmeta]``
overrides, and a fresh per-process Sealer cache.
"""

import tempfile
import warnings

import pytest

warnings.filterwarnings("ignore", message=".*Eventlet is deprecated.*")

from oslo_config import cfg  # noqa: E402
import oslo_messaging  # noqa: E402
from oslo_messaging import transport as om_transport  # noqa: E402

from cinder import objects  # noqa: E402

objects.register_all()

from cinder.backup import manager as backup_manager  # noqa: E402,F401
from cinder import context as cinder_context  # noqa: E402
from cinder import rpc  # noqa: E402
from cinder.db import migration  # noqa: E402

from sealedmeta import FileKeyStore  # noqa: E402
from sealedmeta.cinder import options  # noqa: E402

from tests.cinder import helpers  # noqa: E402

CONF = cfg.CONF
_STATE = tempfile.mkdtemp(prefix="sealedmeta-cinder-state-")


def _setup_cinder():
    CONF([], project="cinder", default_config_files=[])
    CONF.set_override("state_path", _STATE)
    CONF.set_override("connection", "sqlite://", group="database")
    # rpc.init() reads transport_url, which oslo.messaging registers on use.
    CONF.register_opts(om_transport._transport_opts)
    CONF.set_override("transport_url", "fake:/")
    oslo_messaging.get_notification_transport(CONF)  # registers its group
    CONF.set_override("driver", ["test"], group="oslo_messaging_notifications")
    CONF.set_override("backup_driver", helpers.SEALED_POSIX)
    # Small chunks: a 320 KiB volume makes five chunk objects.
    CONF.set_override("backup_file_size", helpers.CHUNK)
    CONF.set_override("backup_sha_block_size_bytes", helpers.SHA_BLOCK)
    CONF.set_override("backup_enable_progress_timer", False)
    rpc.init(CONF)
    migration.db_sync()


_setup_cinder()
# Registers [sealedmeta] on Cinder's CONF (the legacy-name mapping is made
# when a sealed driver is built, as Cinder's backup manager builds it).
from sealedmeta.cinder import posix as sealed_posix  # noqa: E402,F401


@pytest.fixture
def ctxt():
    return cinder_context.get_admin_context()


@pytest.fixture
def keys(tmp_path):
    """The file key store of the test, with keyring cinder-backup."""
    path = str(tmp_path / "keys")
    store = FileKeyStore(path)
    store.create_keyring("cinder-backup")
    return store


@pytest.fixture(autouse=True)
def sealedmeta_conf(tmp_path, keys):
    backups = tmp_path / "backups"
    backups.mkdir()
    CONF.set_override("backup_posix_path", str(backups))
    CONF.set_override("key_repository", keys.path, group="sealedmeta")
    options.clear_sealer_cache()
    yield
    for name in ("key_repository", "on_invalid", "legacy_backups", "cache_ttl",
                 "refresh_interval", "max_metadata_object_size"):
        CONF.clear_override(name, group="sealedmeta")
    CONF.clear_override("backup_posix_path")
    options.clear_sealer_cache()
    # One database for the process: no backup outlives its test's files.
    admin = cinder_context.get_admin_context()
    for backup in objects.BackupList.get_all(admin):
        backup.destroy()


@pytest.fixture
def cloud(ctxt, tmp_path):
    return helpers.Cloud(ctxt, str(tmp_path / "volumes"))


def pytest_sessionfinish(session, exitstatus):
    import shutil
    shutil.rmtree(_STATE, ignore_errors=True)
