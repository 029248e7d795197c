"""[sealedmeta] on_invalid and legacy_backups, and backups made before the
switch by the stock PosixBackupDriver."""

import json
import logging

import pytest
from oslo_config import cfg

from cinder import exception

from tests.cinder import helpers

CONF = cfg.CONF


def _set(name, value):
    CONF.set_override(name, value, group="sealedmeta")


def _forge(cloud, backup, src, code="FREE"):
    """Plain JSON volume_meta with a changed billing code."""
    forged = json.loads(cloud.driver().get_metadata(src))
    forged["volume-glance-metadata"]["billing_code_licence"] = code
    obj = cloud.read_object(backup)
    obj["volume_meta"] = json.dumps(forged)
    cloud.write_object(backup, obj)


def _warnings(caplog, backup_id):
    return [r for r in caplog.records
            if r.levelno == logging.WARNING and backup_id in r.getMessage()
            and r.name.startswith("sealedmeta.cinder")]


def test_defaults():
    assert CONF.sealedmeta.on_invalid == "fail"
    assert CONF.sealedmeta.legacy_backups == "trust"
    assert CONF.sealedmeta.keyring == "cinder-backup"


@pytest.mark.parametrize("name,value", [("on_invalid", "ignore"),
                                        ("legacy_backups", "drop")])
def test_unknown_policy_values_are_refused(name, value):
    with pytest.raises(ValueError):
        _set(name, value)


# -- on_invalid = drop -------------------------------------------------------

def test_on_invalid_drop_restores_data_and_no_metadata(cloud, caplog):
    _set("on_invalid", "drop")
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    backup = cloud.backup(src)
    _forge(cloud, backup, src)
    target = cloud.volume(glance=helpers.OTHER_GLANCE, name="target",
                          user_meta={"mine": "yes"})

    with caplog.at_level(logging.WARNING):
        cloud.restore(backup, target, volume_is_new=False)

    assert cloud.data(target) == cloud.data(src)
    # Neither the forged metadata nor the target's old Glance metadata.
    assert cloud.glance(target) == {}
    assert cloud.bootable(target) is False
    assert cloud.user_meta(target) == {"mine": "yes"}
    assert len(_warnings(caplog, backup.id)) == 1
    assert "on_invalid = drop" in _warnings(caplog, backup.id)[0].getMessage()


def test_on_invalid_drop_for_a_copied_envelope(cloud):
    _set("on_invalid", "drop")
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    other = cloud.backup(cloud.volume(glance=helpers.OTHER_GLANCE))
    obj = cloud.read_object(backup)
    obj["volume_meta"] = cloud.read_object(other)["volume_meta"]
    cloud.write_object(backup, obj)
    target = cloud.new_target()

    cloud.restore(backup, target)

    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == {}
    assert cloud.bootable(target) is False


def test_on_invalid_drop_still_restores_valid_backups_in_full(cloud):
    _set("on_invalid", "drop")
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target) == helpers.GLANCE
    assert cloud.bootable(target) is True


def test_on_invalid_fail_is_the_default(cloud):
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    _forge(cloud, backup, src)
    target = cloud.new_target()
    before = cloud.data(target)
    with pytest.raises(exception.InvalidBackup):
        cloud.restore(backup, target)
    assert cloud.data(target) == before


# -- legacy backups ----------------------------------------------------------

@pytest.fixture
def legacy(cloud):
    """A backup made by the stock PosixBackupDriver before the switch."""
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    backup = cloud.backup(src, cls=helpers.stock_class())
    assert backup.service == helpers.STOCK_POSIX
    assert json.loads(cloud.read_object(backup)["volume_meta"])[
        "volume-glance-metadata"] == helpers.GLANCE
    return src, backup


def test_legacy_trust_restores_with_one_warning_per_restore(cloud, legacy, caplog):
    src, backup = legacy
    for _ in range(2):
        target = cloud.new_target()
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            cloud.restore(backup, target)
        assert cloud.data(target) == cloud.data(src)
        assert cloud.glance(target) == helpers.GLANCE
        assert cloud.bootable(target) is True
        assert cloud.user_meta(target) == {"tier": "gold"}
        warnings = _warnings(caplog, backup.id)
        assert len(warnings) == 1
        assert "legacy_backups = trust" in warnings[0].getMessage()
        assert "sealedmeta cinder reseal" in warnings[0].getMessage()


def test_legacy_trust_means_the_object_is_believed(cloud, legacy):
    """What 'trust' costs: an edited legacy object is restored as edited
    (which is why 'reseal' takes the Glance metadata from the database)."""
    src, backup = legacy
    _forge(cloud, backup, src, code="FORGED")
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target)["billing_code_licence"] == "FORGED"


def test_legacy_drop_glance(cloud, legacy, caplog):
    _set("legacy_backups", "drop-glance")
    src, backup = legacy
    target = cloud.volume(glance=helpers.OTHER_GLANCE, name="restore_backup_x")

    with caplog.at_level(logging.WARNING):
        cloud.restore(backup, target, volume_is_new=False)

    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == {}
    assert cloud.bootable(target) is False
    assert cloud.user_meta(target) == {"tier": "gold"}
    assert cloud.volume_row(target).display_name == "vol"
    assert len(_warnings(caplog, backup.id)) == 1


def test_legacy_reject(cloud, legacy):
    _set("legacy_backups", "reject")
    src, backup = legacy
    target = cloud.volume(glance=helpers.OTHER_GLANCE)
    before = cloud.data(target)
    with pytest.raises(exception.InvalidBackup, match="legacy_backups = reject"):
        cloud.restore(backup, target, volume_is_new=False)
    assert cloud.data(target) == before
    assert cloud.glance(target) == helpers.OTHER_GLANCE


def test_legacy_with_unusable_volume_meta_is_refused_before_writing(cloud, legacy):
    """The stock driver would write the data, then fail on the JSON."""
    src, backup = legacy
    obj = cloud.read_object(backup)
    obj["volume_meta"] = "{not json"
    cloud.write_object(backup, obj)
    target = cloud.new_target()
    before = cloud.data(target)
    with pytest.raises(exception.InvalidBackup, match="not valid JSON"):
        cloud.restore(backup, target)
    assert cloud.data(target) == before


def test_sealed_incremental_on_a_legacy_full_backup(cloud, legacy):
    src, full = legacy
    cloud.write(src, 100, b"\x05" * 7000)
    incr = cloud.backup(src, parent=full)
    assert incr.service == helpers.SEALED_POSIX
    target = cloud.new_target()
    cloud.restore(incr, target)
    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == helpers.GLANCE

    _set("legacy_backups", "reject")
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match=full.id):
        cloud.restore(incr, target)


def test_legacy_backup_is_deleted_by_the_sealed_driver(cloud, legacy):
    src, backup = legacy
    assert cloud.object_names(backup)
    cloud.driver().delete_backup(backup)
    assert cloud.object_names(backup) == []


def test_legacy_backups_of_other_drivers_are_not_taken_for_ours():
    from sealedmeta.cinder import posix
    cls = posix.SealedPosixBackupDriver
    assert cls.is_legacy_service(helpers.STOCK_POSIX)
    assert cls.is_legacy_service("cinder.backup.drivers.posix")  # old module names
    assert cls.is_legacy_service(None)
    assert not cls.is_legacy_service(helpers.SEALED_POSIX)
    assert not cls.is_legacy_service("cinder.backup.drivers.nfs.NFSBackupDriver")
    assert not cls.is_legacy_service("cinder.backup.drivers.swift.SwiftBackupDriver")
