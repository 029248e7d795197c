"""``sealedmeta verify --ceph-pool`` and ``key destroy --ceph-pool`` against
the real Ceph: the backup.<id>.meta objects of a pool, read through librados.

Each test backs up into a pool of its own (created with the admin key, and
removed after), so that the envelopes other tests leave in ``backups`` do
not count; one test reads ``backups`` as the cinder-backup user."""

import json
import sys
import uuid

import pytest
from oslo_config import cfg
import rados
import rbd

from cinder.backup.drivers import ceph as stock_ceph

from sealedmeta.cinder import metadata_object
from tests.ceph import rbd_helpers
from tests.cinder import helpers
from tests.sm_cli import run_in_process as run_cli

CONF = cfg.CONF


@pytest.fixture
def rbdc(ctxt, tmp_path, ceph):
    cloud = rbd_helpers.CephCloud(ctxt, str(tmp_path / "volumes"), ceph)
    cloud.configure()
    yield cloud
    cloud.unconfigure()
    cloud.close()


@pytest.fixture
def pool(rbdc):
    """A fresh pool, written by the admin user (the cinder-backup user's
    capabilities name only volumes and backups)."""
    name = "verify-" + uuid.uuid4().hex[:8]
    admin = rados.Rados(rados_id="admin", conffile=rbdc.conf)
    admin.connect()
    admin.create_pool(name)
    CONF.set_override("backup_ceph_user", "admin")
    try:
        with admin.open_ioctx(name) as ioctx:
            ioctx.application_enable("rbd")
        yield _Pool(admin, name)
    finally:
        CONF.clear_override("backup_ceph_user")
        admin.delete_pool(name)
        admin.shutdown()


class _Pool:
    def __init__(self, admin, name):
        self.admin, self.name = admin, name

    def path(self, backup_id):
        return "%s/backup.%s.meta" % (self.name, backup_id)

    def read(self, backup_id):
        with self.admin.open_ioctx(self.name) as ioctx:
            return ioctx.read("backup.%s.meta" % backup_id, length=1 << 21)

    def write_full(self, backup_id, data):
        with self.admin.open_ioctx(self.name) as ioctx:
            ioctx.write_full("backup.%s.meta" % backup_id, data)


@pytest.fixture
def conf_file(tmp_path, keys):
    path = tmp_path / "sealedmeta.conf"
    # cache_ttl = 0: no agent runs beside the tests' key destroy.
    path.write_text("[sealedmeta]\nkey_repository = %s\ncache_ttl = 0\n"
                    % keys.path)
    return str(path)


def verify(capsys, conf_file, rbdc, pool, user="admin"):
    code, out, err = run_cli(capsys, "--config-file", conf_file, "verify",
                             "--ceph-pool", pool, "--ceph-conf", rbdc.conf,
                             "--ceph-user", user, "-f", "json")
    report = json.loads(out) if out else None
    return code, report, err


def statuses(report):
    return {e["path"]: e["status"] for e in report["envelopes"]}


def test_verify_sorts_the_objects_of_a_pool_by_status(rbdc, pool, capsys, conf_file):
    rbd_src = rbdc.rbd_volume(glance=helpers.GLANCE)
    differential = rbdc.backup(rbd_src, container=pool.name)
    file_src = rbdc.volume(glance=helpers.GLANCE)
    full = rbdc.backup(file_src, container=pool.name)

    code, report, err = verify(capsys, conf_file, rbdc, pool.name)
    assert code == 0, err
    assert statuses(report) == {pool.path(differential.id): "valid",
                                pool.path(full.id): "valid"}

    # Tampering as a holder of a key that writes the pool (write_full).
    flipped = rbdc.backup(rbdc.volume(glance=helpers.GLANCE), container=pool.name)
    armour = pool.read(flipped.id).decode()
    index = len(armour) // 2
    pool.write_full(flipped.id, (armour[:index] + ("B" if armour[index] != "B" else "C")
                                 + armour[index + 1:]).encode())
    # Another backup's envelope copied over this one's (same volume too).
    copied = rbdc.backup(rbd_src, parent=differential, container=pool.name)
    pool.write_full(copied.id, pool.read(differential.id))
    stock = rbdc.backup(rbdc.volume(glance=helpers.GLANCE), cls=stock_ceph.CephBackupDriver,
                        container=pool.name)
    assert b"billing_code_licence" in pool.read(stock.id)     # plain JSON
    oversized = rbdc.backup(rbdc.volume(glance=helpers.GLANCE), container=pool.name)
    pool.write_full(oversized.id, pool.read(oversized.id)
                    + b"A" * metadata_object.DEFAULT_MAX_SIZE)

    code, report, err = verify(capsys, conf_file, rbdc, pool.name)
    assert code == 1
    assert statuses(report) == {
        pool.path(differential.id): "valid",
        pool.path(full.id): "valid",
        pool.path(flipped.id): "invalid",
        pool.path(copied.id): "context-mismatch",
        pool.path(stock.id): "unsealed",
        pool.path(oversized.id): "malformed",
    }
    reasons = {e["path"]: e["reason"] for e in report["envelopes"]}
    assert "backup_id is %r, not %r" % (differential.id, copied.id) in reasons[
        pool.path(copied.id)]
    assert "over the %d byte limit" % metadata_object.DEFAULT_MAX_SIZE in reasons[
        pool.path(oversized.id)]
    assert report["summary"]["counts"]["valid"] == 2


def test_key_destroy_refuses_a_version_in_use_in_a_pool(rbdc, pool, capsys, conf_file,
                                                        keys):
    backup = rbdc.backup(rbdc.rbd_volume(glance=helpers.GLANCE), container=pool.name)
    keys.rotate("cinder-backup")
    keys.set_state("cinder-backup", 1, "retired")
    before = pool.read(backup.id)

    code, out, err = run_cli(capsys, "--config-file", conf_file, "key", "destroy",
                             "cinder-backup", "1", "--ceph-pool", pool.name,
                             "--ceph-conf", rbdc.conf, "--ceph-user", "admin")
    assert code == 1
    assert "the scan found 1 envelope under it: %s" % pool.path(backup.id) in err
    assert keys.get_keyring("cinder-backup").version(1).state.value == "retired"
    assert pool.read(backup.id) == before

    # Once the backup is gone, the scan finds nothing under version 1.
    rbdc.driver().delete_backup(backup)
    code, out, err = run_cli(capsys, "--config-file", conf_file, "key", "destroy",
                             "cinder-backup", "1", "--ceph-pool", pool.name,
                             "--ceph-conf", rbdc.conf, "--ceph-user", "admin")
    assert code == 0, err
    assert keys.get_keyring("cinder-backup").version(1).state.value == "destroyed"


def test_verify_reads_the_backups_pool_as_cinder_backup(rbdc, capsys, conf_file):
    backup = rbdc.backup(rbdc.rbd_volume(glance=helpers.GLANCE))
    code, report, err = verify(capsys, conf_file, rbdc, "backups", user="cinder-backup")
    # Other tests' backups, sealed under their own key stores, are there too.
    assert statuses(report)["backups/backup.%s.meta" % backup.id] == "valid"


def test_verify_of_a_missing_pool_cannot_run(rbdc, capsys, conf_file):
    code, report, err = verify(capsys, conf_file, rbdc, "no-such-pool")
    assert code == 2
    assert "cannot open Ceph pool no-such-pool" in err


# -- key destroy holds a version any item names, or one the scan cannot judge -

def _destroy(capsys, conf_file, rbdc, pool):
    return run_cli(capsys, "--config-file", conf_file, "key", "destroy",
                   "cinder-backup", "1", "--ceph-pool", pool.name,
                   "--ceph-conf", rbdc.conf, "--ceph-user", "admin", "-f", "json")


def _retire_version_1(keys):
    keys.rotate("cinder-backup")
    keys.set_state("cinder-backup", 1, "retired")


def _still_retired_and_openable(keys, rbdc, backup, before, pool):
    from sealedmeta import sealer as sm_sealer
    from sealedmeta.cinder import volume_meta as vm
    assert keys.get_keyring("cinder-backup").version(1).state.value == "retired"
    assert pool.read(backup.id) == before
    keys.set_state("cinder-backup", 1, "decrypt-only")
    sealer = sm_sealer.Sealer(keys, keyring="cinder-backup")
    assert vm.open_(sealer, before.decode(), backup.id, backup.volume_id)


def test_key_destroy_without_the_rbd_bindings_cannot_run(
        rbdc, pool, capsys, conf_file, keys, monkeypatch):
    """Without python-rbd the scan cannot know which volume each backup
    belongs to: it must not run (exit 2), not count the envelope as
    malformed and let the destroy through."""
    backup = rbdc.backup(rbdc.rbd_volume(glance=helpers.GLANCE), container=pool.name)
    _retire_version_1(keys)
    before = pool.read(backup.id)
    monkeypatch.setitem(sys.modules, "rbd", None)   # import rbd: ImportError
    code, out, err = _destroy(capsys, conf_file, rbdc, pool)
    monkeypatch.undo()
    assert code == 2, (code, out, err)
    assert "the rbd Python bindings are missing" in err
    _still_retired_and_openable(keys, rbdc, backup, before, pool)


def test_key_destroy_is_held_by_a_backup_without_its_image(
        rbdc, pool, capsys, conf_file, keys):
    """A metadata object whose backup has no RBD image in the pool cannot
    be judged (its volume is unknown): its header still names version 1,
    and it holds the destroy; verify reports it with that version."""
    backup = rbdc.backup(rbdc.volume(glance=helpers.GLANCE), container=pool.name)
    image = "volume-%s.backup.%s" % (backup.volume_id, backup.id)
    with pool.admin.open_ioctx(pool.name) as ioctx:
        rbd.RBD().remove(ioctx, image)
    _retire_version_1(keys)
    before = pool.read(backup.id)
    code, out, err = _destroy(capsys, conf_file, rbdc, pool)
    assert code == 1, (code, out, err)
    assert "refusing to destroy version 1" in err
    assert pool.path(backup.id) in err
    code, report, err = verify(capsys, conf_file, rbdc, pool.name)
    [entry] = report["envelopes"]
    assert (entry["status"], entry["keyring"], entry["version"]) == (
        "unreadable", "cinder-backup", 1)
    assert "no RBD image of backup %s" % backup.id in entry["reason"]
    _still_retired_and_openable(keys, rbdc, backup, before, pool)


def test_key_destroy_is_held_when_an_image_cannot_be_read(
        rbdc, pool, capsys, conf_file, keys):
    """An RBD image that cannot be opened (here its header's size made one
    byte long with the admin key: the real librbd answers EIO) names none of
    the backups its snapshots stand for: those cannot be judged and hold
    the destroy, where the old scan swallowed the rbd.Error and let it
    through. The second backup of a differential chain is named only by
    its snapshot of the chain's image; the first one's object is removed,
    so that only the second one's is in the pool."""
    src = rbdc.rbd_volume(glance=helpers.GLANCE)
    first = rbdc.backup(src, container=pool.name)
    rbdc.write(src, 0, b"newer" * 100)
    second = rbdc.backup(src, parent=first, container=pool.name)
    with pool.admin.open_ioctx(pool.name) as ioctx:
        ioctx.remove_object("backup.%s.meta" % first.id)
        [image] = rbd.RBD().list(ioctx)
        assert second.id not in image        # named by a snapshot only
        with rbd.Image(ioctx, image, read_only=True) as opened:
            assert [snap["name"] for snap in opened.list_snaps()
                    if second.id in snap["name"]]
            header = "rbd_header." + opened.id()
        with rados.WriteOpCtx() as op:
            ioctx.set_omap(op, ("size",), (b"x",))
            ioctx.operate_write_op(op, header)
        with pytest.raises(rbd.IOError):
            rbd.Image(ioctx, image, read_only=True)
    _retire_version_1(keys)
    before = pool.read(second.id)
    code, out, err = _destroy(capsys, conf_file, rbdc, pool)
    assert code == 1, (code, out, err)
    assert "refusing to destroy version 1" in err and pool.path(second.id) in err
    code, report, err = verify(capsys, conf_file, rbdc, pool.name)
    [entry] = report["envelopes"]
    assert (entry["status"], entry["version"]) == ("unreadable", 1)
    assert "images that could not be read: %s" % image in entry["reason"]
    _still_retired_and_openable(keys, rbdc, second, before, pool)
