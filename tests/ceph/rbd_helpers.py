"""Backups through Cinder's real Ceph drivers (stock and sealed) into the
``backups`` pool of the real Ceph; volumes as files (full backups) or as RBD
images in the ``volumes`` pool (differential backups); the metadata objects
as a holder of the ``cinder-backup`` key sees them (python rados)."""

import contextlib

from os_brick.initiator import linuxrbd
from oslo_config import cfg
import rados
import rbd

from cinder.backup.drivers import ceph as stock_ceph
from cinder import objects

from tests.cinder import helpers

CONF = cfg.CONF

SEALED_CEPH = "sealedmeta.cinder.ceph.SealedCephBackupDriver"
STOCK_CEPH = "cinder.backup.drivers.ceph.CephBackupDriver"
CEPH_OPTIONS = ("backup_ceph_conf", "backup_ceph_user", "backup_ceph_pool",
                "backup_ceph_chunk_size", "restore_discard_excess_bytes")
GIB = 1024 ** 3


def sealed_class():
    from sealedmeta.cinder import ceph
    return ceph.SealedCephBackupDriver


def ceph_settings(ceph):
    return {"backup_ceph_conf": ceph.env["conf"],
            "backup_ceph_user": "cinder-backup",
            "backup_ceph_pool": "backups",
            "backup_ceph_chunk_size": 64 * 1024 * 1024}


class CephCloud(helpers.Cloud):
    """helpers.Cloud whose backups go to the real Ceph."""

    def __init__(self, ctxt, voldir, ceph):
        super().__init__(ctxt, voldir)
        self.ceph = ceph
        self.conf = ceph.env["conf"]
        self.rbd_volumes = set()
        self.cluster = rados.Rados(rados_id="cinder-backup", conffile=self.conf)
        self.cluster.connect()

    def close(self):
        self.cluster.shutdown()

    def configure(self):
        for name, value in ceph_settings(self.ceph).items():
            CONF.set_override(name, value)
        CONF.set_override("backup_driver", SEALED_CEPH)

    @staticmethod
    def unconfigure():
        for name in CEPH_OPTIONS + ("backup_driver",):
            CONF.clear_override(name)

    # -- volumes ------------------------------------------------------------

    def rbd_volume(self, glance=None, user_meta=None, data=None, size=GIB,
                   name="vol", status="available"):
        """A volume row and its RBD image volume-<id> in pool volumes."""
        data = data if data is not None else helpers.random_bytes()
        volume_id = self.volume(glance=glance, user_meta=user_meta, data=b"",
                                name=name, status=status)
        with self.ioctx("volumes") as ioctx:
            rbd.RBD().create(ioctx, "volume-" + volume_id, size,
                             features=rbd.RBD_FEATURE_LAYERING)
            with rbd.Image(ioctx, "volume-" + volume_id) as image:
                image.write(data, 0)
        self.rbd_volumes.add(volume_id)
        return volume_id

    def new_rbd_target(self):
        return self.rbd_volume(data=b"", name="restore_backup_target",
                               status="restoring-backup")

    @contextlib.contextmanager
    def ioctx(self, pool):
        ioctx = self.cluster.open_ioctx(pool)
        try:
            yield ioctx
        finally:
            ioctx.close()

    @contextlib.contextmanager
    def volume_file(self, volume_id):
        """The volume as Cinder hands it to a backup driver."""
        if volume_id not in self.rbd_volumes:
            with open(self.path(volume_id), "r+b") as handle:
                yield handle
            return
        client = rados.Rados(rados_id="cinder", conffile=self.conf)
        client.connect()
        try:
            ioctx = client.open_ioctx("volumes")
            image = rbd.Image(ioctx, "volume-" + volume_id)
            wrapper = linuxrbd.RBDVolumeIOWrapper(linuxrbd.RBDImageMetadata(
                image, "volumes", "cinder", self.conf))
            try:
                yield wrapper
            finally:
                image.close()
                ioctx.close()
        finally:
            client.shutdown()

    def data(self, volume_id, length=None):
        if volume_id not in self.rbd_volumes:
            return super().data(volume_id)
        with self.ioctx("volumes") as ioctx:
            with rbd.Image(ioctx, "volume-" + volume_id, read_only=True) as image:
                return image.read(0, length or helpers.VOLUME_BYTES)

    def write(self, volume_id, offset, data):
        if volume_id not in self.rbd_volumes:
            return super().write(volume_id, offset, data)
        with self.ioctx("volumes") as ioctx:
            with rbd.Image(ioctx, "volume-" + volume_id) as image:
                image.write(data, offset)

    # -- backups ------------------------------------------------------------

    def driver(self, cls=None):
        return (cls or sealed_class())(self.ctxt)

    def backup(self, volume_id, parent=None, cls=None, service=None, container=None):
        from cinder.db import api as db
        from cinder.objects import fields
        cls = cls or sealed_class()
        if service is None:
            service = STOCK_CEPH if cls is stock_ceph.CephBackupDriver else SEALED_CEPH
        backup = objects.Backup(
            context=self.ctxt, volume_id=volume_id, user_id=self.user_id,
            project_id=self.project_id, host="testhost", availability_zone="nova",
            display_name="backup", display_description="", container=container,
            status=fields.BackupStatus.CREATING, service=service, size=1,
            parent_id=parent.id if parent is not None else None, metadata={})
        backup.create()
        with self.volume_file(volume_id) as handle:
            updates = cls(self.ctxt).backup(backup, handle) or {}
        backup = objects.Backup.get_by_id(self.ctxt, backup.id)
        for key, value in updates.items():
            setattr(backup, key, value)
        backup.status = fields.BackupStatus.AVAILABLE
        backup.save()
        if backup.parent_id:
            db.backup_add_dependent(self.ctxt, backup.parent_id)
        return objects.Backup.get_by_id(self.ctxt, backup.id)

    def restore(self, backup, target, volume_is_new=True, cls=None):
        from cinder.objects import fields
        backup = objects.Backup.get_by_id(self.ctxt, backup.id)
        backup.status = fields.BackupStatus.RESTORING
        backup.save()
        try:
            with self.volume_file(target) as handle:
                self.driver(cls).restore(backup, target, handle, volume_is_new)
        finally:
            backup.status = fields.BackupStatus.AVAILABLE
            backup.save()

    # -- the objects a holder of the cinder-backup key can change -----------

    def meta_name(self, backup):
        return "backup.%s.meta" % backup.id

    def pool_of(self, backup):
        return objects.Backup.get_by_id(self.ctxt, backup.id).container

    def raw_object(self, backup):
        with self.ioctx(self.pool_of(backup)) as ioctx:
            return ioctx.read(self.meta_name(backup), length=1 << 20)

    def write_raw_object(self, backup, data):
        with self.ioctx(self.pool_of(backup)) as ioctx:
            ioctx.write_full(self.meta_name(backup), data)

    def object_exists(self, backup, pool=None):
        with self.ioctx(pool or self.pool_of(backup)) as ioctx:
            try:
                ioctx.stat(self.meta_name(backup))
            except rados.ObjectNotFound:
                return False
            return True

    def images(self, pool="backups"):
        with self.ioctx(pool) as ioctx:
            return rbd.RBD().list(ioctx)
