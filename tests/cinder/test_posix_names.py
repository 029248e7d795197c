"""A tenant's backup container name on the sealed posix driver (and NFS,
which shares its code): it never leads out of ``backup_path`` nor into
another backup's directory.

The attack goes through Cinder's own v3 backups controller (its schema
takes any container up to 255 characters), its backup API, its
BackupManager and the real sealed driver; only the RPC hops (scheduler,
volume service) and the device attach are replaced by direct calls. Rows a
release without the check could have left (a hostile container written to
the database) are refused clearly on restore, delete, export and reseal,
and nothing outside the tree is read, written or removed.
"""

import os
import re

import pytest
from oslo_config import cfg

from cinder import context as cinder_context
from cinder.db import api as db
from cinder import exception
from cinder import objects
from cinder.objects import fields
from cinder import policy as cinder_policy

from sealedmeta.cinder import posix
from sealedmeta.cinder import reseal
from tests.cinder import helpers
from tests.cinder import test_manager

CONF = cfg.CONF
mgr = test_manager.mgr  # Cinder's BackupManager with the sealed driver


@pytest.fixture(autouse=True)
def fresh_enforcer():
    cinder_policy.reset()
    yield
    cinder_policy.reset()


@pytest.fixture
def api(cloud, mgr, monkeypatch):
    """Cinder's backup create as a tenant's request runs it: the v3
    controller, the backup API, then (for the scheduler's and the volume
    service's casts) the backup manager's create_backup and continue_backup
    called directly. Returns a function ``(container) -> backup row``."""
    from cinder.api.openstack import api_version_request as api_version
    from cinder.api.openstack import wsgi
    from cinder.api.v3 import backups as backups_v3
    from cinder.backup import api as backup_api
    from cinder.scheduler import rpcapi as scheduler_rpcapi

    def attach(context, device, properties, *args, **kwargs):
        return {"device": {"path": cloud.path(device.id)}}

    monkeypatch.setattr(mgr, "_attach_device", attach)

    def get_backup_device(context, backup, volume):
        # What the volume service answers for an available volume.
        device = objects.BackupDeviceInfo(volume=volume, secure_enabled=False)
        mgr.continue_backup(context, backup, device)

    monkeypatch.setattr(mgr.volume_rpcapi, "get_backup_device", get_backup_device)
    failures = []

    def schedule(self, context, backup):
        try:
            mgr.create_backup(context, backup)
        except Exception as exc:  # a cast: the caller never sees it
            failures.append(exc)

    monkeypatch.setattr(scheduler_rpcapi.SchedulerAPI, "create_backup", schedule)
    assert backup_api.API  # the controller's own

    def create(volume_id, container):
        ctxt = cinder_context.RequestContext(
            user_id=cloud.user_id, project_id=cloud.project_id,
            roles=["member", "reader"], is_admin=False)
        req = wsgi.Request.blank("/%s/backups" % ctxt.project_id,
                                 base_url="http://localhost/v3")
        req.method = "POST"
        req.api_version_request = api_version.APIVersionRequest("3.51")
        req.environ["cinder.context"] = ctxt
        body = {"backup": {"volume_id": volume_id, "name": "b"}}
        if container is not None:
            body["backup"]["container"] = container
        del failures[:]
        answer = backups_v3.BackupsController().create(req, body=body)
        backup = objects.Backup.get_by_id(cloud.ctxt, answer["backup"]["id"])
        backup.failures = list(failures)
        return backup

    return create


def snapshot(root):
    """Every path below *root* with its size and modification time."""
    found = {}
    for top, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            found[os.path.relpath(path, root)] = (st.st_size, st.st_mtime_ns)
    return found


def outside(tmp_path):
    """*tmp_path*'s entries but the backup tree and the test's own."""
    return {path: info for path, info in snapshot(str(tmp_path)).items()
            if not path.startswith(("backups", "volumes", "keys"))}


def hostile_containers(tmp_path):
    return {"dot-dot": "../outside",
            "absolute": str(tmp_path / "elsewhere" / "x"),
            "dot-dot-deep": "a/../../outside"}


@pytest.mark.parametrize("kind", ["dot-dot", "absolute", "dot-dot-deep"])
def test_a_tenants_container_cannot_lead_out_of_the_backup_tree(
        cloud, api, tmp_path, kind):
    container = hostile_containers(tmp_path)[kind]
    src = cloud.volume(glance=helpers.GLANCE)
    tree_before = snapshot(CONF.backup_posix_path)
    before = outside(tmp_path)

    backup = api(src, container)

    assert outside(tmp_path) == before   # nothing made outside the tree
    assert snapshot(CONF.backup_posix_path) == tree_before   # nor in it
    assert backup.status == fields.BackupStatus.ERROR
    assert "refused" in backup.fail_reason
    assert posix.RULE in backup.fail_reason
    assert backup.container == container     # as the tenant asked
    assert [type(exc) for exc in backup.failures] == [exception.InvalidBackup]
    assert cloud.volume_row(src).status == "available"


def test_a_symbolic_link_in_the_tree_does_not_lead_out_of_it(cloud, api, tmp_path):
    """Whoever can write the tree (an NFS export other hosts mount) swaps a
    shared container for a link out of it: directory handles do not
    follow it."""
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", os.path.join(CONF.backup_posix_path, "shared"))
    src = cloud.volume(glance=helpers.GLANCE)
    backup = api(src, "shared")
    assert os.listdir(tmp_path / "outside") == []
    assert backup.status == fields.BackupStatus.ERROR
    # ELOOP through openat2, ENOTDIR through openat per component.
    assert re.search("Too many levels of symbolic links|Not a directory",
                     backup.fail_reason), backup.fail_reason


@pytest.mark.parametrize("below", ["", "/sub", "upper"])
def test_a_tenant_cannot_put_a_backup_into_another_backups_directory(
        cloud, ctxt, api, tmp_path, below):
    victim_cloud = helpers.Cloud(ctxt, str(tmp_path / "volumes" / "victim"))
    victim = victim_cloud.backup(victim_cloud.volume(glance=helpers.OTHER_GLANCE))
    directory = victim_cloud.container_dir(victim)
    names = sorted(os.listdir(directory))
    container = victim.container + (below if below != "upper" else "")
    if below == "upper":
        container = container.upper()
    src = cloud.volume(glance=helpers.GLANCE)
    tree_before = snapshot(CONF.backup_posix_path)

    backup = api(src, container)

    assert sorted(os.listdir(directory)) == names
    assert snapshot(CONF.backup_posix_path) == tree_before
    assert backup.status == fields.BackupStatus.ERROR
    assert ("it is Cinder's directory of backup %s" % container.split("/")[2]
            in backup.fail_reason)
    # The victim's backup is untouched and restores.
    target = victim_cloud.new_target()
    victim_cloud.restore(victim, target)
    assert victim_cloud.glance(target) == helpers.OTHER_GLANCE


@pytest.mark.parametrize("container", [None, "volumebackups", "team/a/b"])
def test_ordinary_containers_back_up_and_restore_through_the_api(
        cloud, api, mgr, tmp_path, container):
    src = cloud.volume(glance=helpers.GLANCE)
    before = outside(tmp_path)
    backup = api(src, container)
    assert backup.failures == []
    assert backup.status == fields.BackupStatus.AVAILABLE, backup.fail_reason
    if container is None:   # Cinder's default: the backup's own directory
        assert tuple(backup.container.split("/")) == posix.default_parts(backup.id)
    else:
        assert backup.container == container
    assert os.listdir(cloud.container_dir(backup))
    assert outside(tmp_path) == before
    target = cloud.new_target()
    test_manager._restore(cloud, mgr, backup, target)
    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == helpers.GLANCE
    # A second backup in the same chosen directory, then both deleted.
    if container is not None:
        second = api(src, container)
        assert second.status == fields.BackupStatus.AVAILABLE, second.fail_reason
        _delete(cloud, mgr, second)
        assert os.listdir(cloud.container_dir(backup))
    _delete(cloud, mgr, backup)
    if container is None:
        assert os.listdir(os.path.join(CONF.backup_posix_path, *posix.default_parts(
            backup.id))) == []


def _delete(cloud, mgr, backup):
    backup = objects.Backup.get_by_id(cloud.ctxt, backup.id)
    backup.status = fields.BackupStatus.DELETING
    backup.save()
    mgr.delete_backup(cloud.ctxt, backup)


# -- rows left by a release without the check --------------------------------

@pytest.fixture(params=["dot-dot", "absolute"])
def old_row(request, cloud, tmp_path):
    """A legacy (stock) backup whose files an old release wrote outside the
    tree, under the hostile container its row holds: made in the tree, then
    moved there and the row changed, as such a release leaves them."""
    container = hostile_containers(tmp_path)[request.param]
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())
    where = os.path.normpath(os.path.join(CONF.backup_posix_path, container))
    os.makedirs(os.path.dirname(where), exist_ok=True)
    os.rename(cloud.container_dir(backup), where)
    db.backup_update(cloud.ctxt, backup.id, {"container": container})
    return objects.Backup.get_by_id(cloud.ctxt, backup.id), where


def test_a_restore_of_an_old_hostile_row_is_refused_and_reads_nothing(
        cloud, mgr, old_row, tmp_path):
    backup, where = old_row
    before = outside(tmp_path)
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup,
                       match=r"cannot be read, no file was touched: container"
                       r" refused \((not a relative path|not a plain directory"
                       r" name: a '\.\.' component)\)"):
        test_manager._restore(cloud, mgr, backup, target)
    # Cinder opens the target for writing ('wb': a file here is emptied)
    # before the driver's restore; the driver wrote no byte to it.
    assert cloud.data(target) == b""
    assert cloud.glance(target) == {}
    assert cloud.volume_row(target).status == "error_restoring"
    assert outside(tmp_path) == before


def test_a_delete_of_an_old_hostile_row_is_refused_and_removes_nothing(
        cloud, mgr, old_row, tmp_path):
    backup, where = old_row
    before = outside(tmp_path)
    names = sorted(os.listdir(where))
    with pytest.raises(exception.InvalidBackup,
                       match="cannot be deleted, no file was touched:"
                       " container refused"):
        _delete(cloud, mgr, backup)
    assert sorted(os.listdir(where)) == names
    assert outside(tmp_path) == before
    row = objects.Backup.get_by_id(cloud.ctxt, backup.id)   # not deleted
    assert row.status == fields.BackupStatus.ERROR
    assert "no file was touched" in row.fail_reason


def test_export_and_reseal_of_an_old_hostile_row_are_refused(
        cloud, mgr, old_row, tmp_path):
    backup, where = old_row
    before = outside(tmp_path)
    with pytest.raises(exception.InvalidBackup,
                       match="cannot be exported, no file was touched:"
                       " container refused"):
        mgr.export_record(cloud.ctxt, backup)
    [result] = reseal.reseal([backup.id], driver=cloud.driver())
    assert result.result == reseal.FAILED
    assert "no file was touched: container refused" in result.reason, result
    assert outside(tmp_path) == before


def test_an_object_name_is_one_file_name_in_its_container(cloud, tmp_path):
    """Cinder's restore opens the chunk names its metadata object lists
    (after checking them against the container's listing): the driver
    itself never opens a name that leaves the container."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"S" * 64)
    driver = cloud.driver()
    driver.put_container("c")
    before = outside(tmp_path)
    for name in ("../../secret", "../c/x", "x/y", "..", ""):
        with pytest.raises(exception.InvalidBackup, match="object name refused"):
            driver.get_object_reader("c", name)
        with pytest.raises(exception.InvalidBackup, match="object name refused"):
            driver.get_object_writer("c", name)
        with pytest.raises(exception.InvalidBackup, match="object name refused"):
            driver.delete_object("c", name)
    assert outside(tmp_path) == before
    assert secret.read_bytes() == b"S" * 64


@pytest.mark.parametrize("name, why", [
    ("", "an empty component"),
    ("a//b", "an empty component"),
    ("a/", "an empty component"),
    ("./a", "a '.' component"),
    ("a/../b", "a '..' component"),
    ("/a", "not a relative path"),
    ("a\0b", "a '/' or NUL in a name"),
    ("x" * 256, "container of 256 characters refused"),
    ("a/" + "x" * 200 + "é" * 30, "a component over 255 bytes"),
    ("a\udcffb", "not UTF-8"),
])
def test_the_rule_refuses_what_no_ordinary_container_is(name, why):
    with pytest.raises(posix.UnsafeContainer, match=why) as caught:
        posix.container_parts(name)
    assert posix.RULE in str(caught.value)


def test_a_backups_own_default_directory_is_its_own():
    own = "1234abcd-0000-4000-8000-000000000001"
    other = "1234abcd-0000-4000-8000-000000000002"
    assert posix.container_parts("12/34/" + own, own) == ("12", "34", own)
    with pytest.raises(posix.UnsafeContainer, match="directory of backup " + other):
        posix.container_parts("12/34/" + other, own)
    # Not Cinder's name of any backup's directory: an ordinary name.
    assert posix.container_parts("12/35/" + other, own) == ("12", "35", other)
    # Restore, delete, export do not know whose directory it is: only the
    # path rule holds there (the files a backup reads carry its own prefix).
    assert posix.container_parts("12/34/" + other) == ("12", "34", other)


def test_the_nfs_class_checks_and_reaches_its_files_as_the_posix_class():
    # Cinder's NFS driver is a PosixBackupDriver on a mounted share (its
    # constructor mounts, so it is not built here; Cinder's own NFS tests
    # run it on real directories under tox -e cinder-upstream).
    from sealedmeta.cinder import nfs
    for name in ("update_container_name", "put_container", "get_container_entries",
                 "get_object_writer", "get_object_reader", "delete_object",
                 "read_metadata_object", "delete_backup", "export_record"):
        assert getattr(nfs.SealedNFSBackupDriver, name) is getattr(posix.PosixTree, name)
