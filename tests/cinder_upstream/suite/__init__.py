"""The Cinder test modules of the cinder-upstream env, for stestr's
discovery (``load_tests``). With ``SEALEDMETA_CINDER_UPSTREAM=sealed`` the
sealed classes replace the stock ones first (:mod:`..hook`)."""

import importlib
import os

# Cinder's unit tests of its chunked backup drivers, of the driver base and
# of the backup manager (whose driver is the configured backup_driver, by
# default the Swift class), as shipped in the cinder package.
MODULES = (
    "cinder.tests.unit.backup.test_backup",
    "cinder.tests.unit.backup.drivers.test_backup_driver_base",
    "cinder.tests.unit.backup.drivers.test_backup_posix",
    "cinder.tests.unit.backup.drivers.test_backup_nfs",
    "cinder.tests.unit.backup.drivers.test_backup_swift",
    "cinder.tests.unit.backup.drivers.test_backup_s3",
    "cinder.tests.unit.backup.drivers.test_backup_google",
)

MODE = "SEALEDMETA_CINDER_UPSTREAM"


def load_tests(loader, tests, pattern):
    mode = os.environ.get(MODE, "stock")
    if mode == "sealed":
        from tests.cinder_upstream import hook
        hook.install()
    elif mode != "stock":
        raise ValueError("%s must be stock or sealed, not %r" % (MODE, mode))
    suite = loader.suiteClass()
    for name in MODULES:
        suite.addTests(loader.loadTestsFromModule(importlib.import_module(name)))
    return suite
