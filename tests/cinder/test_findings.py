"""Attacks on the Cinder adapter's judgement of metadata objects, each run
against the real (Sealed)PosixBackupDriver and the real ``sealedmeta verify``:
forged objects an audit called valid, oversized and deeply nested objects,
a deleted object, and the legacy_backups policies' loopholes."""

import json
import os
import tracemalloc

import pytest
from oslo_config import cfg

from cinder import exception
from sealedmeta.cinder import metadata_object
from sealedmeta.cinder import reseal

from tests.cinder import helpers
from tests.cinder.test_carrier import verify

CONF = cfg.CONF


@pytest.fixture
def override():
    """set_override in [sealedmeta], cleared after the test."""
    names = []

    def _set(name, value):
        CONF.set_override(name, value, group="sealedmeta")
        names.append(name)
    yield _set
    for name in names:
        CONF.clear_override(name, group="sealedmeta")


def _meta_name(backup):
    return backup.service_metadata + "_metadata"


def _untouched(cloud, backup, target, match):
    before, glance = cloud.data(target), cloud.glance(target)
    with pytest.raises(exception.InvalidBackup, match=match):
        cloud.restore(backup, target, volume_is_new=False)
    assert cloud.data(target) == before
    assert cloud.glance(target) == glance


# -- verify: three forgeries it called valid ---------------------------------

@pytest.fixture
def two(cloud):
    """Two sealed backups of licensed volumes: (victim, other)."""
    victim = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    other = cloud.backup(cloud.volume(glance=helpers.OTHER_GLANCE))
    return victim, other


def test_verify_plain_json_with_an_escaped_backup_id_key_is_unsealed(
        cloud, keys, capsys, two):
    victim, other = two
    obj = cloud.read_object(victim)
    forged = json.loads(cloud.driver().get_metadata(victim.volume_id))
    forged["volume-glance-metadata"]["billing_code_licence"] = "FREE"
    obj["volume_meta"] = json.dumps(forged)
    data = json.dumps(obj, sort_keys=True, indent=2).replace(
        '"backup_id"', '"backup\\u005fid"')
    assert '"backup_id"' not in data
    cloud.write_raw_object(victim, data.encode())

    code, report, found = verify(capsys, keys)

    assert code == 1
    assert found[_meta_name(victim)]["status"] == "unsealed"
    assert found[_meta_name(other)]["status"] == "valid"
    counts = report["summary"]["counts"]
    assert (counts["unsealed"], counts["valid"]) == (1, 1)
    assert report["summary"]["all_valid"] is False
    assert not any(s["path"].endswith("_metadata") for s in report["skipped"])


def test_verify_bare_armour_of_another_backup_is_not_valid(
        cloud, keys, capsys, two):
    victim, other = two
    cloud.write_raw_object(victim, cloud.read_object(other)["volume_meta"].encode())

    code, report, found = verify(capsys, keys)

    assert code == 1
    assert found[_meta_name(victim)]["status"] == "malformed"
    assert "not valid JSON" in found[_meta_name(victim)]["reason"]
    assert report["summary"]["counts"]["valid"] == 1


def test_verify_whole_object_of_another_backup_is_a_context_mismatch(
        cloud, keys, capsys, two):
    victim, other = two
    cloud.write_raw_object(victim, cloud.raw_object(other))

    code, report, found = verify(capsys, keys)

    assert code == 1
    finding = found[_meta_name(victim)]
    assert finding["status"] == "context-mismatch"
    assert victim.id in finding["reason"] and other.id in finding["reason"]
    assert report["summary"]["counts"]["valid"] == 1


# -- size, elements, depth: one bounded reader ---------------------------------

def test_verify_refuses_a_64_mib_metadata_object_in_bounded_memory(
        cloud, keys, capsys, two):
    victim, other = two
    unit = b"[],"
    with open(cloud.metadata_path(victim), "wb") as handle:
        handle.write(b"[")
        for _ in range(64):
            handle.write(unit * (1024 * 1024 // len(unit)))
        handle.write(b"[]]")
    assert os.path.getsize(cloud.metadata_path(victim)) > 64 * 1024 * 1024 - 64

    tracemalloc.start()
    try:
        code, report, found = verify(capsys, keys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert code == 1
    assert found[_meta_name(victim)]["status"] == "malformed"
    assert "limit" in found[_meta_name(victim)]["reason"]
    assert found[_meta_name(other)]["status"] == "valid"
    # At most the limit is read (in 1 MiB reads, then joined).
    assert peak < 3 * metadata_object.DEFAULT_MAX_SIZE, peak


def test_restore_refuses_an_object_over_the_configured_size(cloud, override):
    override("max_metadata_object_size", 1024 * 1024)
    backup = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    obj = cloud.read_object(backup)
    obj["padding"] = "x" * (1024 * 1024)
    cloud.write_object(backup, obj)
    target = cloud.volume(glance=helpers.OTHER_GLANCE)
    _untouched(cloud, backup, target, "%s.*over the 1048576 byte limit"
               % _meta_name(backup))


def test_restore_refuses_an_object_of_too_many_elements(cloud, override):
    override("max_metadata_object_size", 1024 * 1024)
    backup = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    obj = cloud.read_object(backup)
    obj["padding"] = [0] * (1024 * 1024 // 16)
    cloud.write_object(backup, obj)
    target = cloud.volume(glance=helpers.OTHER_GLANCE)
    _untouched(cloud, backup, target, "over 65536 JSON elements")


@pytest.mark.parametrize("depth", [33, 100000])
def test_deeply_nested_object_is_invalid_backup_not_recursion_error(
        cloud, capsys, keys, depth):
    backup = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    cloud.write_raw_object(backup, b"[" * depth + b"]" * depth)
    target = cloud.volume(glance=helpers.OTHER_GLANCE)
    _untouched(cloud, backup, target, "nested deeper than 32 levels")
    # reseal reads it with the same reader
    result = reseal.reseal_backup(cloud.driver(), backup)
    assert (result.result, "nested deeper" in result.reason) == (reseal.FAILED, True)
    code, _, found = verify(capsys, keys)
    assert found[_meta_name(backup)]["status"] == "malformed"
    assert "nested deeper" in found[_meta_name(backup)]["reason"]


def test_deeply_nested_legacy_volume_meta_is_refused(cloud):
    backup = cloud.backup(cloud.volume(glance=helpers.GLANCE),
                          cls=helpers.stock_class())
    obj = cloud.read_object(backup)
    obj["volume_meta"] = "[" * 100000 + "]" * 100000
    cloud.write_object(backup, obj)
    target = cloud.volume(glance=helpers.OTHER_GLANCE)
    _untouched(cloud, backup, target, "volume_meta is not valid JSON")


# -- a deleted metadata object -------------------------------------------------

def test_deleted_metadata_object_is_invalid_backup_naming_it(cloud):
    backup = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    os.unlink(cloud.metadata_path(backup))
    target = cloud.volume(glance=helpers.OTHER_GLANCE)
    _untouched(cloud, backup, target,
               "metadata object %s of backup %s is missing"
               % (_meta_name(backup), backup.id))
    result = reseal.reseal_backup(cloud.driver(), backup)
    assert result.result == reseal.FAILED
    assert "is missing" in result.reason


# -- legacy_backups = drop-glance: nothing Cinder applies from the object ----

def _forge_base(cloud, backup, **fields):
    obj = cloud.read_object(backup)
    meta = json.loads(obj["volume_meta"])
    meta["volume-base-metadata"].update(fields)
    obj["volume_meta"] = json.dumps(meta)
    cloud.write_object(backup, obj)


def test_drop_glance_takes_no_encryption_key_id_from_the_object(cloud, override):
    override("legacy_backups", "drop-glance")
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())
    _forge_base(cloud, backup, encryption_key_id="forged-key-id")
    target = cloud.new_target()

    cloud.restore(backup, target)

    assert cloud.data(target) == cloud.data(src)
    assert cloud.volume_row(target).encryption_key_id is None
    assert cloud.glance(target) == {}


def test_drop_glance_takes_the_encryption_key_id_from_the_database(
        cloud, override):
    override("legacy_backups", "drop-glance")
    src = cloud.volume(glance=helpers.GLANCE, encryption_key_id="db-key-id")
    backup = cloud.backup(src, cls=helpers.stock_class())
    _forge_base(cloud, backup, encryption_key_id="forged-key-id")
    target = cloud.new_target()

    cloud.restore(backup, target)

    assert cloud.volume_row(target).encryption_key_id == "db-key-id"
    assert cloud.volume_row(target).volume_type_id == cloud.type_id


# -- legacy_backups = reject: decided from the database alone ----------------

def test_reject_is_not_bypassed_by_a_sealed_prefix_under_drop(cloud, override):
    override("legacy_backups", "reject")
    override("on_invalid", "drop")
    backup = cloud.backup(cloud.volume(glance=helpers.GLANCE),
                          cls=helpers.stock_class())
    obj = cloud.read_object(backup)
    obj["volume_meta"] = "sealedmeta:AAAA"
    cloud.write_object(backup, obj)
    target = cloud.volume(glance=helpers.OTHER_GLANCE)
    _untouched(cloud, backup, target, "legacy_backups = reject")
    assert cloud.bootable(target) is True


def test_reject_still_lets_reseal_seal_a_legacy_backup(cloud, override):
    override("legacy_backups", "reject")
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())

    result = reseal.reseal_backup(cloud.driver(), backup)

    assert result.result == reseal.RESEALED, result.reason
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target) == helpers.GLANCE
