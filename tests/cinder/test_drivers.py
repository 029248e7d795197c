"""The ready driver classes, one module each, and the options on Cinder's
CONF."""

import importlib
import importlib.util
import subprocess
import sys

import pytest
from oslo_config import cfg

from cinder.backup import chunkeddriver
from sealedmeta import conf as sm_conf
from sealedmeta.cinder import mixin

CONF = cfg.CONF

READY = [
    ("posix", "SealedPosixBackupDriver", "cinder.backup.drivers.posix", "PosixBackupDriver"),
    ("nfs", "SealedNFSBackupDriver", "cinder.backup.drivers.nfs", "NFSBackupDriver"),
    ("swift", "SealedSwiftBackupDriver", "cinder.backup.drivers.swift", "SwiftBackupDriver"),
    ("s3", "SealedS3BackupDriver", "cinder.backup.drivers.s3", "S3BackupDriver"),
]


@pytest.mark.parametrize("module,name,stock_module,stock_name", READY)
def test_ready_class(module, name, stock_module, stock_name):
    cls = getattr(importlib.import_module("sealedmeta.cinder." + module), name)
    stock = getattr(importlib.import_module(stock_module), stock_name)
    assert issubclass(cls, stock)
    assert issubclass(cls, chunkeddriver.ChunkedBackupDriver)
    mro = cls.__mro__
    assert mro.index(mixin.SealedMetadataMixin) < mro.index(stock)
    assert cls.LEGACY_SERVICES[0] == "%s.%s" % (stock_module, stock_name)
    assert cls.is_legacy_service(cls.LEGACY_SERVICES[0])
    assert not cls.is_legacy_service(mixin.service_name(cls))
    # The hooks are the mixin's.
    for hook in ("_backup_metadata", "_read_metadata", "put_metadata", "restore"):
        assert getattr(cls, hook) is getattr(mixin.SealedMetadataMixin, hook)


def test_google_class_imports_exactly_when_cinders_gcs_driver_does():
    has_client = importlib.util.find_spec("googleapiclient") is not None
    if has_client:
        module = importlib.import_module("sealedmeta.cinder.gcs")
        assert "cinder.backup.drivers.google.GoogleBackupDriver" in (
            module.SealedGoogleBackupDriver.LEGACY_SERVICES)
    else:
        with pytest.raises(ImportError, match="googleapiclient"):
            importlib.import_module("sealedmeta.cinder.gcs")


def test_a_missing_driver_dependency_breaks_only_its_own_module():
    """With Cinder's gcs and swift client libraries hidden, the other sealed
    classes still import (a fresh interpreter, nothing cached)."""
    script = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "sys.modules['googleapiclient'] = None\n"
        "sys.modules['swiftclient'] = None\n"
        "import importlib\n"
        "results = []\n"
        "for name in ('gcs', 'posix', 'nfs', 's3', 'swift'):\n"
        "    try:\n"
        "        importlib.import_module('sealedmeta.cinder.' + name)\n"
        "        results.append(name + ':ok')\n"
        "    except ImportError:\n"
        "        results.append(name + ':ImportError')\n"
        "print(' '.join(results))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["gcs:ImportError", "posix:ok", "nfs:ok", "s3:ok",
                                   "swift:ok"]


def test_package_and_carrier_import_without_cinder():
    script = (
        "import sys\n"
        "sys.modules['cinder'] = None\n"
        "import sealedmeta.cinder, sealedmeta.cinder.carrier, sealedmeta.cinder.cli\n"
        "import sealedmeta.cinder.options, sealedmeta.cinder.volume_meta\n"
        "try:\n"
        "    sealedmeta.cinder.SealedMetadataMixin\n"
        "except ImportError:\n"
        "    print('mixin needs cinder')\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "mixin needs cinder"


def test_sealedmeta_options_are_in_cinders_config():
    group = CONF.sealedmeta
    for name in ("keystore", "key_repository", "keyring", "cache_ttl",
                 "refresh_interval", "max_envelope_size", "on_invalid",
                 "legacy_backups"):
        assert name in group


def test_the_coordination_group_is_left_to_cinder():
    """sealedmeta.conf.register_opts() also registers [coordination]
    backend_url, which Cinder already defines differently."""
    with pytest.raises(cfg.DuplicateOptError):
        sm_conf.register_opts(CONF)
    assert CONF.coordination.backend_url.startswith("file://")
