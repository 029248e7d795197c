"""The cloud works end to end, as a tenant sees it: a volume from an image
with licence properties, a sealed backup in the tenant's own Swift account,
a restore that brings the image properties back.

Only the real clients: ``openstack`` as the member of the tenant project,
the ``sealedmeta`` command line of Cinder's environment for the admin's
audit. The backup service is the cloud's sealed Swift driver with
``backup_swift_auth = per_user``, configured from docs/source/deployment.rst.
"""

import json

from tests.cloud.helpers import Cloud
from tests.cloud.tenant import check_licence_volume

ARMOUR = "sealedmeta:"


def _check_volume_from_licence_image(volume, image, what):
    check_licence_volume(volume, image, what)
    shown = volume.get("volume_image_metadata") or {}
    assert shown.get("image_id") == image["id"], what


def test_sealed_swift_backup_and_restore_through_the_api(cloud, tmp_path):
    image = cloud.env["images"]["licence"]

    created = cloud.openstack("member", "volume", "create", "--image", image["id"],
                              "--size", "1", Cloud.name("smoke-vol"))
    volume = cloud.settle("volume", created["id"])
    _check_volume_from_licence_image(volume, image, "the volume from the image")

    started = cloud.openstack("member", "volume", "backup", "create", "--name",
                              Cloud.name("smoke-backup"), volume["id"])
    backup = cloud.settle("volume backup", started["id"])
    assert backup["status"] == "available", backup.get("fail_reason") or backup

    # per_user: the backup is in the member's own account, not another's.
    container = backup["container"]
    shown = cloud.openstack("member", "container", "show", container)
    assert shown["account"] == "AUTH_" + cloud.project_id("member"), shown
    names = [o["Name"] for o in cloud.openstack("member", "object", "list", container)]
    metadata = [n for n in names if backup["id"] in n and n.endswith("_metadata")]
    assert len(metadata) == 1, names
    other = [c["Name"] for c in cloud.openstack("other", "container", "list")]
    assert container not in other

    # Its metadata object holds an envelope, bound to this backup and
    # volume, and none of the licence fields in clear.
    saved = tmp_path / "metadata.json"
    cloud.openstack("member", "object", "save", "--file", str(saved), container,
                    metadata[0], parse=False)
    raw = saved.read_bytes()
    for value in image["properties"].values():
        assert value.encode() not in raw
    volume_meta = json.loads(raw)["volume_meta"]
    assert volume_meta.startswith(ARMOUR), volume_meta[:80]
    armour = tmp_path / "volume_meta.env"
    armour.write_text(volume_meta)
    inspected = cloud.sealedmeta("inspect", str(armour), "-f", "json")
    assert inspected.returncode == 0, inspected.stderr
    header = json.loads(inspected.stdout)
    assert header["keyring"] == cloud.env["keyring"], header
    assert header["context"] == {"backup_id": backup["id"], "volume_id": volume["id"]}, header

    # The admin's audit (Cinder's database, every project's account through
    # the page's [sealedmeta_swift_service_user]) opens it with the key.
    audit = cloud.sealedmeta("cinder", "audit", "-f", "json")
    assert audit.returncode == 0, audit.stdout + audit.stderr
    rows = {r["backup_id"]: r for r in json.loads(audit.stdout)}
    assert rows[backup["id"]]["class"] == "valid", rows[backup["id"]]

    restore = cloud.openstack("member", "volume", "backup", "restore", backup["id"],
                              Cloud.name("smoke-restored"))
    restored = cloud.settle("volume", restore["volume_id"])
    _check_volume_from_licence_image(restored, image, "the restored volume")
