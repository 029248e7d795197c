"""Honest backups and restores through the real SealedPosixBackupDriver."""

import base64
import json

import sealedmeta

from tests.cinder import helpers


def test_backup_object_holds_a_sealed_envelope_and_nothing_in_clear(cloud):
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"owner-note": "payroll"})
    backup = cloud.backup(src)

    obj = cloud.read_object(backup)
    assert obj["volume_meta"].startswith("sealedmeta:")
    raw = cloud.raw_object(backup)
    for secret in ("RHEL-PREMIUM-0042", "billing_code_licence", "payroll",
                   "volume-glance-metadata"):
        assert secret.encode() not in raw
    header = sealedmeta.inspect(obj["volume_meta"])
    assert dict(header.context) == {"backup_id": backup.id, "volume_id": src}
    assert header.keyring == "cinder-backup"
    # Nothing added under the prefix: chunks, _metadata, _sha256file only.
    names = cloud.object_names(backup)
    prefix = backup.service_metadata
    assert sorted(names) == sorted(
        ["%s-%05d" % (prefix, i) for i in range(1, 6)]
        + [prefix + "_metadata", prefix + "_sha256file"])
    assert backup.service == helpers.SEALED_POSIX


def test_restore_into_a_new_volume(cloud):
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    backup = cloud.backup(src)
    target = cloud.new_target()

    cloud.restore(backup, target, volume_is_new=True)

    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == helpers.GLANCE
    assert cloud.bootable(target) is True
    assert cloud.user_meta(target) == {"tier": "gold"}
    assert cloud.volume_row(target).display_name == "vol"


def test_restore_into_an_existing_volume_replaces_its_glance_metadata(cloud):
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    target = cloud.volume(glance=helpers.OTHER_GLANCE, name="kept-name")
    assert cloud.data(target) != cloud.data(src)

    cloud.restore(backup, target, volume_is_new=False)

    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == helpers.GLANCE
    assert cloud.bootable(target) is True
    assert cloud.volume_row(target).display_name == "kept-name"


def test_restore_of_a_volume_without_glance_metadata(cloud):
    src = cloud.volume(user_meta={"k": "v"})
    backup = cloud.backup(src)
    target = cloud.new_target()

    cloud.restore(backup, target)

    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == {}
    assert cloud.bootable(target) is False
    assert cloud.user_meta(target) == {"k": "v"}


def test_incremental_chain(cloud):
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"stage": "full"})
    full = cloud.backup(src)
    state_full = cloud.data(src)

    cloud.write(src, helpers.CHUNK + 100, b"\x01" * 5000)
    helpers.db.volume_metadata_update(cloud.ctxt, src, {"stage": "incr1"}, True)
    incr1 = cloud.backup(src, parent=full)
    state_incr1 = cloud.data(src)

    cloud.write(src, 3 * helpers.CHUNK, bytes(9000))   # data -> zeros
    helpers.db.volume_metadata_update(cloud.ctxt, src, {"stage": "incr2"}, True)
    incr2 = cloud.backup(src, parent=incr1)
    state_incr2 = cloud.data(src)

    # Every member carries its own envelope, bound to its own id.
    for member in (full, incr1, incr2):
        header = sealedmeta.inspect(cloud.read_object(member)["volume_meta"])
        assert header.context["backup_id"] == member.id
    # An incremental stores only what changed.
    assert len(cloud.read_object(incr1)["objects"]) == 1

    for member, state, stage in ((incr2, state_incr2, "incr2"),
                                 (incr1, state_incr1, "incr1"),
                                 (full, state_full, "full")):
        target = cloud.new_target()
        cloud.restore(member, target)
        assert cloud.data(target) == state
        assert cloud.glance(target) == helpers.GLANCE
        assert cloud.bootable(target) is True
        assert cloud.user_meta(target) == {"stage": stage}


def test_restore_applies_the_whole_original_volume_meta(cloud, keys):
    """The payload is the driver's own volume_meta string, byte for byte."""
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"a": "1"})
    expected = cloud.driver().get_metadata(src)
    backup = cloud.backup(src)
    armour = cloud.read_object(backup)["volume_meta"]
    sealer = sealedmeta.Sealer(keys)
    payload = sealer.open(armour, {"backup_id": backup.id, "volume_id": src})
    assert payload == {"format": "cinder-volume-meta/1", "volume_meta": expected}
    meta = json.loads(payload["volume_meta"])
    assert meta["volume-glance-metadata"] == helpers.GLANCE
    # The armour is canonical unpadded base64url of the envelope.
    body = armour[len("sealedmeta:"):]
    assert "=" not in body
    assert base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).startswith(b"SMETA")
