"""The tenant tampers with its own backups through Swift's API (the
python-swiftclient of its Keystone token): each change is refused with
InvalidBackup before a byte of the target volume is written."""

import json

import pytest

from cinder import exception

from tests.swift import conftest
from tests.swift import helpers

FIGURE = "swift tamper cases refused before any write (target bytes compared)"


@pytest.fixture
def mode():
    return "per_user"


@pytest.fixture
def victim(cloud):
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    backup = cloud.backup(src)
    target = cloud.volume(glance=helpers.OTHER_GLANCE, name="target")
    return src, backup, target


def assert_refused(cloud, backup, target, match):
    before = cloud.data(target)
    glance_before = cloud.glance(target)
    with pytest.raises(exception.InvalidBackup, match=match):
        cloud.restore(backup, target, volume_is_new=False)
    assert cloud.data(target) == before
    assert cloud.glance(target) == glance_before
    assert cloud.bootable(target) is True
    conftest.FIGURES[FIGURE] = conftest.FIGURES.get(FIGURE, 0) + 1


def test_forged_plain_volume_meta(cloud, victim):
    src, backup, target = victim
    forged = json.loads(cloud.driver(helpers.stock_class()).get_metadata(src))
    forged["volume-glance-metadata"]["billing_code_licence"] = "FREE"
    obj = cloud.read_object(backup)
    obj["volume_meta"] = json.dumps(forged)
    cloud.write_raw_object(backup, json.dumps(obj).encode())
    assert_refused(cloud, backup, target, "not sealed")


def test_one_flipped_armour_character(cloud, victim):
    src, backup, target = victim
    obj = cloud.read_object(backup)
    armour = obj["volume_meta"]
    index = len(armour) // 2
    obj["volume_meta"] = armour[:index] + chr(ord(armour[index]) ^ 0x01) + armour[index + 1:]
    assert obj["volume_meta"] != armour
    cloud.write_raw_object(backup, json.dumps(obj).encode())
    assert_refused(cloud, backup, target, "cannot be trusted")


def test_another_backups_envelope(cloud, victim):
    src, backup, target = victim
    cheap = cloud.volume(glance=helpers.OTHER_GLANCE)
    other = cloud.backup(cheap)
    obj = cloud.read_object(backup)
    obj["volume_meta"] = cloud.read_object(other)["volume_meta"]
    cloud.write_raw_object(backup, json.dumps(obj).encode())
    assert_refused(cloud, backup, target, "another context")


def test_another_backups_whole_object(cloud, victim):
    src, backup, target = victim
    other = cloud.backup(src)
    cloud.write_raw_object(backup, cloud.raw_object(other))
    assert_refused(cloud, backup, target, "another context")


def test_tampered_parent_under_an_intact_incremental(cloud):
    src = cloud.volume(glance=helpers.GLANCE)
    full = cloud.backup(src)
    cloud.write(src, 0, b"\x07" * 3000)
    incr = cloud.backup(src, parent=full)
    obj = cloud.read_object(full)
    armour = obj["volume_meta"]
    obj["volume_meta"] = armour[:-8] + ("A" if armour[-8] != "A" else "B") + armour[-7:]
    cloud.write_raw_object(full, json.dumps(obj).encode())
    target = cloud.volume(glance=helpers.OTHER_GLANCE, name="target")
    assert_refused(cloud, incr, target, full.id)


def test_missing_metadata_object_is_named(cloud, victim):
    src, backup, target = victim
    _, name = cloud.location(backup)
    cloud.delete_object(backup)
    assert_refused(cloud, backup, target, "metadata object %s of backup %s is missing"
                   % (name, backup.id))

