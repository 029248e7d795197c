"""A tenant's everyday steps in the cloud of ``tools/dev-cloud``, through
``openstack`` and python-swiftclient's ``swift`` with the tenant's own token:
the building blocks of the scenario tests."""

import os
import time

from tests.cloud.helpers import POLL, SETTLE_TIMEOUT, Cloud, CommandFailed


def volume_from_image(cloud, image, cloud_name="member"):
    created = cloud.openstack(cloud_name, "volume", "create", "--image", image["id"],
                              "--size", "1", Cloud.name("scen-vol"))
    volume = cloud.settle("volume", created["id"], cloud_name)
    assert volume["status"] == "available", volume
    return volume


def backup(cloud, volume_id, *options, cloud_name="member"):
    """A backup of *volume_id* (``--incremental`` etc. in *options*) once it
    is available; one that ends otherwise fails the test with its reason."""
    started = cloud.openstack(cloud_name, "volume", "backup", "create", "--name",
                              Cloud.name("scen-backup"), *options, volume_id)
    made = cloud.settle("volume backup", started["id"], cloud_name)
    assert made["status"] == "available", made.get("fail_reason") or made
    return made


def restore(cloud, backup_id, target, cloud_name="member"):
    """``openstack volume backup restore``; *target* a new volume's name or
    an existing volume's id. Returns the target volume once it settles."""
    args = ["volume", "backup", "restore", backup_id, target]
    if not target.startswith("scen-"):
        args.append("--force")   # restoring into an existing volume
    started = cloud.openstack(cloud_name, *args)
    return cloud.settle("volume", started["volume_id"], cloud_name)


def check_licence_volume(volume, image, what):
    assert volume["status"] == "available", "%s: %s" % (what, volume)
    assert volume["bootable"] in (True, "true"), "%s not bootable: %s" % (what, volume)
    shown = volume.get("volume_image_metadata") or {}
    for key, value in image["properties"].items():
        assert shown.get(key) == value, "%s: image property %s is %r, not %r" % (
            what, key, shown.get(key), value)


class TenantSwift:
    """python-swiftclient's ``swift`` command with a Keystone token the
    tenant got for itself (``openstack token issue``) and its own account:
    what a tenant can do to the objects of its backups."""

    def __init__(self, cloud, cloud_name="member"):
        self.cloud = cloud
        token = cloud.openstack(cloud_name, "token", "issue")["id"]
        self.account = "AUTH_" + cloud.project_id(cloud_name)
        self._auth = ["--os-auth-token", token, "--os-storage-url",
                      cloud.env["endpoints"]["swift_storage_url_prefix"]
                      + cloud.project_id(cloud_name)]

    def run(self, *args):
        proc = self.cloud._run([self.cloud.env["bin"]["swift"]] + self._auth + list(args))
        if proc.returncode:
            raise CommandFailed("swift %s failed (exit %d):\n%s%s" % (
                " ".join(args), proc.returncode, proc.stdout, proc.stderr))
        return proc.stdout

    def metadata_object(self, made):
        """(container, name) of backup *made*'s metadata object."""
        names = self.run("list", made["container"]).split()
        found = [n for n in names if made["id"] in n and n.endswith("_metadata")]
        assert len(found) == 1, names
        return made["container"], found[0]

    def get(self, container, name, directory):
        path = os.path.join(str(directory), name.replace("/", "_"))
        self.run("download", container, name, "-o", path)
        with open(path, "rb") as handle:
            return handle.read()

    def put(self, container, name, data, directory):
        path = os.path.join(str(directory), "upload-" + name.replace("/", "_"))
        with open(path, "wb") as handle:
            handle.write(data)
        self.run("upload", container, path, "--object-name", name)

    def delete(self, container, name):
        self.run("delete", container, name)


def image_active(cloud, image_id, cloud_name="member"):
    """``openstack image show`` once Glance has the image's data (or gave
    up); the deadline only guards a hang."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        shown = cloud.openstack(cloud_name, "image", "show", image_id)
        if shown["status"] not in ("queued", "saving", "importing"):
            return shown
        if time.monotonic() > deadline:
            raise AssertionError("image %s still %s after the hang guard of %d s"
                                 % (image_id, shown["status"], SETTLE_TIMEOUT))
        time.sleep(POLL)


def user_messages(cloud, cloud_name="member"):
    """Cinder's user messages the tenant can list (microversion 3.3)."""
    return cloud.openstack(cloud_name, "--os-volume-api-version", "3.3",
                           "volume", "message", "list")


def backup_gone(cloud, backup_id, cloud_name="admin"):
    """Wait until *backup_id* is no longer listed (deleted)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        listed = cloud.openstack(cloud_name, "volume", "backup", "list", "--all-projects")
        left = [b for b in listed if b["ID"] == backup_id]
        if not left:
            return
        assert left[0]["Status"] not in ("error", "error_deleting"), left[0]
        if time.monotonic() > deadline:
            raise AssertionError("backup %s still %s after the hang guard of %d s"
                                 % (backup_id, left[0]["Status"], SETTLE_TIMEOUT))
        time.sleep(POLL)
