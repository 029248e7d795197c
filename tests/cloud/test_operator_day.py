"""An operator's day with sealed backups, through the real clients: backup
records exported and imported by the admin, restores through either backup
host, a ``sealedmeta rekey`` while tenants back up and restore, and the
admin's ``sealedmeta cinder audit`` after it.

Which backup host serves a restore is chosen by taking the other one away
(stopped, until Cinder sees it down) for the time of the restore; a backup
restored once through each host has crossed hosts whichever of the two made
it.
"""

import json
import subprocess
import threading

import pytest

from tests.cloud import tenant
from tests.cloud.helpers import CLI_TIMEOUT


@pytest.fixture(scope="module")
def licence_volume(cloud, member):
    return member.volume_from_image(cloud.env["images"]["licence"])


def _backup_states(cloud):
    """{backup host: "up" or "down"}, as Cinder sees them (the API of
    ``openstack volume service list``)."""
    resp = cloud.api("admin").request("GET", "volumev3", "/os-services?binary=cinder-backup")
    assert resp.status_code == 200, (resp.status_code, resp.text)
    return {r["host"]: r["state"] for r in resp.json()["services"]}


class _Only:
    """The restores in this block go to *host*: every other backup host is
    stopped (``tools/dev-cloud stop --only``) and seen ``down`` by Cinder,
    whose API sends a restore to an enabled backup host that is up; the
    block's end starts them again. (Disabling a host through the API would
    be the lighter way, but Cinder 29's ``os-services/enable`` never
    enables it again.) No backup is created inside: Cinder's scheduler
    sends backups to hosts it has seen, up or not."""

    def __init__(self, cloud, host):
        self.cloud, self.host = cloud, host
        self.others = [h for h in cloud.env["backup_hosts"] if h != host]

    def __enter__(self):
        for other in self.others:
            self.cloud.tool("dev-cloud", "stop", "--dir", self.cloud.dir,
                            "--only", "cinder-" + other)
        self.cloud.wait_for(
            "backup hosts %s down, %s up" % (", ".join(self.others), self.host),
            lambda: _backup_states(self.cloud) == dict(
                {o: "down" for o in self.others}, **{self.host: "up"}))

    def __exit__(self, *exc):
        self.cloud.tool("dev-cloud", "start", "--dir", self.cloud.dir)


def _audit(cloud, all_valid=True):
    """The admin's ``sealedmeta cinder audit`` of every backup, by backup
    id; with *all_valid* its exit status must say every backup is valid."""
    audit = cloud.sealedmeta("cinder", "audit", "-f", "json")
    allowed = (0,) if all_valid else (0, 1)
    assert audit.returncode in allowed, audit.stdout + audit.stderr
    return {r["backup_id"]: r for r in json.loads(audit.stdout)}


def _lose_row_and_import(cloud, admin, made, tmp_path):
    """The database lost the row of the admin's backup *made*, the store
    kept its objects: the admin imports the record exported before (with
    Cinder's own client: openstacksdk 4.22 posts a record import to the
    export URL). Returns (record, the imported backup once it settles)."""
    record = cloud.openstack("admin", "volume", "backup", "record", "export", made["id"])
    swift = tenant.TenantSwift(cloud, "admin")
    container = made["container"]
    names = [n for n in swift.run("list", container).split() if made["id"] in n]
    kept = {n: swift.get(container, n, tmp_path) for n in names}
    cloud.openstack("admin", "volume", "backup", "delete", made["id"], parse=False)
    admin.backups.remove(made["id"])
    tenant.gone(cloud, "volume backup", made["id"])
    for name, data in kept.items():       # the delete removed the objects
        swift.put(container, name, data, tmp_path)
    imported = cloud.cinder("admin", "backup-import", record["backup_service"],
                            record["backup_url"])
    admin.backups.append(made["id"])
    assert made["id"] in imported, imported
    return record, cloud.settle("volume backup", made["id"], "admin")


# Imports are the admin's (Cinder's default policy) and an imported backup
# belongs to the admin's project; with backup_swift_auth = per_user its
# objects are read from that project's account. So the backups of these
# two tests are the admin's own, in the admin's account.

def test_exported_sealed_record_imports_and_restores(cloud, tmp_path):
    image = cloud.env["images"]["licence"]
    with tenant.Tenant(cloud) as admin:
        volume = admin.volume_from_image(image, cloud_name="admin")
        made = admin.backup(volume["id"], cloud_name="admin")
        _, back = _lose_row_and_import(cloud, admin, made, tmp_path)
        assert back["status"] == "available", back.get("fail_reason") or back
        assert _audit(cloud)[made["id"]]["class"] == "valid"
        restored = admin.restore(made["id"], cloud_name="admin")
        tenant.check_licence_volume(restored, image, "restored from the imported record")


def test_exported_pre_switch_record_imports_and_restores_once_marked(cloud, tmp_path):
    """A backup the stock driver made before the switch: imported, it is
    taken for the sealed driver's own and judged invalid (its metadata is
    not sealed) until ``sealedmeta cinder mark-legacy`` checks the record's
    legacy claim; then [sealedmeta] legacy_backups (trust) applies."""
    image = cloud.env["images"]["licence"]
    with tenant.Tenant(cloud) as admin:
        volume = admin.volume_from_image(image, cloud_name="admin")
        cloud.tool("dev-cloud", "start", "--dir", cloud.dir, "--driver", "stock")
        try:
            made = admin.backup(volume["id"], cloud_name="admin")
        finally:   # back to the session's driver (Cinder restarts)
            cloud.tool("dev-cloud", "start", "--dir", cloud.dir,
                       "--driver", cloud.env["driver"])
        record, back = _lose_row_and_import(cloud, admin, made, tmp_path)
        assert back["status"] == "available", back.get("fail_reason") or back
        assert _audit(cloud, all_valid=False)[made["id"]]["class"] == "invalid"

        record_file = tmp_path / "record.json"
        record_file.write_text(json.dumps(record))
        marked = cloud.sealedmeta("cinder", "mark-legacy", str(record_file), "-f", "json")
        assert marked.returncode == 0, marked.stdout + marked.stderr
        assert _audit(cloud, all_valid=False)[made["id"]]["class"] == "legacy"
        restored = admin.restore(made["id"], cloud_name="admin")
        tenant.check_licence_volume(restored, image, "restored from the pre-switch record")


def test_rekey_while_tenants_back_up_and_restore_across_hosts(cloud, member, licence_volume):
    """Each backup host restores a backup made before the rotation and one
    made during it (so every backup crosses hosts, whichever made it) with
    the licence and bootable flag intact; the audit after it finds every
    backup valid, some under the version the rekey replaced."""
    image = cloud.env["images"]["licence"]
    hosts = cloud.env["backup_hosts"]
    backups, failures = [], []
    rekey = {}

    def rotate():
        rekey["proc"] = cloud._run([cloud.env["bin"]["sealedmeta"], "--config-file",
                                    cloud.env["confs"]["sealedmeta"], "rekey",
                                    cloud.env["keyring"], "-f", "json"])

    before = member.backup(licence_volume["id"])
    backups.append(before["id"])
    rotation = threading.Thread(target=rotate)
    rotation.start()
    try:
        for host in hosts:
            backup = member.backup(licence_volume["id"])
            backups.append(backup["id"])
            with _Only(cloud, host):
                restored = [member.restore(b) for b in (before["id"], backup["id"])]
            for volume in restored:
                try:
                    tenant.check_licence_volume(volume, image, "restored through %s" % host)
                except AssertionError as exc:
                    failures.append(str(exc))
    finally:
        rotation.join(CLI_TIMEOUT)
    proc = rekey.get("proc")
    assert isinstance(proc, subprocess.CompletedProcess), "rekey did not end"
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rotated = json.loads(proc.stdout)
    assert failures == []
    rows = _audit(cloud)
    classes = {b: rows[b]["class"] for b in backups}
    assert set(classes.values()) == {"valid"}, classes
    versions = {rows[b]["key_version"] for b in backups}
    assert rotated["previous_version"] in versions, (rotated, versions)
