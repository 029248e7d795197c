"""A tenant's everyday steps in the cloud of ``tools/dev-cloud``, through
``openstack`` and python-swiftclient's ``swift`` with the tenant's own token:
the building blocks of the scenario tests."""

import os

from tests.cloud.helpers import Cloud, CommandFailed


class Tenant:
    """What a test makes in the cloud, through ``openstack``, deleted again
    when the ``with`` block ends (Cinder's default quotas allow ten volumes
    and ten backups per project, the whole session long)."""

    def __init__(self, cloud):
        self.cloud = cloud
        self.volumes, self.backups = [], []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        # Through the admin's API session (the steps ``openstack volume
        # backup delete --force`` and ``volume set --state`` / ``volume
        # delete`` take). Newest first: an incremental backup before the
        # one it depends on.
        api = self.cloud.api("admin")
        for backup_id in reversed(self.backups):
            _act(api, "/backups/%s/action" % backup_id, {"os-force_delete": {}})
            gone(self.cloud, "volume backup", backup_id)
        for volume_id in self.volumes:
            _act(api, "/volumes/%s/action" % volume_id,
                 {"os-reset_status": {"status": "available"}})
            _act(api, "/volumes/%s" % volume_id, None, method="DELETE")
        for volume_id in self.volumes:
            gone(self.cloud, "volume", volume_id)

    def volume_from_image(self, image, cloud_name="member"):
        created = self.cloud.openstack(cloud_name, "volume", "create", "--image", image["id"],
                                       "--size", "1", Cloud.name("scen-vol"))
        self.volumes.append(created["id"])
        volume = self.cloud.settle("volume", created["id"], cloud_name)
        assert volume["status"] == "available", volume
        return volume

    def backup(self, volume_id, *options, cloud_name="member"):
        """A backup of *volume_id* (``--incremental`` etc. in *options*) once
        it is available; one that ends otherwise fails the test with its
        reason."""
        started = self.cloud.openstack(cloud_name, "volume", "backup", "create", "--name",
                                       Cloud.name("scen-backup"), *options, volume_id)
        self.backups.append(started["id"])
        made = self.cloud.settle("volume backup", started["id"], cloud_name)
        assert made["status"] == "available", made.get("fail_reason") or made
        return made

    def restore(self, backup_id, target=None, cloud_name="member"):
        """``openstack volume backup restore`` to a new volume, or to the
        existing volume *target* (an id). Returns the target volume once it
        settles."""
        args = ["volume", "backup", "restore", backup_id]
        args += [target, "--force"] if target else [Cloud.name("scen-restored")]
        started = self.cloud.openstack(cloud_name, *args)
        if not target:
            self.volumes.append(started["volume_id"])
        return self.cloud.settle("volume", started["volume_id"], cloud_name)


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


def _act(api, path, body, method="POST"):
    """One call to Cinder's API that must be accepted (2xx)."""
    resp = api.request(method, "volumev3", path, **({} if body is None else {"json": body}))
    if not 200 <= resp.status_code < 300:
        raise CommandFailed("%s %s: %d %s" % (method, path, resp.status_code, resp.text[:2000]))


def image_active(cloud, image_id, cloud_name="member"):
    """``openstack image show`` once Glance has the image's data (or gave
    up), polled through Glance's API."""
    def done():
        shown = cloud.api(cloud_name).show("image", image_id)
        if shown is None:
            raise CommandFailed("image %s: Glance answers 404" % image_id)
        return shown["status"] not in ("queued", "saving", "importing")
    cloud.wait_for("image %s active" % image_id, done)
    return cloud.openstack(cloud_name, "image", "show", image_id)


def user_messages(cloud, cloud_name="member"):
    """Cinder's user messages the tenant can list (microversion 3.3)."""
    return cloud.openstack(cloud_name, "--os-volume-api-version", "3.3",
                           "volume", "message", "list")


def gone(cloud, kind, ident):
    """Wait until the admin's API answers 404 for *ident* (*kind*:
    "volume" or "volume backup"); one that ends in an error fails the
    test."""
    def absent():
        left = cloud.api("admin").show(kind, ident)
        if left is not None:
            assert left["status"] not in ("error", "error_deleting"), left
        return left is None
    cloud.wait_for("%s %s gone" % (kind, ident), absent)
