"""What a tenant can do to its own sealed backups, through its real clients:
``openstack`` as the member of the project, and python-swiftclient's
``swift`` with a token the member got for itself, on the backups' objects in
the member's own Swift account (``backup_swift_auth = per_user``).

A full and an incremental backup restore with the image's licence
properties; a metadata object the tenant changed, swapped, corrupted or
deleted is refused before any data is written, and the tenant sees the
restore failed; backup metadata written through the API changes nothing a
restore accepts.

With the stock driver (``tools/dev-cloud start --driver stock``) the attacks
succeed and these tests fail: that is what they are for.
"""

import json

import pytest

from tests.cloud import tenant
from tests.cloud.helpers import Cloud

FORGED_LICENCE = "FREE-0000"
FORGED_KEYS = ("sealedmeta-legacy-claim",)


@pytest.fixture(scope="module")
def licence_backups(cloud, member):
    """Two volumes of the licence image, a full and an incremental backup
    of the first, a full backup of the second."""
    image = cloud.env["images"]["licence"]
    first = member.volume_from_image(image)
    second = member.volume_from_image(image)
    full = member.backup(first["id"])
    incremental = member.backup(first["id"], "--incremental")
    other = member.backup(second["id"])
    return {"image": image, "full": full, "incremental": incremental, "other": other}


def test_full_and_incremental_backups_restore_the_licence(cloud, member, licence_backups):
    image = licence_backups["image"]
    incremental = licence_backups["incremental"]
    assert incremental["is_incremental"] in (True, "true"), incremental
    assert incremental["has_dependent_backups"] in (False, "false"), incremental
    full = cloud.openstack("member", "volume", "backup", "show", licence_backups["full"]["id"])
    assert full["has_dependent_backups"] in (True, "true"), full
    for which in ("full", "incremental"):
        restored = member.restore(licence_backups[which]["id"])
        tenant.check_licence_volume(restored, image, "the volume restored from the %s backup"
                                    % which)


# -- the tenant's edits of its metadata object --------------------------------

def _forge_licence(document, _others):
    """The licence changed: in clear, as the stock driver would have written
    it (the sealed value cannot be edited in place)."""
    value = document["volume_meta"]
    try:
        meta = json.loads(value)
    except ValueError:
        meta = {"version": 2, "volume-base-metadata": {}, "volume-metadata": {}}
    glance = dict(meta.get("volume-glance-metadata") or {},
                  billing_code_licence=FORGED_LICENCE, os_distro="rhel")
    meta["volume-glance-metadata"] = glance
    document["volume_meta"] = json.dumps(meta)
    return json.dumps(document).encode()


def _another_backups(document, others):
    """The volume_meta of the tenant's other backup, valid where it was."""
    document["volume_meta"] = others["volume_meta"]
    return json.dumps(document).encode()


def _flip_a_byte(document, _others):
    value = document["volume_meta"]
    middle = len(value) // 2
    while not value[middle].isalnum():
        middle += 1
    flipped = "B" if value[middle] == "A" else "A"
    document["volume_meta"] = value[:middle] + flipped + value[middle + 1:]
    return json.dumps(document).encode()


TAMPERS = {"changed licence": _forge_licence,
           "another backup's metadata": _another_backups,
           "a flipped byte": _flip_a_byte,
           "deleted": None}


def _restore_refused(cloud, member, backup_id, target, what):
    """A restore of *backup_id* into the existing volume *target* ends
    refused: the volume in error_restoring, the backup available again, and
    a user message the tenant can list saying the restore failed."""
    before = {m["ID"] for m in tenant.user_messages(cloud)}
    volume = member.restore(backup_id, target["id"])
    assert volume["status"] == "error_restoring", (
        "%s: the restore was not refused: %s" % (what, volume))
    shown = volume.get("volume_image_metadata") or {}
    assert shown.get("billing_code_licence") is None, (what, shown)
    assert shown.get("image_id") == target["volume_image_metadata"]["image_id"], (what, shown)
    assert cloud.settle("volume backup", backup_id)["status"] == "available"
    messages = [m for m in tenant.user_messages(cloud)
                if m["ID"] not in before and m["Resource UUID"] == backup_id]
    assert messages, "%s: no user message about the refused restore" % what
    words = " ".join(m["User Message"] for m in messages)
    assert "restore backup" in words and "failed to restore" in words, (what, messages)
    # The operator puts the volume back in service (its data is checked
    # once, after every attack).
    cloud.openstack("admin", "volume", "set", "--state", "available", target["id"],
                    parse=False)


def _volume_digest(cloud, volume_id):
    """Glance's SHA-512 of the volume uploaded as an image (qcow2: only the
    written clusters travel), the image deleted after."""
    uploaded = cloud.openstack("member", "image", "create", "--volume", volume_id,
                               "--disk-format", "qcow2", Cloud.name("scen-upload"))
    image_id = uploaded.get("image_id") or uploaded["id"]
    cloud.settle("volume", volume_id)
    image = tenant.image_active(cloud, image_id)
    assert image["status"] == "active", image
    cloud.openstack("member", "image", "delete", image_id, parse=False)
    return image["properties"]["os_hash_value"]


def test_tenant_edits_of_the_metadata_object_are_refused(cloud, member, licence_backups,
                                                        tmp_path):
    swift = tenant.TenantSwift(cloud)
    full = licence_backups["full"]
    container, name = swift.metadata_object(full)
    original = swift.get(container, name, tmp_path)
    others = json.loads(swift.get(*swift.metadata_object(licence_backups["other"]), tmp_path))
    target = member.volume_from_image(cloud.env["images"]["public"])
    digest = _volume_digest(cloud, target["id"])
    for what, tamper in TAMPERS.items():
        if tamper is None:
            swift.delete(container, name)
        else:
            swift.put(container, name, tamper(json.loads(original), others), tmp_path)
        try:
            _restore_refused(cloud, member, full["id"], target, what)
        finally:
            swift.put(container, name, original, tmp_path)
    assert _volume_digest(cloud, target["id"]) == digest, "the target's data changed"
    # The untouched object restores again.
    restored = member.restore(full["id"])
    tenant.check_licence_volume(restored, licence_backups["image"], "after the attacks")


# -- backup metadata the tenant writes through the API ------------------------

def _claims(volume_id):
    """Backup metadata a tenant may write hoping to pass the backup off as
    one made before sealing (the library's legacy claim key, with a claim of
    the right shape and a made-up MAC) or to steer the restore."""
    claim = "smc1:1:%s:%s:-:cinder.backup.drivers.swift.SwiftBackupDriver" % (
        "A" * 43, volume_id)
    return {FORGED_KEYS[0]: claim,
            "service": "cinder.backup.drivers.swift.SwiftBackupDriver",
            "billing_code_licence": FORGED_LICENCE}


def test_backup_metadata_written_through_the_api_changes_nothing(
        cloud, member, licence_backups, tmp_path):
    image = licence_backups["image"]
    made = member.backup(licence_backups["full"]["volume_id"])
    properties = []
    for key, value in _claims(made["volume_id"]).items():
        properties += ["--property", "%s=%s" % (key, value)]
    cloud.openstack("member", "--os-volume-api-version", "3.43", "volume", "backup", "set",
                    *properties, made["id"], parse=False)
    shown = cloud.openstack("member", "--os-volume-api-version", "3.43", "volume", "backup",
                            "show", made["id"])
    assert shown["metadata"].get(FORGED_KEYS[0]), shown   # the API took it

    # The claim alone changes nothing: the sealed metadata restores as it was.
    restored = member.restore(made["id"])
    tenant.check_licence_volume(restored, image, "restored with forged backup metadata")

    # With it, the tenant's own licence in clear in the object is refused.
    swift = tenant.TenantSwift(cloud)
    container, name = swift.metadata_object(made)
    original = swift.get(container, name, tmp_path)
    swift.put(container, name, _forge_licence(json.loads(original), None), tmp_path)
    target = member.volume_from_image(cloud.env["images"]["public"])
    try:
        _restore_refused(cloud, member, made["id"], target,
                         "a changed licence with a legacy claim")
    finally:
        swift.put(container, name, original, tmp_path)
