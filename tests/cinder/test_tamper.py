"""Every change an attacker can make to the backup objects is refused with
cinder's InvalidBackup before a byte of the target volume is written."""

import base64
import json
import re
import string

import pytest

from cinder import exception

from tests.cinder import helpers


def _raw(armour):
    body = armour[len("sealedmeta:"):]
    return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))


def _armour(raw):
    return "sealedmeta:" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture
def victim(cloud):
    """A sealed backup of a licensed volume and an existing target volume
    with other data and other Glance metadata."""
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    backup = cloud.backup(src)
    target = cloud.volume(glance=helpers.OTHER_GLANCE, name="target")
    return src, backup, target


def assert_refused(cloud, backup, target, match="cannot be trusted"):
    before = cloud.data(target)
    glance_before = cloud.glance(target)
    with pytest.raises(exception.InvalidBackup, match=match):
        cloud.restore(backup, target, volume_is_new=False)
    assert cloud.data(target) == before
    assert cloud.glance(target) == glance_before
    assert cloud.bootable(target) is True


@pytest.mark.parametrize("where", ["magic", "header", "context", "salt",
                                   "ciphertext", "mac", "last"])
def test_one_flipped_bit_in_the_envelope(cloud, victim, where):
    src, backup, target = victim
    obj = cloud.read_object(backup)
    raw = bytearray(_raw(obj["volume_meta"]))
    position = {
        "magic": 0, "header": 9, "context": raw.find(backup.id.encode()) + 3,
        "salt": 120, "ciphertext": len(raw) - 100, "mac": len(raw) - 20,
        "last": len(raw) - 1}[where]
    assert 0 <= position < len(raw)
    raw[position] ^= 0x01
    obj["volume_meta"] = _armour(bytes(raw))
    cloud.write_object(backup, obj)
    assert_refused(cloud, backup, target)


# Why each flipped character is refused: the prefix is no longer sealed's,
# the magic changes, a ciphertext byte changes, the last character gets
# bits the armour's last group may not have.
ARMOUR_FLIPS = {0: "its volume_meta is not sealed",
                11: "not a sealedmeta envelope (bad magic)",
                12: "not a sealedmeta envelope (bad magic)",
                500: "envelope failed authentication",
                -1: "armour is not canonical base64url"}
BASE64URL = frozenset(string.ascii_letters + string.digits + "-_")


@pytest.mark.parametrize("index", sorted(ARMOUR_FLIPS))
def test_one_flipped_bit_of_the_armour_text(cloud, victim, index):
    src, backup, target = victim
    obj = cloud.read_object(backup)
    armour = obj["volume_meta"]
    at = index % len(armour)
    flipped = chr(ord(armour[at]) ^ 0x01)
    obj["volume_meta"] = armour[:at] + flipped + armour[at + 1:]
    cloud.write_object(backup, obj)
    why = ARMOUR_FLIPS[index]
    if index != 0 and flipped not in BASE64URL:
        # Past the prefix, a character of the random part may become one
        # base64url does not have.
        why = "armour is not unpadded base64url"
    assert_refused(cloud, backup, target,
                   match="cannot be trusted: .*" + re.escape(why))


@pytest.mark.parametrize("index", [11, 40, -7])
def test_one_changed_character_of_the_armour(cloud, victim, index):
    src, backup, target = victim
    obj = cloud.read_object(backup)
    armour = obj["volume_meta"]
    char = armour[index]
    obj["volume_meta"] = armour[:index] + ("B" if char != "B" else "C") + armour[index + 1:]
    assert obj["volume_meta"] != armour
    cloud.write_object(backup, obj)
    assert_refused(cloud, backup, target)


def test_forged_plain_json_volume_meta(cloud, victim):
    """The attacker puts back plain JSON with the billing code of a free
    image: a backup made by the sealed driver must be sealed."""
    src, backup, target = victim
    forged = json.loads(cloud.driver().get_metadata(src))
    forged["volume-glance-metadata"]["billing_code_licence"] = "FREE"
    obj = cloud.read_object(backup)
    obj["volume_meta"] = json.dumps(forged)
    cloud.write_object(backup, obj)
    assert_refused(cloud, backup, target, match="not sealed")


def test_forged_plain_json_is_refused_even_when_legacy_backups_are_trusted(cloud, victim):
    src, backup, target = victim
    helpers.CONF.set_override("legacy_backups", "trust", group="sealedmeta")
    obj = cloud.read_object(backup)
    obj["volume_meta"] = json.dumps({"version": 2, "volume-glance-metadata": {"x": "y"}})
    cloud.write_object(backup, obj)
    assert_refused(cloud, backup, target, match="not sealed")


def test_volume_meta_removed(cloud, victim):
    src, backup, target = victim
    obj = cloud.read_object(backup)
    del obj["volume_meta"]
    cloud.write_object(backup, obj)
    assert_refused(cloud, backup, target, match="not sealed")


def test_envelope_copied_from_another_backup_of_the_same_volume(cloud, victim):
    src, backup, target = victim
    other = cloud.backup(src)  # same volume, same metadata, another backup
    obj = cloud.read_object(backup)
    obj["volume_meta"] = cloud.read_object(other)["volume_meta"]
    cloud.write_object(backup, obj)
    assert_refused(cloud, backup, target, match="another context")


def test_envelope_copied_from_a_backup_of_another_volume(cloud, victim):
    src, backup, target = victim
    cheap = cloud.volume(glance=helpers.OTHER_GLANCE)
    other = cloud.backup(cheap)
    obj = cloud.read_object(backup)
    obj["volume_meta"] = cloud.read_object(other)["volume_meta"]
    cloud.write_object(backup, obj)
    assert_refused(cloud, backup, target, match="another context")


def test_whole_metadata_object_swapped_for_another_backups(cloud, victim):
    src, backup, target = victim
    other = cloud.backup(src)
    cloud.write_raw_object(backup, cloud.raw_object(other))
    assert_refused(cloud, backup, target, match="another context")


def test_metadata_object_that_is_not_json(cloud, victim):
    src, backup, target = victim
    cloud.write_raw_object(backup, b"\xff{not json")
    assert_refused(cloud, backup, target, match="not valid JSON")


def test_tampered_parent_refuses_the_whole_chain_before_any_write(cloud):
    """Cinder applies the chain base first: the middle member is judged
    before the base's first chunk is written."""
    src = cloud.volume(glance=helpers.GLANCE)
    full = cloud.backup(src)
    cloud.write(src, 0, b"\x07" * 3000)
    incr1 = cloud.backup(src, parent=full)
    cloud.write(src, 2 * helpers.CHUNK, b"\x08" * 3000)
    incr2 = cloud.backup(src, parent=incr1)

    obj = cloud.read_object(incr1)
    raw = bytearray(_raw(obj["volume_meta"]))
    raw[-40] ^= 0x80
    obj["volume_meta"] = _armour(bytes(raw))
    cloud.write_object(incr1, obj)

    target = cloud.volume(glance=helpers.OTHER_GLANCE, name="target")
    before = cloud.data(target)
    with pytest.raises(exception.InvalidBackup, match=incr1.id):
        cloud.restore(incr2, target, volume_is_new=False)
    assert cloud.data(target) == before
    assert cloud.glance(target) == helpers.OTHER_GLANCE


def test_restore_still_works_after_a_refused_attempt_is_repaired(cloud, victim):
    """Refusal changes nothing: putting the genuine object back restores."""
    src, backup, target = victim
    genuine = cloud.raw_object(backup)
    obj = json.loads(genuine)
    obj["volume_meta"] = obj["volume_meta"][:-2] + "AA"
    cloud.write_object(backup, obj)
    assert_refused(cloud, backup, target)
    cloud.write_raw_object(backup, genuine)
    cloud.restore(backup, target, volume_is_new=False)
    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == helpers.GLANCE
