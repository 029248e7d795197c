"""Replace Cinder's stock chunked backup driver classes by the sealed ones,
before Cinder's test modules import them.

Each ``cinder.backup.drivers.<module>.<Class>`` attribute becomes the sealed
class, so a test's ``posix.PosixBackupDriver(ctxt)``, ``mock.patch.object``
on it and the manager's ``backup_driver`` lookup all reach the sealed class.
The sealed classes need a key store: a file key store in a temporary
directory, holding the ``cinder-backup`` keyring, set on Cinder's CONF in
every test's ``setUp`` (Cinder's TestCase resets CONF after each test).
"""

import atexit
import importlib
import shutil
import tempfile

# (stock module, stock class, sealed module, sealed class)
SUBSTITUTIONS = (
    ("cinder.backup.drivers.posix", "PosixBackupDriver",
     "sealedmeta.cinder.posix", "SealedPosixBackupDriver"),
    ("cinder.backup.drivers.nfs", "NFSBackupDriver",
     "sealedmeta.cinder.nfs", "SealedNFSBackupDriver"),
    ("cinder.backup.drivers.swift", "SwiftBackupDriver",
     "sealedmeta.cinder.swift", "SealedSwiftBackupDriver"),
    ("cinder.backup.drivers.s3", "S3BackupDriver",
     "sealedmeta.cinder.s3", "SealedS3BackupDriver"),
    ("cinder.backup.drivers.gcs", "GoogleBackupDriver",
     "sealedmeta.cinder.gcs", "SealedGoogleBackupDriver"),
)

_installed = []


def install():
    """Substitute the sealed classes (once per process) and return the key
    store's directory."""
    if _installed:
        return _installed[0]
    # Cinder's test package monkey-patches eventlet first: import it before
    # anything else of Cinder, as Cinder's own test discovery does.
    import cinder.tests.unit  # noqa: F401
    from cinder.tests.unit import test as cinder_test

    from sealedmeta import FileKeyStore

    top = tempfile.mkdtemp(prefix="sealedmeta-cinder-upstream-")
    atexit.register(shutil.rmtree, top, True)
    keys = top + "/keys"
    FileKeyStore(keys).create_keyring("cinder-backup")

    # Every stock module first: NFSBackupDriver must derive from the stock
    # PosixBackupDriver, as it does in a deployment.
    for stock_module, _, sealed_module, _ in SUBSTITUTIONS:
        importlib.import_module(stock_module)
        importlib.import_module(sealed_module)
    for stock_module, stock_name, sealed_module, sealed_name in SUBSTITUTIONS:
        stock = importlib.import_module(stock_module)
        sealed = getattr(importlib.import_module(sealed_module), sealed_name)
        if not issubclass(sealed, getattr(stock, stock_name)):
            raise RuntimeError("%s is not a %s.%s"
                               % (sealed_name, stock_module, stock_name))
        setattr(stock, stock_name, sealed)

    set_up = cinder_test.TestCase.setUp

    def setUp(self):
        set_up(self)
        self.override_config("key_repository", keys, group="sealedmeta")

    cinder_test.TestCase.setUp = setUp
    _installed.append(keys)
    return keys
