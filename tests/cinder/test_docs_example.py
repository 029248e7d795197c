"""The driver authors' example of docs/source/cinder.rst, run as a doctest
against the real Cinder, then the class it defines backs up and restores a
volume with its metadata sealed, and owns the backups of its stock class."""

import doctest
import sys
import types

import pytest
from oslo_config import cfg

from cinder.backup import manager as backup_manager
from cinder.backup.drivers import posix as stock_posix

from sealedmeta.cinder import options
from tests import doc_blocks
from tests.cinder import helpers

CONF = cfg.CONF
GUIDE = "docs/source/cinder.rst"
STOCK = "mypackage.backup.MyChunkedDriver"
SEALED = "mypackage.sealed.SealedMyDriver"


class MyChunkedDriver(stock_posix.PosixBackupDriver):
    """A site's own chunked driver (a real one: Cinder's posix driver)."""


@pytest.fixture
def mypackage(monkeypatch):
    package = types.ModuleType("mypackage")
    backup = types.ModuleType("mypackage.backup")
    MyChunkedDriver.__module__ = "mypackage.backup"
    backup.MyChunkedDriver = MyChunkedDriver
    package.backup = backup
    monkeypatch.setitem(sys.modules, "mypackage", package)
    monkeypatch.setitem(sys.modules, "mypackage.backup", backup)
    CONF.set_override("backup_driver", SEALED)
    yield
    CONF.set_override("backup_driver", helpers.SEALED_POSIX)
    backup_manager.MAPPING.pop(STOCK, None)


def run_guide_example():
    """The guide's >>> examples, as module mypackage.sealed; its globals."""
    globs = {"__name__": "mypackage.sealed"}
    test = doc_blocks.doctest_of(GUIDE, globs)
    assert test.examples, "%s has no >>> examples" % GUIDE
    report = []
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    result = runner.run(test, out=report.append, clear_globs=False)
    assert result.failed == 0, "".join(report)
    return test.globs


def test_driver_authors_example(mypackage, cloud):
    sealed_cls = run_guide_example()["SealedMyDriver"]
    assert "%s.%s" % (sealed_cls.__module__, sealed_cls.__name__) == SEALED
    assert STOCK not in backup_manager.MAPPING    # defining it maps nothing
    sealed_cls(cloud.ctxt)      # as Cinder's backup manager builds it
    assert backup_manager.MAPPING[STOCK] == SEALED

    src = cloud.volume(glance=helpers.GLANCE)
    legacy = cloud.backup(src, cls=MyChunkedDriver, service=STOCK)
    sealed = cloud.backup(src, cls=sealed_cls, service=SEALED)
    assert cloud.read_object(sealed)["volume_meta"].startswith("sealedmeta:")
    assert not cloud.read_object(legacy)["volume_meta"].startswith("sealedmeta:")
    for backup in (sealed, legacy):
        target = cloud.new_target()
        cloud.restore(backup, target, cls=sealed_cls)
        assert cloud.glance(target) == helpers.GLANCE
        assert cloud.data(target) == cloud.data(src)
    options.clear_sealer_cache()
