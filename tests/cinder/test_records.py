"""Backup export / import (``backup-export`` / ``backup-import``) through
Cinder's own BackupManager and backup API with the sealed posix driver.

A backup made by the stock driver before the switch stays restorable after
its record is exported and imported again (its row then names the sealed
driver); the legacy claim that makes it so cannot be forged, moved to
another backup, carried by a non-administrator's import, or made to cover a
metadata object changed after the export. Cinder's default policy keeps
record import and export to administrators (checked with oslo.policy).
"""

import base64
import json
import logging
import tracemalloc

import pytest
from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from cinder.backup import api as backup_api
from cinder import context as cinder_context
from cinder.db import api as db
from cinder import exception
from cinder import objects
from cinder.objects import base as objects_base
from cinder.objects import fields
from cinder import policies

from sealedmeta.cinder import records
from tests.cinder import helpers
from tests.cinder import test_manager

CONF = cfg.CONF
mgr = test_manager.mgr  # Cinder's BackupManager with the sealed driver


def _ctxt(cloud, admin=True):
    return cinder_context.RequestContext(
        user_id=cloud.user_id, project_id=cloud.project_id, is_admin=admin)


def _export(cloud, mgr, backup):
    return mgr.export_record(cloud.ctxt, objects.Backup.get_by_id(cloud.ctxt, backup.id))


def _lose_row(cloud, backup):
    """The backup's row is gone (deleted), its objects are not."""
    db.backup_destroy(cloud.ctxt, backup.id)


def _over_rpc(ctxt, backup):
    """The backup as the backup service receives it: Cinder's RPC
    serializer gives it the caller's context."""
    serializer = objects_base.CinderObjectSerializer()
    return serializer.deserialize_entity(ctxt, serializer.serialize_entity(ctxt, backup))


def _import(cloud, mgr, record, admin=True):
    """What ``cinder backup-import`` does: the API's row, then the manager."""
    ctxt = _ctxt(cloud, admin)
    backup = _over_rpc(ctxt, backup_api.API()._get_import_backup(
        ctxt, record["backup_url"]))
    mgr.import_record(ctxt, backup, record["backup_service"],
                      record["backup_url"], [])
    return objects.Backup.get_by_id(cloud.ctxt, backup.id)


def _restore(cloud, mgr, backup, target):
    backup = objects.Backup.get_by_id(cloud.ctxt, backup.id)
    backup.status = fields.BackupStatus.RESTORING
    backup.save()
    mgr.restore_backup(cloud.ctxt, backup, target, True)


def _decode(url):
    return json.loads(base64.b64decode(url))


def _encode(record):
    return base64.b64encode(json.dumps(record).encode()).decode()


def _with(record, **changes):
    """*record* with fields of its backup_url changed (None removes)."""
    inner = _decode(record["backup_url"])
    for key, value in changes.items():
        if value is None:
            inner.pop(key, None)
        else:
            inner[key] = value
    return dict(record, backup_url=_encode(inner))


@pytest.fixture
def legacy(cloud):
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    return src, cloud.backup(src, cls=helpers.stock_class())


# -- the failure of issue item 1 ---------------------------------------------

def test_a_legacy_backup_restores_after_export_and_import(cloud, mgr, legacy):
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    assert record["backup_service"] == helpers.STOCK_POSIX
    claim = _decode(record["backup_url"])["driver_info"][records.CLAIM_KEY]
    assert len(claim) <= records.MAX_CLAIM
    # The exporting cloud's row is not changed.
    assert records.CLAIM_KEY not in objects.Backup.get_by_id(
        cloud.ctxt, backup.id).metadata

    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    assert imported.status == "available"
    assert imported.service == helpers.SEALED_POSIX   # Cinder's import sets it
    assert imported.metadata[records.CLAIM_KEY] == claim

    target = cloud.new_target()
    _restore(cloud, mgr, imported, target)
    assert cloud.volume_row(target).status == "available"
    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == helpers.GLANCE
    assert cloud.bootable(target) is True
    assert cloud.user_meta(target)["tier"] == "gold"


def test_an_imported_legacy_backup_keeps_the_legacy_policy(cloud, mgr, legacy):
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    CONF.set_override("legacy_backups", "reject", group="sealedmeta")
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="made before sealing"):
        _restore(cloud, mgr, imported, target)
    assert cloud.volume_row(target).status == "error_restoring"


def test_a_sealed_backup_restores_after_export_and_import(cloud, mgr):
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    record = _export(cloud, mgr, backup)
    assert records.CLAIM_KEY not in _decode(record["backup_url"])["driver_info"]
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    target = cloud.new_target()
    _restore(cloud, mgr, imported, target)
    assert cloud.glance(target) == helpers.GLANCE
    assert cloud.data(target) == cloud.data(src)


# -- claims that cannot be trusted -------------------------------------------

def _forged_object(cloud, backup, src, code="FREE"):
    forged = json.loads(cloud.driver().get_metadata(src))
    forged["volume-glance-metadata"]["billing_code_licence"] = code
    obj = cloud.read_object(backup)
    obj["volume_meta"] = json.dumps(forged)
    cloud.write_object(backup, obj)


def _claim_for(record, claim):
    inner = _decode(record["backup_url"])
    inner["driver_info"] = dict(inner.get("driver_info") or {},
                                **{records.CLAIM_KEY: claim})
    inner["metadata"] = dict(inner.get("metadata") or {},
                             **{records.CLAIM_KEY: claim})
    return dict(record, backup_url=_encode(inner))


def _flip(claim):
    """*claim* with one character of its MAC changed."""
    parts = claim.split(":", 5)
    parts[2] = ("A" if parts[2][0] != "A" else "B") + parts[2][1:]
    return ":".join(parts)


def _import_refused(cloud, mgr, record, admin=True, match=None):
    """The import fails; the row is left in error, without a claim."""
    ctxt = _ctxt(cloud, admin)
    backup = _over_rpc(ctxt, backup_api.API()._get_import_backup(
        ctxt, record["backup_url"]))
    with pytest.raises(exception.InvalidBackup, match=match):
        mgr.import_record(ctxt, backup, record["backup_service"],
                          record["backup_url"], [])
    row = objects.Backup.get_by_id(cloud.ctxt, backup.id)
    assert row.status == "error"
    assert records.CLAIM_KEY not in (row.metadata or {})
    _lose_row(cloud, row)  # as an administrator would before trying again


def test_a_forged_claim_cannot_downgrade_a_sealed_backup(cloud, mgr):
    """The attack: a sealed backup's record claims the stock driver made it,
    and its object holds forged plain metadata."""
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    record = _export(cloud, mgr, backup)
    _forged_object(cloud, backup, src)
    forged_value = cloud.read_object(backup)["volume_meta"]
    _lose_row(cloud, backup)
    # A claim of the right shape whose MAC is not the keyring's.
    other = cloud.backup(cloud.volume(), cls=helpers.stock_class())
    genuine = _decode(_export(cloud, mgr, other)["backup_url"])["driver_info"][
        records.CLAIM_KEY]
    version, mac, _, _, service = genuine.split(":", 5)[1:]
    forged = ":".join(("smc1", version, mac, backup.volume_id,
                       records.digest_of(forged_value),
                       service))
    _import_refused(cloud, mgr, _claim_for(record, forged),
                    match="cannot be trusted")
    _import_refused(cloud, mgr, _claim_for(record, _flip(genuine)),
                    match="cannot be trusted")
    # Another backup's genuine claim (bound to that backup's id).
    _import_refused(cloud, mgr, _claim_for(record, genuine),
                    match="cannot be trusted")


def test_a_claim_only_in_the_rows_metadata_is_checked_at_restore(cloud, mgr):
    """A record that keeps its claim out of driver_info gets past the import
    hook; the restore checks the row's claim and refuses."""
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    record = _export(cloud, mgr, backup)
    _forged_object(cloud, backup, src)
    _lose_row(cloud, backup)
    other = cloud.backup(cloud.volume(), cls=helpers.stock_class())
    genuine = _decode(_export(cloud, mgr, other)["backup_url"])["driver_info"][
        records.CLAIM_KEY]
    inner = _decode(record["backup_url"])
    inner["metadata"] = {records.CLAIM_KEY: genuine}
    imported = _import(cloud, mgr, dict(record, backup_url=_encode(inner)))
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="legacy claim cannot be trusted"):
        _restore(cloud, mgr, imported, target)
    assert cloud.glance(target) == {}
    assert cloud.volume_row(target).status == "error_restoring"


def test_a_non_admin_import_cannot_carry_a_claim(cloud, mgr, legacy):
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    _import_refused(cloud, mgr, record, admin=False, match="administrator")


def test_an_object_changed_after_the_export_is_not_trusted(cloud, mgr, legacy):
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    _forged_object(cloud, imported, src, code="FORGED")
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="changed since the record"):
        _restore(cloud, mgr, imported, target)
    assert cloud.glance(target) == {}

    CONF.set_override("on_invalid", "drop", group="sealedmeta")
    target = cloud.new_target()
    _restore(cloud, mgr, imported, target)
    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == {}
    assert cloud.bootable(target) is False


def test_a_claim_moved_to_another_volume_is_not_trusted(cloud, mgr, legacy):
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    # The record's volume id changed: the claim names the exported one.
    imported = _import(cloud, mgr, _with(record, volume_id=cloud.volume()))
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="another volume"):
        _restore(cloud, mgr, imported, target)


def test_a_removed_claim_fails_closed(cloud, mgr, legacy):
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, _with(record, metadata={}))
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="volume_meta is not sealed"):
        _restore(cloud, mgr, imported, target)


# -- Cinder's policy ---------------------------------------------------------

def _enforcer():
    enforcer = oslo_policy.Enforcer(CONF)
    enforcer.register_defaults(policies.list_rules())
    enforcer.load_rules()
    return enforcer


@pytest.mark.parametrize("rule", records.RECORD_RULES)
def test_cinder_default_policy_keeps_records_to_administrators(rule):
    enforcer = _enforcer()
    target = {"project_id": "p", "user_id": "u"}
    member = {"user_id": "u", "project_id": "p", "roles": ["member", "reader"],
              "system_scope": None}
    admin = {"user_id": "a", "project_id": "p", "roles": ["admin", "member",
                                                          "reader"],
             "system_scope": None, "is_admin_project": True}
    assert not enforcer.enforce(rule, target, member)
    assert enforcer.enforce(rule, target, admin)
    assert records.non_admin_rules() == []


def test_a_policy_granting_members_imports_is_reported(tmp_path, caplog):
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text('"backup:backup-import": "role:member"\n')
    CONF.set_override("policy_file", str(policy_file), group="oslo_policy")
    try:
        assert records.non_admin_rules() == ["backup:backup-import"]
        records._warned.clear()
        with caplog.at_level(logging.WARNING):
            records.warn_if_non_admins_may_import()
        assert any("backup:backup-import" in r.getMessage() for r in caplog.records)
    finally:
        CONF.clear_override("policy_file", group="oslo_policy")
        records._warned.clear()


def test_reseal_ends_the_legacy_claim_of_an_imported_backup(cloud, mgr, legacy):
    """Once resealed, the exported plain object put back is refused: the
    claim that let it in is gone from the row."""
    from sealedmeta.cinder import reseal
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    old_object = cloud.raw_object(backup)
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    [result] = reseal.reseal([imported.id], driver=cloud.driver())
    assert result.result == reseal.RESEALED, result
    row = objects.Backup.get_by_id(cloud.ctxt, imported.id)
    assert records.CLAIM_KEY not in row.metadata
    target = cloud.new_target()
    _restore(cloud, mgr, row, target)
    assert cloud.glance(target) == helpers.GLANCE

    cloud.write_raw_object(row, old_object)
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="volume_meta is not sealed"):
        _restore(cloud, mgr, row, target)


def test_export_of_an_oversized_legacy_object_is_refused_unread(cloud, mgr, legacy):
    """Export reads a pre-switch backup's object with the one bounded
    reader (it used Cinder's, which read and parsed a 24 MiB object whole --
    about 540 MiB -- and claimed it): refused from its size, unread, with
    the default limit."""
    src, backup = legacy
    obj = cloud.read_object(backup)
    obj["padding"] = ["x"] * (24 * 1024 * 1024 // 6)
    cloud.write_object(backup, obj)
    size = len(cloud.raw_object(backup))
    assert size > 24 * 1024 * 1024
    tracemalloc.start()
    try:
        with pytest.raises(exception.InvalidBackup,
                           match=r"is %d bytes, over the 8388608 byte limit \(\[sealedmeta\]"
                                 r" max_metadata_object_size\): not read" % size):
            _export(cloud, mgr, backup)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, peak
