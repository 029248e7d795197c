"""Backup export / import (``backup-export`` / ``backup-import``) through
Cinder's own BackupManager and backup API with the sealed posix driver.

A backup made by the stock driver before the switch stays restorable after
its record is exported and imported again: Cinder's import records the
sealed driver as its service, and ``sealedmeta cinder mark-legacy`` with the
record puts the stock class back. The legacy claim in the record cannot be
forged, moved to another backup, carried by a non-administrator's import,
or made to cover a metadata object changed after the export; a claim in the
row's backup metadata (which a member writes through Cinder's API) is never
trusted. Cinder's default policy keeps record import and export to
administrators (checked with oslo.policy).
"""

import base64
import json
import logging
import time
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
from tests.cinder.test_reseal import cinder_conf  # noqa: F401 - fixture
from tests.cinder.test_reseal import run_cli

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


def mark_legacy(capsys, conf, tmp_path, *records_):
    """``sealedmeta cinder mark-legacy RECORD ...`` (the real command line)
    over *records_* written as ``record export -f json`` writes them;
    ``(exit status, {backup id: row}, stderr)``."""
    paths = []
    for n, record in enumerate(records_):
        path = tmp_path / ("record-%d.json" % n)
        path.write_text(json.dumps(record))
        paths.append(str(path))
    code, out, err = run_cli(capsys, "--config-file", conf, "cinder", "mark-legacy",
                             *paths, "-f", "json")
    rows = {row["backup_id"]: row for row in json.loads(out)} if out else {}
    return code, rows, err


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

def test_a_legacy_backup_restores_after_export_import_and_mark(
        cloud, mgr, legacy, capsys, cinder_conf, tmp_path):  # noqa: F811
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    assert record["backup_service"] == helpers.STOCK_POSIX
    inner = _decode(record["backup_url"])
    claim = inner["driver_info"][records.CLAIM_KEY]
    assert len(claim) <= records.MAX_CLAIM
    # Only the administrator's record carries it, not the row's metadata.
    assert records.CLAIM_KEY not in inner["metadata"]
    # The exporting cloud's row is not changed.
    assert records.CLAIM_KEY not in objects.Backup.get_by_id(
        cloud.ctxt, backup.id).metadata

    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    assert imported.status == "available"
    assert imported.service == helpers.SEALED_POSIX   # Cinder's import sets it
    assert records.CLAIM_KEY not in imported.metadata
    # Until marked, it is taken for the sealed driver's: refused.
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="volume_meta is not sealed"):
        _restore(cloud, mgr, imported, target)

    code, rows, err = mark_legacy(capsys, cinder_conf, tmp_path, record)
    assert code == 0, err
    assert rows[backup.id]["result"] == records.MARKED
    assert rows[backup.id]["service"] == helpers.STOCK_POSIX
    marked = objects.Backup.get_by_id(cloud.ctxt, backup.id)
    assert marked.service == helpers.STOCK_POSIX
    assert mgr._is_our_backup(marked)
    target = cloud.new_target()
    _restore(cloud, mgr, marked, target)
    assert cloud.volume_row(target).status == "available"
    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == helpers.GLANCE
    assert cloud.bootable(target) is True
    assert cloud.user_meta(target)["tier"] == "gold"
    # A second run changes nothing.
    code, rows, err = mark_legacy(capsys, cinder_conf, tmp_path, record)
    assert code == 0, err
    assert rows[backup.id]["result"] == records.ALREADY_LEGACY


def test_an_imported_legacy_backup_keeps_the_legacy_policy(
        cloud, mgr, legacy, capsys, cinder_conf, tmp_path):  # noqa: F811
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    assert mark_legacy(capsys, cinder_conf, tmp_path, record)[0] == 0
    CONF.set_override("legacy_backups", "reject", group="sealedmeta")
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="made before sealing"):
        _restore(cloud, mgr, imported, target)
    assert cloud.volume_row(target).status == "error_restoring"


def test_a_sealed_backup_restores_after_export_and_import(
        cloud, mgr, capsys, cinder_conf, tmp_path):  # noqa: F811
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
    # Nothing to mark: the row stays the sealed driver's.
    code, rows, err = mark_legacy(capsys, cinder_conf, tmp_path, record)
    assert code == 0, err
    assert rows[backup.id]["result"] == records.NO_CLAIM
    assert objects.Backup.get_by_id(cloud.ctxt, backup.id).service == \
        helpers.SEALED_POSIX


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


def test_a_claim_only_in_the_rows_metadata_is_not_trusted(cloud, mgr):
    """A record that keeps a genuine claim out of driver_info and in the
    row's metadata gets past the import hook; a restore never reads it."""
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())
    record = _export(cloud, mgr, backup)
    claim = _decode(record["backup_url"])["driver_info"][records.CLAIM_KEY]
    _lose_row(cloud, backup)
    inner = _decode(record["backup_url"])
    inner["metadata"] = {records.CLAIM_KEY: claim}
    inner.pop("driver_info")
    imported = _import(cloud, mgr, dict(record, backup_url=_encode(inner)))
    assert imported.metadata == {records.CLAIM_KEY: claim}
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="volume_meta is not sealed"):
        _restore(cloud, mgr, imported, target)
    assert cloud.glance(target) == {}
    assert cloud.volume_row(target).status == "error_restoring"


def test_a_non_admin_import_cannot_carry_a_claim(cloud, mgr, legacy):
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    _import_refused(cloud, mgr, record, admin=False, match="administrator")


def test_an_object_changed_after_the_export_is_not_marked(
        cloud, mgr, legacy, capsys, cinder_conf, tmp_path):  # noqa: F811
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    _forged_object(cloud, imported, src, code="FORGED")
    code, rows, err = mark_legacy(capsys, cinder_conf, tmp_path, record)
    assert code == 1
    assert rows[backup.id]["result"] == records.FAILED
    assert "changed since the record was exported" in rows[backup.id]["reason"]
    assert objects.Backup.get_by_id(cloud.ctxt, backup.id).service == \
        helpers.SEALED_POSIX
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="volume_meta is not sealed"):
        _restore(cloud, mgr, imported, target)
    assert cloud.glance(target) == {}

    CONF.set_override("on_invalid", "drop", group="sealedmeta")
    target = cloud.new_target()
    _restore(cloud, mgr, imported, target)
    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == {}
    assert cloud.bootable(target) is False


def test_a_claim_moved_to_another_volume_is_not_marked(
        cloud, mgr, legacy, capsys, cinder_conf, tmp_path):  # noqa: F811
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    # The record's volume id changed: the claim names the exported one.
    moved = _with(record, volume_id=cloud.volume())
    imported = _import(cloud, mgr, moved)
    code, rows, err = mark_legacy(capsys, cinder_conf, tmp_path, moved)
    assert code == 1
    assert rows[backup.id]["reason"] == (
        "the record's legacy claim was made for another volume")
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="volume_meta is not sealed"):
        _restore(cloud, mgr, imported, target)


def test_mark_legacy_refuses_what_it_cannot_trust(
        cloud, mgr, legacy, capsys, cinder_conf, tmp_path):  # noqa: F811
    """A forged claim in the record; a record for a backup not imported;
    a file that is no record (nothing is changed: the command cannot run)."""
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    genuine = _decode(record["backup_url"])["driver_info"][records.CLAIM_KEY]
    code, rows, err = mark_legacy(capsys, cinder_conf, tmp_path,
                                  _claim_for(record, _flip(genuine)))
    assert code == 1
    assert rows[backup.id]["reason"].startswith(
        "the record's legacy claim cannot be trusted")
    other = cloud.backup(cloud.volume(), cls=helpers.stock_class())
    other_record = _export(cloud, mgr, other)
    _lose_row(cloud, other)
    code, rows, err = mark_legacy(capsys, cinder_conf, tmp_path, other_record)
    assert code == 1
    assert rows[other.id]["reason"] == "no such backup: import the record first"
    code, rows, err = mark_legacy(capsys, cinder_conf, tmp_path, record,
                                  {"backup_service": "x", "backup_url": "not base64"})
    assert code == 2
    assert "its backup_url is not a base64 JSON record" in err
    assert objects.Backup.get_by_id(cloud.ctxt, imported.id).service == \
        helpers.SEALED_POSIX


def test_a_removed_claim_fails_closed(
        cloud, mgr, legacy, capsys, cinder_conf, tmp_path):  # noqa: F811
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    _lose_row(cloud, backup)
    inner = _decode(record["backup_url"])
    inner.pop("driver_info")
    stripped = dict(record, backup_url=_encode(inner))
    imported = _import(cloud, mgr, stripped)
    code, rows, err = mark_legacy(capsys, cinder_conf, tmp_path, stripped)
    assert rows[backup.id]["result"] == records.NO_CLAIM
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


def test_reseal_of_a_marked_backup_refuses_the_old_plain_object(
        cloud, mgr, legacy, capsys, cinder_conf, tmp_path):  # noqa: F811
    from sealedmeta.cinder import reseal
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    old_object = cloud.raw_object(backup)
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    assert mark_legacy(capsys, cinder_conf, tmp_path, record)[0] == 0
    [result] = reseal.reseal([imported.id], driver=cloud.driver())
    assert result.result == reseal.RESEALED, result
    row = objects.Backup.get_by_id(cloud.ctxt, imported.id)
    assert row.service == helpers.SEALED_POSIX
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
    # (mark-legacy with the old record would take that object back: the
    # record is the administrator's word, used once, right after import.)


# -- the legacy claim written back through Cinder's API ----------------------

def _member(cloud):
    return cinder_context.RequestContext(
        user_id=cloud.user_id, project_id=cloud.project_id,
        roles=["member", "reader"], is_admin=False)


def update_backup_metadata(ctxt, backup_id, metadata):
    """``PUT /v3/{project}/backups/{id}`` with microversion 3.43, as a
    project member sends it: Cinder's v3 backups controller, its schema
    validation and its policy enforcement (``backup:update``)."""
    from cinder.api.openstack import api_version_request as api_version
    from cinder.api.openstack import wsgi
    from cinder.api.v3 import backups as backups_v3
    req = wsgi.Request.blank("/%s/backups/%s" % (ctxt.project_id, backup_id),
                             base_url="http://localhost/v3")
    req.method = "PUT"
    req.api_version_request = api_version.APIVersionRequest("3.43")
    req.environ["cinder.context"] = ctxt
    return backups_v3.BackupsController().update(
        req, backup_id, body={"backup": {"metadata": metadata}})


def test_a_member_cannot_put_a_legacy_claim_back_after_reseal(
        cloud, mgr, capsys, cinder_conf, tmp_path):  # noqa: F811
    """The attack: a legacy backup whose object the tenant forged before
    its record was exported; after ``cinder reseal`` (Glance from the
    database) the member writes the exported claim back into the backup's
    metadata through Cinder's API and puts the pre-reseal plain object
    back. The restore must not take the backup for a legacy one."""
    from cinder import policy as cinder_policy
    from sealedmeta.cinder import reseal
    cinder_policy.reset()
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())
    _forged_object(cloud, backup, src, code="FREE")
    record = _export(cloud, mgr, backup)
    claim = _decode(record["backup_url"])["driver_info"][records.CLAIM_KEY]
    plain_object = cloud.raw_object(backup)
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    assert mark_legacy(capsys, cinder_conf, tmp_path, record)[0] == 0
    # legacy_backups = trust: what a legacy backup's object says applies.
    target = cloud.new_target()
    _restore(cloud, mgr, imported, target)
    assert cloud.glance(target)["billing_code_licence"] == "FREE"
    [result] = reseal.reseal([imported.id], driver=cloud.driver())
    assert result.result == reseal.RESEALED, result
    target = cloud.new_target()
    _restore(cloud, mgr, imported, target)
    assert cloud.glance(target) == helpers.GLANCE

    update_backup_metadata(_member(cloud), imported.id, {records.CLAIM_KEY: claim})
    assert objects.Backup.get_by_id(cloud.ctxt, imported.id).metadata == {
        records.CLAIM_KEY: claim}
    cloud.write_raw_object(imported, plain_object)
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="volume_meta is not sealed"):
        _restore(cloud, mgr, imported, target)
    assert cloud.glance(target) == {}
    assert cloud.bootable(target) is False
    assert cloud.volume_row(target).status == "error_restoring"
    # The audit judges it as the restore does.
    from sealedmeta.cinder import audit
    row = audit.judge_backup(cloud.driver(),
                             objects.Backup.get_by_id(cloud.ctxt, imported.id))
    assert row.klass == audit.INVALID


def test_a_claim_an_earlier_release_left_in_a_row_is_not_trusted(
        cloud, mgr, legacy, capsys, cinder_conf, tmp_path):  # noqa: F811
    """Migration: a row imported by a release that kept the claim in the
    row's backup metadata (tenant-writable) is refused until mark-legacy is
    run with its record, which also removes the old claim."""
    src, backup = legacy
    record = _export(cloud, mgr, backup)
    claim = _decode(record["backup_url"])["driver_info"][records.CLAIM_KEY]
    _lose_row(cloud, backup)
    imported = _import(cloud, mgr, record)
    imported.metadata = {records.CLAIM_KEY: claim, "owner-note": "kept"}
    imported.save()     # as the earlier release's import left the row
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="volume_meta is not sealed"):
        _restore(cloud, mgr, imported, target)
    code, rows, err = mark_legacy(capsys, cinder_conf, tmp_path, record)
    assert code == 0, err
    marked = objects.Backup.get_by_id(cloud.ctxt, imported.id)
    assert marked.metadata == {"owner-note": "kept"}
    target = cloud.new_target()
    _restore(cloud, mgr, marked, target)
    assert cloud.glance(target) == helpers.GLANCE


# -- a pending destroy and the backups of the database -----------------------

def _wait_due(keys, number):
    """Until version *number*'s destroy_after time has come (a whole
    second, by the clock the destroy reads)."""
    from sealedmeta import keyring as kr
    while kr.now() < keys.get_keyring("cinder-backup").version(number).destroy_after:
        time.sleep(0.2)


def test_a_pending_destroy_waits_for_the_backups_of_the_database(
        cloud, mgr, keys, capsys, cinder_conf, tmp_path):  # noqa: F811
    """``key destroy --after`` and ``--due`` with ``--scan-cinder``: a
    version is not scheduled while a backup of the database is under it;
    scheduled once that backup's row is lost, then the backup's record is
    imported again: ``--due`` keeps the version pending, naming the backup
    (exit 1), and destroys it once the backup is deleted."""
    from sealedmeta.cinder import options

    old = cloud.backup(cloud.volume(glance=helpers.GLANCE))      # version 1
    record = _export(cloud, mgr, old)
    keys.rotate("cinder-backup")
    keys.set_state("cinder-backup", 1, "retired")
    options.clear_sealer_cache()
    conf = tmp_path / "sealedmeta.conf"
    # cache_ttl = 0 here and for the agents: no agent runs beside the test.
    conf.write_text("[sealedmeta]\nkey_repository = %s\ncache_ttl = 0\n" % keys.path)
    with open(cinder_conf, "a") as handle:
        handle.write("cache_ttl = 0\n")

    def destroy(*args):
        code, out, err = run_cli(capsys, "--config-file", str(conf), "key", "destroy",
                                 "cinder-backup", *args, "--scan-cinder", cinder_conf,
                                 "-f", "json")
        return code, (json.loads(out) if out.strip() else None), err

    def state():
        return keys.get_keyring("cinder-backup").version(1).state.value

    code, _, err = destroy("1", "--after", "1h")
    assert code == 1, err
    assert "cinder backup %s" % old.id in err
    assert state() == "retired"

    _lose_row(cloud, old)
    code, row, err = destroy("1", "--after", "1h")
    assert code == 0, err
    assert state() == "pending-destruction"
    assert row["envelopes_under_version"] == 0
    code, row, err = destroy("--due")                 # an hour early
    assert code == 0, err
    assert (row["destroyed"], row["not_due"]) == ("", "1"), row
    assert state() == "pending-destruction"

    # Cancelled, retired again, scheduled a second from now.
    assert run_cli(capsys, "--config-file", str(conf), "key", "reinstate",
                   "cinder-backup", "1")[0] == 0
    keys.set_state("cinder-backup", 1, "retired")
    code, row, err = destroy("1", "--after", "1s")
    assert code == 0, err
    imported = _import(cloud, mgr, record)             # its envelope is under version 1
    _wait_due(keys, 1)
    code, row, err = destroy("--due")
    assert code == 1, err
    assert (row["destroyed"], row["in_use"]) == ("", "1"), row
    assert "found 1 envelope under it: cinder backup %s" % imported.id in err
    assert state() == "pending-destruction"

    cloud.driver().delete_backup(imported)
    imported.destroy()
    code, row, err = destroy("--due")
    assert code == 0, err
    assert row["destroyed"] == "1" and state() == "destroyed", row
