"""Backups of encrypted volumes whose metadata is dropped
(``[sealedmeta] on_invalid = drop``): the restored volume gets the key id of
the backup's database row, or the restore is refused before any data is
written -- never a success for a volume that cannot be read."""

import json
import uuid

import pytest
from oslo_config import cfg

from cinder.db import api as db
from cinder import exception
from cinder import objects

from tests.cinder import helpers
from tests.cinder import test_manager

CONF = cfg.CONF
mgr = test_manager.mgr  # Cinder's BackupManager with the sealed driver


@pytest.fixture
def luks(ctxt):
    """An encrypted volume type (front-end LUKS), as an admin creates it."""
    vtype = db.volume_type_create(ctxt, {"name": "luks-%s" % uuid.uuid4().hex[:8]})
    db.volume_type_encryption_create(ctxt, vtype["id"], {
        "provider": "luks", "cipher": "aes-xts-plain64", "key_size": 256,
        "control_location": "front-end"})
    return vtype["id"]


def _tamper(cloud, backup):
    obj = cloud.read_object(backup)
    obj["volume_meta"] = obj["volume_meta"][:-3] + "AAA"
    cloud.write_object(backup, obj)


def _encrypted_backup(cloud, luks, backup_key="backup-key-clone"):
    src = cloud.volume(glance=helpers.GLANCE, encryption_key_id="source-key",
                       volume_type_id=luks)
    backup = cloud.backup(src)
    # What BackupManager.create_backup keeps: a clone of the volume's key.
    backup.encryption_key_id = backup_key
    backup.save()
    # The sealed metadata names the volume's key (Cinder's base section).
    assert '"encryption_key_id": "source-key"' in cloud.driver()._read_metadata(
        backup)["volume_meta"]
    _tamper(cloud, backup)
    return src, objects.Backup.get_by_id(cloud.ctxt, backup.id)


def _target(cloud, vtype, key="target-own-key"):
    return cloud.volume(data=bytes(helpers.VOLUME_BYTES), name="restore_backup_target",
                        status="restoring-backup", encryption_key_id=key,
                        volume_type_id=vtype)


def test_dropped_metadata_restores_the_key_id_of_the_backup_row(cloud, luks):
    CONF.set_override("on_invalid", "drop", group="sealedmeta")
    src, backup = _encrypted_backup(cloud, luks)
    target = _target(cloud, luks)
    cloud.restore(backup, target, volume_is_new=False)
    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == {}
    # The key the data is encrypted under (the backup's clone of it): the
    # backup manager then gives the volume a clone of its own and deletes
    # the one it was created with.
    assert cloud.volume_row(target).encryption_key_id == "backup-key-clone"


def test_an_unencrypted_target_type_is_refused_before_any_data(cloud, luks):
    CONF.set_override("on_invalid", "drop", group="sealedmeta")
    src, backup = _encrypted_backup(cloud, luks)
    target = _target(cloud, None, key=None)   # the default, unencrypted type
    before = cloud.data(target)
    with pytest.raises(exception.InvalidBackup, match="encrypted volume"):
        cloud.restore(backup, target, volume_is_new=False)
    assert cloud.data(target) == before
    assert cloud.volume_row(target).encryption_key_id is None


def test_a_row_without_a_key_id_is_refused_for_an_encrypted_source(cloud, luks):
    CONF.set_override("on_invalid", "drop", group="sealedmeta")
    src, backup = _encrypted_backup(cloud, luks)
    backup.encryption_key_id = None   # a backup older than Cinder's clone
    backup.save()
    target = _target(cloud, luks)
    before = cloud.data(target)
    with pytest.raises(exception.InvalidBackup, match="keeps no encryption key"):
        cloud.restore(backup, target, volume_is_new=False)
    assert cloud.data(target) == before
    assert cloud.volume_row(target).encryption_key_id == "target-own-key"


def test_the_manager_reports_the_refusal(cloud, luks, mgr):
    CONF.set_override("on_invalid", "drop", group="sealedmeta")
    src, backup = _encrypted_backup(cloud, luks)
    target = _target(cloud, None, key=None)
    backup.status = "restoring"
    backup.save()
    with pytest.raises(exception.InvalidBackup):
        mgr.restore_backup(cloud.ctxt, backup, target, False)
    assert cloud.volume_row(target).status == "error_restoring"


def test_an_unencrypted_backup_is_dropped_as_before(cloud):
    CONF.set_override("on_invalid", "drop", group="sealedmeta")
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    obj = cloud.read_object(backup)
    obj["volume_meta"] = json.dumps({"version": 2})
    cloud.write_object(backup, obj)
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.data(target) == cloud.data(src)
    assert cloud.volume_row(target).encryption_key_id is None
    assert cloud.bootable(target) is False
