"""Cinder's own BackupManager, configured with the sealed driver: backups made
before the switch by the stock class stay restorable, exportable and
deletable (BackupManager._is_our_backup), others are still refused.

Only the device attach/detach (os-brick, root helper) and the RPC question
to the volume service are replaced; the manager's checks, the driver, the
database and the notifications are Cinder's."""

import os

import pytest
from oslo_config import cfg

from cinder.backup import manager as backup_manager
from cinder import exception
from cinder import objects
from cinder.objects import fields
from cinder.volume import volume_utils

from tests.cinder import helpers

CONF = cfg.CONF


@pytest.fixture
def mgr(cloud, monkeypatch):
    assert CONF.backup_driver == helpers.SEALED_POSIX
    manager = backup_manager.BackupManager()
    # What init_host does first (setup_backup_backend): build the driver.
    manager.service(context=cloud.ctxt)
    manager.is_initialized = True
    assert manager.service is helpers.sealed_class()

    def attach(context, volume, properties):
        return {"device": {"path": cloud.path(volume.id)}}

    monkeypatch.setattr(manager, "_attach_device", attach)
    monkeypatch.setattr(manager, "_detach_device", lambda *a, **k: None)
    monkeypatch.setattr(manager.volume_rpcapi, "secure_file_operations_enabled",
                        lambda context, volume: False)
    monkeypatch.setattr(volume_utils, "brick_get_connector_properties",
                        lambda *a, **k: {})
    return manager


def _restore(cloud, mgr, backup, target):
    backup = objects.Backup.get_by_id(cloud.ctxt, backup.id)
    backup.status = fields.BackupStatus.RESTORING
    backup.save()
    mgr.restore_backup(cloud.ctxt, backup, target, True)


def test_manager_owns_legacy_backups_of_the_stock_class(cloud, mgr):
    src = cloud.volume(glance=helpers.GLANCE)
    legacy = cloud.backup(src, cls=helpers.stock_class())
    sealed = cloud.backup(src)
    assert mgr._is_our_backup(legacy)
    assert mgr._is_our_backup(sealed)
    assert mgr._is_our_backup("cinder.backup.drivers.posix")  # old module name
    assert not mgr._is_our_backup("cinder.backup.drivers.swift.SwiftBackupDriver")
    assert not mgr._is_our_backup("cinder.backup.drivers.nfs.NFSBackupDriver")


def test_manager_restores_sealed_and_legacy_backups(cloud, mgr):
    src = cloud.volume(glance=helpers.GLANCE)
    for backup in (cloud.backup(src), cloud.backup(src, cls=helpers.stock_class())):
        target = cloud.new_target()
        _restore(cloud, mgr, backup, target)
        assert cloud.data(target) == cloud.data(src)
        assert cloud.glance(target) == helpers.GLANCE
        assert cloud.volume_row(target).status == "available"
        assert objects.Backup.get_by_id(cloud.ctxt, backup.id).status == "available"


def test_manager_refuses_a_forged_backup_and_marks_the_volume(cloud, mgr):
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    obj = cloud.read_object(backup)
    obj["volume_meta"] = obj["volume_meta"][:-3] + "AAA"
    cloud.write_object(backup, obj)
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup):
        _restore(cloud, mgr, backup, target)
    assert cloud.volume_row(target).status == "error_restoring"
    assert cloud.glance(target) == {}


def test_manager_exports_and_deletes_a_legacy_backup(cloud, mgr):
    src = cloud.volume(glance=helpers.GLANCE)
    legacy = cloud.backup(src, cls=helpers.stock_class())
    record = mgr.export_record(cloud.ctxt, legacy)
    assert record["backup_service"] == helpers.STOCK_POSIX
    assert record["backup_url"]

    directory = cloud.container_dir(legacy)
    assert os.listdir(directory)
    backup = objects.Backup.get_by_id(cloud.ctxt, legacy.id)
    backup.status = fields.BackupStatus.DELETING
    backup.save()
    mgr.delete_backup(cloud.ctxt, backup)
    assert os.listdir(directory) == []
    with pytest.raises(exception.BackupNotFound):
        objects.Backup.get_by_id(cloud.ctxt, legacy.id)


def test_the_names_are_mapped_when_the_driver_is_built_not_when_imported(
        cloud, monkeypatch, caplog):
    """Importing a sealed module changes nothing of Cinder's; building the
    configured driver (as the backup manager does when it starts) maps its
    stock parent's name, and says so."""
    import importlib
    import logging
    import sys
    monkeypatch.setattr(backup_manager, "MAPPING", dict(backup_manager.MAPPING))
    nfs_stock = "cinder.backup.drivers.nfs.NFSBackupDriver"
    monkeypatch.delitem(sys.modules, "sealedmeta.cinder.nfs", raising=False)
    CONF.set_override("backup_driver", "sealedmeta.cinder.nfs.SealedNFSBackupDriver")
    try:
        importlib.import_module("sealedmeta.cinder.nfs")
    finally:
        CONF.set_override("backup_driver", helpers.SEALED_POSIX)
    assert nfs_stock not in backup_manager.MAPPING
    monkeypatch.undo()

    monkeypatch.setattr(backup_manager, "MAPPING", dict(backup_manager.MAPPING))
    backup_manager.MAPPING.pop(helpers.STOCK_POSIX)
    with caplog.at_level(logging.INFO, logger="sealedmeta.cinder.mixin"):
        helpers.sealed_class()(cloud.ctxt)
        helpers.sealed_class()(cloud.ctxt)
    assert backup_manager.MAPPING[helpers.STOCK_POSIX] == helpers.SEALED_POSIX
    said = [r.getMessage() for r in caplog.records if "MAPPING" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(
        "Backups recorded as made by %s are taken for %s's own"
        % (helpers.STOCK_POSIX, helpers.SEALED_POSIX))


def test_a_process_configured_with_another_driver_claims_nothing():
    from sealedmeta.cinder import mixin
    from sealedmeta.cinder import swift
    before = dict(backup_manager.MAPPING)
    assert mixin.claim_legacy_backups(swift.SealedSwiftBackupDriver) is False
    assert backup_manager.MAPPING == before
    assert "cinder.backup.drivers.swift.SwiftBackupDriver" not in backup_manager.MAPPING
    # The configured one did claim its stock parent's name.
    assert backup_manager.MAPPING[helpers.STOCK_POSIX] == helpers.SEALED_POSIX
