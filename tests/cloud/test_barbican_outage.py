"""Barbican stopped for a while during a tenant's backups, through the real
clients and tools: ``openstack`` as the member, ``swift`` with the member's
own token, ``tools/dev-openstack stop --only barbican`` and ``tools/dev-cloud
start`` (which starts again only what is stopped).

A backup host that has read the keyring keeps sealing with its copy for
``cache_ttl`` (300 s by default) whatever Barbican does: that is the cache's
purpose. A backup host that must read it (here: both hosts restarted just
before the outage, so neither has read it) cannot seal while Barbican is
away: those backups end in ``error`` and their ``fail_reason`` says the
metadata could not be sealed because the key store could not be reached;
Cinder's chunked driver deletes the chunks it had written, so nothing of
them is left in the tenant's account and no metadata object without an
envelope exists. Once Barbican is back the same hosts seal again, and the
admin's audit finds every backup made valid.
"""

import json

from tests.cloud import tenant
from tests.cloud.helpers import Cloud

ARMOUR = "sealedmeta:"
OUTAGE_BACKUPS = 2
AFTER_BACKUPS = 2


def _backup_ends(cloud, member, volume_id):
    """A backup of *volume_id* once it settles, whatever its status."""
    started = cloud.openstack("member", "volume", "backup", "create", "--name",
                              Cloud.name("outage-backup"), volume_id)
    member.backups.append(started["id"])
    return cloud.settle("volume backup", started["id"])


def _cold_backup_hosts(cloud):
    """Both backup hosts restarted: neither has read the keyring since."""
    for host in cloud.env["backup_hosts"]:
        cloud.tool("dev-cloud", "stop", "--dir", cloud.dir, "--only", "cinder-" + host)
    cloud.tool("dev-cloud", "start", "--dir", cloud.dir)   # waits until both report up


def _project_objects(swift, containers):
    return {c: swift.run("list", c).split() for c in containers}


def test_backups_during_a_barbican_outage(cloud, member, tmp_path):
    image = cloud.env["images"]["licence"]
    volume = member.volume_from_image(image)
    before = member.backup(volume["id"])

    _cold_backup_hosts(cloud)
    cloud.tool("dev-openstack", "stop", "--dir", cloud.env["components"]["keystone"],
               "--only", "barbican")
    try:
        failed = [_backup_ends(cloud, member, volume["id"]) for _ in range(OUTAGE_BACKUPS)]
    finally:
        cloud.tool("dev-cloud", "start", "--dir", cloud.dir)   # Barbican back
    after = [member.backup(volume["id"]) for _ in range(AFTER_BACKUPS)]

    # Each backup of the outage failed and says why, in words about the key
    # store, not a bare "unknown exception".
    for made in failed:
        assert made["status"] == "error", made
        reason = made.get("fail_reason") or ""
        assert "cannot seal the metadata of backup %s" % made["id"] in reason, made
        assert "cannot connect; is Barbican" in reason, made
    # The volume went back to available after each failure.
    assert cloud.settle("volume", volume["id"])["status"] == "available"

    # Nothing of the failed backups in the tenant's account; every metadata
    # object there holds an envelope.
    swift = tenant.TenantSwift(cloud)
    containers = {b["container"] for b in [before] + after} | {
        b["container"] for b in failed if b.get("container")}
    listed = _project_objects(swift, containers)
    for made in failed:
        left = [(c, n) for c, names in listed.items() for n in names if made["id"] in n]
        assert left == [], "objects of the failed backup %s left: %s" % (made["id"], left)
    ids = [b["id"] for b in [before] + after]
    metadata_objects = [(c, n) for c, names in listed.items() for n in names
                        if n.endswith("_metadata") and any(i in n for i in ids)]
    assert len(metadata_objects) == len(ids), listed
    for container, name in metadata_objects:
        document = json.loads(swift.get(container, name, tmp_path))
        assert str(document.get("volume_meta")).startswith(ARMOUR), (container, name)

    # The admin's audit: the backups made valid, the failed ones without a
    # metadata object, nothing invalid in the project.
    audit = cloud.sealedmeta("cinder", "audit", "-f", "json")
    # Exit status 1: not every backup is valid (the failed ones).
    assert audit.returncode == 1, audit.stdout + audit.stderr
    rows = {r["backup_id"]: r for r in json.loads(audit.stdout)
            if r["project_id"] == cloud.project_id("member")}
    for made in [before] + after:
        assert rows[made["id"]]["class"] == "valid", rows[made["id"]]
    for made in failed:
        assert rows[made["id"]]["class"] == "missing", rows[made["id"]]
    wrong = {b: r["class"] for b, r in rows.items() if r["class"] not in ("valid", "missing")}
    assert wrong == {}, wrong

    # And what was made after the outage restores with the licence.
    restored = member.restore(after[-1]["id"])
    tenant.check_licence_volume(restored, image, "restored after the outage")
