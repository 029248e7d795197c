"""The cinder-metadata carrier under the admin CLI: ``sealedmeta verify`` and
``sealedmeta rewrap`` over a real posix backup directory."""

import json

import pytest
from oslo_config import cfg

import sealedmeta
from sealedmeta import carriers
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta.cinder import carrier as cinder_carrier
from sealedmeta.cinder import options

from tests.cinder import helpers
from tests.sm_cli import run_in_process as run_cli

CONF = cfg.CONF


def verify(capsys, keys, *extra):
    code, out, err = run_cli(capsys, "--key-repository", keys.path, "verify",
                             CONF.backup_posix_path, "-f", "json", *extra)
    report = json.loads(out)
    by_name = {}
    for finding in report["envelopes"]:
        by_name[finding["path"].rsplit("/", 1)[-1]] = finding
    return code, report, by_name


def _meta_name(backup):
    return backup.service_metadata + "_metadata"


def test_the_carrier_is_installed():
    names = [c.name for c in carriers.load_carriers()]
    assert "cinder-metadata" in names
    assert names.index("cinder-metadata") < names.index("raw")


def test_verify_finds_every_sealed_metadata_object(cloud, keys, capsys):
    src = cloud.volume(glance=helpers.GLANCE)
    backups = [cloud.backup(src), cloud.backup(cloud.volume())]
    code, report, found = verify(capsys, keys)
    assert code == 0
    assert sorted(found) == sorted(_meta_name(b) for b in backups)
    assert all(f["status"] == "valid" for f in found.values())
    # chunks and sha256 files are skipped, not mistaken for envelopes
    assert report["summary"]["skipped"] == 2 * (5 + 1)


def copy_envelope(cloud, donor, victim):
    """Put the envelope of backup *donor* into *victim*'s metadata object."""
    obj = cloud.read_object(victim)
    obj["volume_meta"] = cloud.read_object(donor)["volume_meta"]
    cloud.write_object(victim, obj)


def test_verify_checks_the_context_against_the_objects_own_ids(cloud, keys, capsys):
    src = cloud.volume(glance=helpers.GLANCE)
    victim, donor = cloud.backup(src), cloud.backup(src)
    copy_envelope(cloud, donor, victim)

    code, report, found = verify(capsys, keys)

    assert code == 1
    assert found[_meta_name(donor)]["status"] == "valid"
    bad = found[_meta_name(victim)]
    assert bad["status"] == "context-mismatch"
    assert bad["reason"] == (
        "sealed for another context than its file expects (cinder-metadata):"
        " backup_id is %r, not %r" % (donor.id, victim.id))
    assert (bad["keyring"], bad["version"]) == ("cinder-backup", 1)
    assert report["summary"]["counts"]["context-mismatch"] == 1
    assert report["summary"]["counts"]["malformed"] == 0


def test_verify_reports_a_copy_from_another_volumes_backup(cloud, keys, capsys):
    victim = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    donor = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    copy_envelope(cloud, donor, victim)

    code, report, found = verify(capsys, keys)

    assert code == 1
    bad = found[_meta_name(victim)]
    assert bad["status"] == "context-mismatch"
    assert bad["reason"] == (
        "sealed for another context than its file expects (cinder-metadata):"
        " backup_id is %r, not %r, volume_id is %r, not %r"
        % (donor.id, victim.id, donor.volume_id, victim.volume_id))


def test_rewrap_leaves_a_copied_envelope_alone(cloud, keys, capsys):
    src = cloud.volume(glance=helpers.GLANCE)
    victim, donor = cloud.backup(src), cloud.backup(src)
    copy_envelope(cloud, donor, victim)
    before = cloud.raw_object(victim)
    keys.rotate("cinder-backup")

    code, out, err = run_cli(capsys, "--key-repository", keys.path, "rewrap",
                             CONF.backup_posix_path, "-f", "json")

    assert code == 1
    summary = json.loads(out)
    assert (summary["rewrapped"], summary["failed"]) == (1, 1)
    assert "backup_id is %r, not %r" % (donor.id, victim.id) in (
        summary["failures"][0]["reason"])
    assert cloud.raw_object(victim) == before


def test_verify_reports_a_flipped_bit_and_an_unsealed_object(cloud, keys, capsys):
    src = cloud.volume(glance=helpers.GLANCE)
    flipped = cloud.backup(src)
    legacy = cloud.backup(src, cls=helpers.stock_class())
    obj = cloud.read_object(flipped)
    obj["volume_meta"] = obj["volume_meta"][:-3] + "AAA"
    cloud.write_object(flipped, obj)

    code, report, found = verify(capsys, keys)

    assert code == 1
    assert found[_meta_name(flipped)]["status"] == "invalid"
    unsealed = found[_meta_name(legacy)]
    assert unsealed["status"] == "unsealed"
    assert "not sealed" in unsealed["reason"]


def test_verify_and_rewrap_take_the_object_size_limit_from_the_configuration(
        cloud, keys, capsys, tmp_path):
    """[sealedmeta] max_metadata_object_size bounds the metadata objects
    verify and rewrap read, as it does for the drivers (verify used a fixed
    8 MiB whatever the configuration said)."""
    backup = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    obj = cloud.read_object(backup)
    obj["padding"] = "x" * (100 * 1024)
    cloud.write_object(backup, obj)
    conf = tmp_path / "sealedmeta.conf"
    conf.write_text("[sealedmeta]\nmax_metadata_object_size = 65536\n")

    code, report, found = verify(capsys, keys)
    assert (code, found[_meta_name(backup)]["status"]) == (0, "valid")
    code, report, found = verify(capsys, keys, "--config-file", str(conf))
    assert code == 1
    assert found[_meta_name(backup)]["status"] == "malformed"
    assert "over the 65536 byte limit" in found[_meta_name(backup)]["reason"]

    keys.rotate("cinder-backup")
    before = cloud.raw_object(backup)
    code, out, err = run_cli(capsys, "--key-repository", keys.path, "--config-file",
                             str(conf), "rewrap", CONF.backup_posix_path, "-f", "json")
    assert code == 1
    assert json.loads(out)["failed"] == 1
    assert "over the 65536 byte limit" in out
    assert cloud.raw_object(backup) == before


def test_verify_expect_pairs_apply(cloud, keys, capsys):
    src = cloud.volume(glance=helpers.GLANCE)
    cloud.backup(src)
    code, _, found = verify(capsys, keys, "--expect", "volume_id=%s" % src)
    assert code == 0
    code, _, found = verify(capsys, keys, "--expect", "volume_id=another")
    assert code == 1
    assert [f["status"] for f in found.values()] == ["context-mismatch"]


def test_rewrap_after_rotation_changes_only_the_armour(cloud, keys, capsys):
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    before = cloud.raw_object(backup)
    old_armour = cloud.read_object(backup)["volume_meta"]
    keys.rotate("cinder-backup")

    code, out, err = run_cli(capsys, "--key-repository", keys.path, "rewrap",
                             CONF.backup_posix_path, "-f", "json")
    assert code == 0, err
    assert json.loads(out)["rewrapped"] == 1

    after = cloud.raw_object(backup)
    new_armour = cloud.read_object(backup)["volume_meta"]
    assert sealedmeta.inspect(new_armour).key_version == 2
    assert after == before.replace(old_armour.encode(), new_armour.encode())

    # Cinder restores it, even with version 1 retired.
    keys.set_state("cinder-backup", 1, "retired")
    options.clear_sealer_cache()
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target) == helpers.GLANCE
    assert cloud.data(target) == cloud.data(src)


def test_carrier_takes_the_expected_context_from_the_objects_name(
        cloud, keys):
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    path = cloud.metadata_path(backup)
    carrier = cinder_carrier.CinderMetadataCarrier()
    carried = carrier.extract(path, cloud.raw_object(backup))
    assert carried.expected_context == {"backup_id": backup.id,
                                        "volume_id": src}
    # Also when another backup's envelope sits in it: judged after
    # authentication (context-mismatch), not refused as malformed here.
    obj = cloud.read_object(backup)
    obj["volume_meta"] = cloud.read_object(cloud.backup(src))["volume_meta"]
    carried = carrier.extract(path, json.dumps(obj).encode())
    assert carried.expected_context == {"backup_id": backup.id,
                                        "volume_id": src}
    # The object's own ids do not decide it.
    obj["backup_id"], obj["volume_id"] = "another", "another"
    carried = carrier.extract(path, json.dumps(obj).encode())
    assert carried.expected_context == {"backup_id": backup.id,
                                        "volume_id": src}


def test_carrier_claims_every_metadata_object_by_name():
    carrier = cinder_carrier.CinderMetadataCarrier()
    raw = carriers.RawCarrier()
    head = b'{\n  "backup_description": null,\n  "backup_id": "x",'
    assert carrier.sniff("/b/volume_x_backup_y_metadata", head)
    assert not carrier.sniff("/b/volume_x_backup_y_sha256file", head)
    assert not carrier.sniff("/b/volume_x_backup_y-00001", head)
    # Whatever the content: spelled otherwise, plain, or a bare envelope;
    # and the raw carrier never takes one.
    # Elsewhere the raw carrier takes what starts as an envelope or as
    # armour (the prefix and base64url, if perhaps damaged), and any x.env.
    for head, envelope_like in ((b"hello", False),
                                (b'{"backup\\u005fid": "y"}', False),
                                (b"sealedmeta:AAAA", True),
                                (b"sealedmeta: a log line", False),
                                (envelope.MAGIC + b"\0" * 8, True)):
        assert carrier.sniff("/b/x_metadata", head)
        assert not raw.sniff("/b/x_metadata", head)
        assert raw.sniff("/b/x", head) is envelope_like
        assert raw.sniff("/b/x.env", head)


VOLUME = "11111111-1111-4111-8111-111111111111"
NAME = "/b/volume_%s_20260101_backup_a_metadata" % VOLUME


@pytest.mark.parametrize("path,data,match", [
    (NAME, b'{"backup_id": "a", "backup_id": "b", "volume_id": "v"}', "duplicate"),
    ("/b/x_metadata",
     b'{"backup_id": "a", "volume_id": "v", "volume_meta": "sealedmeta:AA"}',
     "which backup"),
    ("/b/az_nova_backup_a_metadata",
     b'{"backup_id": "a", "volume_id": 1, "volume_meta": "sealedmeta:AA"}',
     "must be a string"),
    (NAME, b'[1, 2]', "not a JSON object"),
    (NAME, b'{"backup_id": "a", "volume_id": "v", "volume_meta": "sealedmeta:@@"}',
     "base64url"),
])
def test_carrier_refuses_malformed_objects(path, data, match):
    carrier = cinder_carrier.CinderMetadataCarrier()
    with pytest.raises(exceptions.MalformedEnvelope, match=match):
        carrier.extract(path, data)


@pytest.mark.parametrize("data", [
    b'{"backup_id": "a", "volume_id": "v", "volume_meta": "{}"}',
    b'{"backup\\u005fid": "a", "volume_id": "v", "volume_meta": "{}"}',
    b'{"backup_id": "a", "volume_id": "v"}',
])
def test_carrier_reports_unsealed_objects(data):
    carrier = cinder_carrier.CinderMetadataCarrier()
    with pytest.raises(carriers.Unsealed, match="not sealed"):
        carrier.extract(NAME, data)


def test_carrier_volume_id_comes_from_the_path():
    carrier = cinder_carrier.CinderMetadataCarrier()
    obj = b'{"backup_id": "a", "volume_id": "v", "volume_meta": "sealedmeta:AA"}'
    # Swift/S3 layout: volume_<id>/<time>/az_<zone>_backup_<id>_metadata
    path = "/copy/volume_%s/20260101/az_nova_backup_a_metadata" % VOLUME
    with pytest.raises(exceptions.MalformedEnvelope):  # AA is no envelope
        carrier.extract(path, obj)
    assert carrier.expected_context(path, {"volume_id": "v"}) == {
        "backup_id": "a", "volume_id": VOLUME}
    assert carrier.expected_context(NAME, {"volume_id": "v"}) == {
        "backup_id": "a", "volume_id": VOLUME}
