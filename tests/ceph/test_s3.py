"""Cinder 29's real S3BackupDriver and SealedS3BackupDriver against a real
radosgw: backup, incremental, restore, delete; tampering as the tenant
through the S3 API, each refused before a byte reaches the target; another
tenant denied; stock backups under each legacy policy; reseal through the
command line, also on a versioned bucket."""

import base64
import json

import pytest
from oslo_config import cfg

import sealedmeta
from cinder.backup.drivers import s3 as stock_s3
from cinder import exception
from cinder import objects

from tests.ceph import s3_helpers
from tests import bounded_reads
from tests.bounded_reads import ServerLog, one_bounded_get, oversized, refused, rgw_gets
from tests.cinder import helpers
from tests.sm_cli import run_in_process as run_cli

CONF = cfg.CONF
BILLING = helpers.GLANCE["billing_code_licence"].encode()
REFUSED = []     # tamper cases refused before a byte was written (reported)


@pytest.fixture
def s3(ctxt, tmp_path, ceph):
    cloud = s3_helpers.S3Cloud(ctxt, str(tmp_path / "volumes"), ceph)
    cloud.configure()
    yield cloud
    cloud.unconfigure()


@pytest.fixture
def victim(s3):
    src = s3.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    backup = s3.backup(src)
    target = s3.volume(glance=helpers.OTHER_GLANCE, name="target")
    return src, backup, target


def test_full_incremental_restore_delete(s3):
    src = s3.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    first = s3.data(src)
    full = s3.backup(src)
    s3.write(src, helpers.CHUNK + 100, b"changed" * 1000)
    incr = s3.backup(src, parent=full)
    assert s3.object_names(full) and s3.object_names(incr)

    for backup, expected in ((incr, s3.data(src)), (full, first)):
        target = s3.new_target()
        s3.restore(backup, target)
        assert s3.data(target) == expected
        assert s3.glance(target) == helpers.GLANCE
        assert s3.bootable(target) is True
        assert s3.user_meta(target) == {"tier": "gold"}

    header = sealedmeta.inspect(s3.read_object(incr)["volume_meta"])
    assert dict(header.context) == {"backup_id": incr.id, "volume_id": src}
    stored = s3.all_stored_bytes()
    # full: five chunks, sha256 file, metadata; incremental: one chunk, two
    assert len(stored) == 7 + 3
    assert [key for key, body in stored if BILLING in body] == []

    driver = s3.driver()
    driver.delete_backup(objects.Backup.get_by_id(s3.ctxt, incr.id))
    driver.delete_backup(objects.Backup.get_by_id(s3.ctxt, full.id))
    assert s3.object_names() == []


def test_stock_driver_stores_the_billing_code_in_clear(s3):
    # What the sealed class prevents, shown on the stock one in the same bucket.
    src = s3.volume(glance=helpers.GLANCE)
    s3.backup(src, cls=stock_s3.S3BackupDriver)
    assert [key for key, body in s3.all_stored_bytes() if BILLING in body] != []


def _raw(armour):
    body = armour[len("sealedmeta:"):]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _forge_plain(s3, backup, src):
    obj = s3.read_object(backup)
    obj["volume_meta"] = json.dumps({
        "version": 2, "volume-base-metadata": {},
        "volume-glance-metadata": dict(helpers.GLANCE, billing_code_licence="FREE")})
    s3.write_object(backup, obj)


def _flip_armour(s3, backup, src):
    obj = s3.read_object(backup)
    armour = obj["volume_meta"]
    index = len(armour) // 2
    obj["volume_meta"] = armour[:index] + ("B" if armour[index] != "B" else "C") + \
        armour[index + 1:]
    s3.write_object(backup, obj)


def _other_envelope(s3, backup, src):
    donor = s3.backup(s3.volume(glance=helpers.OTHER_GLANCE))
    obj = s3.read_object(backup)
    obj["volume_meta"] = s3.read_object(donor)["volume_meta"]
    s3.write_object(backup, obj)


def _other_object(s3, backup, src):
    donor = s3.backup(src)        # same volume: same chunk layout
    s3.write_raw_object(backup, s3.raw_object(donor))


TAMPER = {"forged-plain-volume-meta": _forge_plain,
          "flipped-armour-character": _flip_armour,
          "other-backups-envelope": _other_envelope,
          "other-backups-whole-object": _other_object}


def assert_refused(s3, backup, target, case):
    before, glance_before = s3.data(target), s3.glance(target)
    with pytest.raises(exception.InvalidBackup):
        s3.restore(backup, target, volume_is_new=False)
    assert s3.data(target) == before
    assert s3.glance(target) == glance_before
    assert s3.bootable(target) is True
    REFUSED.append(case)


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampering_as_the_tenant_is_refused_before_writing(s3, victim, case):
    src, backup, target = victim
    TAMPER[case](s3, backup, src)
    assert_refused(s3, backup, target, case)


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_tampered_parent_under_an_intact_incremental(s3, victim, case):
    src, full, target = victim
    s3.write(src, 0, b"newer" * 100)
    incr = s3.backup(src, parent=full)
    intact = s3.raw_object(incr)
    TAMPER[case](s3, full, src)
    assert s3.raw_object(incr) == intact
    assert_refused(s3, incr, target, "parent:" + case)


def test_another_tenant_is_denied(s3, victim):
    src, backup, target = victim
    other = s3_helpers.client(s3.ceph, "tenant2")
    key = s3.metadata_key(backup)
    for call in (lambda: other.get_object(Bucket=s3.bucket, Key=key),
                 lambda: other.put_object(Bucket=s3.bucket, Key=key, Body=b"{}"),
                 lambda: other.delete_object(Bucket=s3.bucket, Key=key),
                 lambda: other.list_objects_v2(Bucket=s3.bucket)):
        with pytest.raises(s3_helpers.ClientError) as caught:
            call()
        assert caught.value.response["Error"]["Code"] == "AccessDenied"
    target = s3.new_target()
    s3.restore(backup, target)
    assert s3.glance(target) == helpers.GLANCE


def test_missing_metadata_object_is_an_invalid_backup_naming_it(s3, victim):
    src, backup, target = victim
    key = s3.metadata_key(backup)
    s3.tenant.delete_object(Bucket=s3.bucket, Key=key)
    before = s3.data(target)
    with pytest.raises(exception.InvalidBackup) as caught:
        s3.restore(backup, target, volume_is_new=False)
    assert key in str(caught.value) and s3.bucket in str(caught.value)
    assert "NoSuchKey" not in str(caught.value)
    assert s3.data(target) == before


# -- stock backups ---------------------------------------------------------

@pytest.fixture
def legacy(s3):
    src = s3.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    return src, s3.backup(src, cls=stock_s3.S3BackupDriver)


def test_legacy_trust(s3, legacy):
    src, backup = legacy
    target = s3.new_target()
    s3.restore(backup, target)
    assert s3.data(target) == s3.data(src)
    assert s3.glance(target) == helpers.GLANCE
    assert s3.bootable(target) is True


def test_legacy_drop_glance(s3, legacy):
    CONF.set_override("legacy_backups", "drop-glance", group="sealedmeta")
    src, backup = legacy
    target = s3.volume(glance=helpers.OTHER_GLANCE, name="target")
    s3.restore(backup, target, volume_is_new=False)
    assert s3.data(target) == s3.data(src)
    assert s3.glance(target) == {}
    assert s3.bootable(target) is False
    assert s3.user_meta(target) == {"tier": "gold"}


def test_legacy_reject(s3, legacy):
    CONF.set_override("legacy_backups", "reject", group="sealedmeta")
    src, backup = legacy
    target = s3.volume(glance=helpers.OTHER_GLANCE, name="target")
    before = s3.data(target)
    with pytest.raises(exception.InvalidBackup, match="legacy_backups = reject"):
        s3.restore(backup, target, volume_is_new=False)
    assert s3.data(target) == before


# -- reseal through the command line -----------------------------------------

@pytest.fixture
def cinder_conf(tmp_path, keys, s3):
    lines = ["[DEFAULT]", "backup_driver = %s" % s3_helpers.SEALED_S3]
    lines += ["%s = %s" % item for item in s3_helpers.s3_settings(
        s3.ceph, s3.bucket).items()]
    lines += ["[database]", "connection = sqlite://",
              "[sealedmeta]", "key_repository = %s" % keys.path, ""]
    path = tmp_path / "cinder.conf"
    path.write_text("\n".join(lines))
    return str(path)


def reseal(capsys, cinder_conf, *backups):
    args = []
    for backup in backups:
        args += ["--backup-id", backup.id]
    code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder", "reseal",
                             *args, "-f", "json")
    return code, {row["backup_id"]: row for row in json.loads(out)}, err


def _forge_billing(s3, backup):
    obj = s3.read_object(backup)
    meta = json.loads(obj["volume_meta"])
    meta["volume-glance-metadata"]["billing_code_licence"] = "FREE"
    obj["volume_meta"] = json.dumps(meta)
    s3.write_object(backup, obj)


def test_reseal_of_stock_s3_backups(s3, legacy, capsys, cinder_conf):
    src, backup = legacy
    _forge_billing(s3, backup)
    names = s3.object_names(backup)
    code, rows, err = reseal(capsys, cinder_conf, backup)
    assert code == 0, err
    assert rows[backup.id]["result"] == "resealed"
    assert s3.object_names(backup) == names
    assert objects.Backup.get_by_id(s3.ctxt, backup.id).service == s3_helpers.SEALED_S3
    assert [key for key, body in s3.all_stored_bytes() if BILLING in body] == []
    target = s3.new_target()
    s3.restore(backup, target)
    assert s3.glance(target) == helpers.GLANCE       # the database's, not "FREE"
    assert s3.bootable(target) is True


def _versions(s3, backup):
    key = s3.metadata_key(backup)
    listing = s3.tenant.list_object_versions(Bucket=s3.bucket, Prefix=key)
    return [v for v in listing.get("Versions", []) if v["Key"] == key]


def test_reseal_on_a_versioned_bucket_removes_the_plain_versions(s3, legacy, capsys,
                                                                  cinder_conf):
    src, backup = legacy
    s3.tenant.put_bucket_versioning(Bucket=s3.bucket,
                                    VersioningConfiguration={"Status": "Enabled"})
    _forge_billing(s3, backup)                # a second, versioned plain copy
    assert len(_versions(s3, backup)) == 2
    code, rows, err = reseal(capsys, cinder_conf, backup)
    assert code == 0, err
    assert rows[backup.id]["result"] == "resealed"
    versions = _versions(s3, backup)
    assert [v["IsLatest"] for v in versions] == [True]
    assert [key for key, body in s3.all_stored_bytes() if BILLING in body] == []


def test_reseal_reports_each_plain_version_it_could_not_remove(s3, legacy, capsys,
                                                               cinder_conf):
    src, backup = legacy
    s3.tenant.put_bucket_versioning(Bucket=s3.bucket,
                                    VersioningConfiguration={"Status": "Enabled"})
    _forge_billing(s3, backup)
    old = sorted(v["VersionId"] for v in _versions(s3, backup))
    s3.tenant.put_bucket_policy(Bucket=s3.bucket, Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": {"AWS": ["arn:aws:iam:::user/cinder"]},
            "Action": "s3:DeleteObjectVersion",
            "Resource": "arn:aws:s3:::%s/*" % s3.bucket}]}))
    code, rows, err = reseal(capsys, cinder_conf, backup)
    assert code == 1
    row = rows[backup.id]
    assert row["result"] == "resealed-plaintext-left"
    for version_id in old:
        assert "%s (AccessDenied)" % version_id in row["reason"]
    assert sealedmeta.inspect(s3.read_object(backup)["volume_meta"])  # resealed


def test_zz_report_refused_counts():
    # Printed for the record (pytest -s); every case above asserts its own.
    print("\nS3 tamper matrix: %d refused before any write: %s"
          % (len(REFUSED), ", ".join(REFUSED)))


# -- bounded reads -------------------------------------------------------------

LIMIT = 64 * 1024
BIG = 32 * 1024 * 1024


@pytest.mark.parametrize("read", bounded_reads.READERS)
def test_an_oversized_metadata_object_is_refused_before_its_body(s3, legacy, read):
    """The tenant makes its (pre-switch) backup's metadata object 32 MiB of
    valid JSON; max_metadata_object_size is 64 KiB. One ranged GET: radosgw
    reports the size (ContentRange) and sends at most the limit and one
    byte; the process never holds the object."""
    src, backup = legacy
    CONF.set_override("max_metadata_object_size", LIMIT, group="sealedmeta")
    s3.write_raw_object(backup, oversized(s3.read_object(backup), BIG))
    log = ServerLog(s3.ceph.env["logs"]["rgw"])
    error, peak = refused(lambda: read(s3, backup), exception.InvalidBackup,
                          "over the %d byte limit" % LIMIT)
    # radosgw sent at most the limit and one byte, never the object.
    one_bounded_get(rgw_gets(log, s3.bucket, s3.metadata_key(backup)), LIMIT)
    assert peak < 4 * 1024 * 1024, peak
    assert ("is %d bytes, over the %d byte limit ([sealedmeta]"
            " max_metadata_object_size): not read" % (BIG, LIMIT)) in str(error)


def test_an_empty_metadata_object_is_read_as_empty(s3, legacy):
    """An empty object has no byte 0: radosgw refuses the range
    (InvalidRange); it is read as the empty object it is, and refused as
    not JSON, not as a store error."""
    src, backup = legacy
    s3.write_raw_object(backup, b"")
    assert s3.driver().read_object_bounded(
        s3.bucket, s3.metadata_key(backup), LIMIT) == b""
    with pytest.raises(exception.InvalidBackup, match="is not valid JSON"):
        bounded_reads.audit(s3, backup)
