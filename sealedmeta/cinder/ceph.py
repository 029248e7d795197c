"""``SealedCephBackupDriver``: Cinder's ``CephBackupDriver`` (RBD images in a
Ceph pool), with sealed metadata.

cinder.conf::

    [DEFAULT]
    backup_driver = sealedmeta.cinder.ceph.SealedCephBackupDriver

Needs what the stock driver needs: the rados and rbd Python bindings.

Cinder's Ceph driver keeps a backup's volume metadata in a RADOS object
``backup.<backup id>.meta`` next to the backup's RBD image: plain JSON, the
document the chunked drivers keep in ``volume_meta``. The sealed class writes
the armour of an envelope of that document instead, bound to
``{backup_id, volume_id}``, always (also when the volume has no metadata, so
a removed object cannot pass for "no metadata"). Judging, sealing, the
policies and applying are :class:`~sealedmeta.cinder.mixin.SealedMetadataMixin`'s,
as for the chunked drivers; this module only says how the object is read and
written.

Restore judges the metadata object of the backup and of every backup of its
chain before the stock restore writes the first extent (differential
RBD-to-RBD and full copies alike), and applies what was judged where the
stock driver would read the object again. The object is read and written in
the pool the backup was made in (``backup.container``): Cinder's own restore
reads it from ``backup_ceph_pool``, so a backup made into another pool came
back without its metadata (or, for an RBD backup, failed with
``rbd.ImageNotFound`` looking for its restore point there).
"""

from oslo_config import cfg

from cinder.backup.drivers import ceph as _stock
from cinder import exception
from cinder import utils
from cinder.volume.drivers import rbd as rbd_driver

from sealedmeta.cinder import ceph_pool
from sealedmeta.cinder import metadata_object
from sealedmeta.cinder import mixin
from sealedmeta.cinder import port

CONF = cfg.CONF


class CephMetadataPort(port.MetadataPort):
    """The store port (:mod:`sealedmeta.cinder.port`) of Ceph: the RADOS
    object ``backup.<id>.meta`` in the backup's pool, which holds just what
    the chunked drivers keep in ``volume_meta`` (no identity, no chunk
    list)."""

    def _meta_pool(self, backup):
        return backup["container"] or self._ceph_backup_pool

    def read_metadata_object(self, backup):
        # A backup made by a sealed class has one: its absence is reported
        # as a missing object. The stock driver's backups may lack it (no
        # metadata to restore), as Cinder allows.
        return {"volume_meta": self._read_text(
            backup, required=not self.is_legacy_service(backup["service"]))}

    def write_metadata_object(self, backup, metadata):
        self._write_text(backup, metadata["volume_meta"], replace=True)  # one write_full

    def list_backup_objects(self, backup):
        return None

    def _read_text(self, backup, required):
        """The object's text; when there is no such object, None, or with
        *required* an ``InvalidBackup`` saying it is missing. Read by the one
        bounded reader: refused unread over ``[sealedmeta]
        max_metadata_object_size``."""
        name = _stock.VolumeMetadataBackup(None, backup["id"]).name
        pool = self._meta_pool(backup)
        with utils.tpool_wrap(rbd_driver.RADOSClient(self, pool)) as client:
            try:
                data = ceph_pool.read_object(
                    client.ioctx, name, CONF.sealedmeta.max_metadata_object_size)
            except self.rados.ObjectNotFound:
                if required:
                    raise exception.InvalidBackup(
                        reason="metadata object %s of backup %s is missing from"
                        " pool %s" % (name, backup["id"], pool))
                return None
            except metadata_object.ObjectTooLarge as exc:
                raise exception.InvalidBackup(
                    reason="metadata object %s of backup %s: %s"
                    % (name, backup["id"], exc))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise exception.InvalidBackup(
                reason="the metadata object %s of backup %s is not text"
                % (name, backup["id"])) from None

    def _write_text(self, backup, text, replace=False):
        """Write the object (create it, or with *replace* overwrite it whole)."""
        pool = self._meta_pool(backup)
        with utils.tpool_wrap(rbd_driver.RADOSClient(self, pool)) as client:
            meta = _stock.VolumeMetadataBackup(client, backup["id"])
            if replace:
                client.ioctx.write_full(meta.name, text.encode("utf-8"))
            else:
                meta.set(text)     # refuses to replace an existing object

    # -- the Ceph driver's own steps ------------------------------------------

    def _backup_metadata(self, backup):
        text = self.get_metadata(backup["volume_id"]) or None
        try:
            self._write_text(backup, self._seal(backup, text))
        except exception.VolumeMetadataBackupExists as exc:
            raise exception.BackupOperationError(
                "Failed to backup volume metadata - %s" % exc)

    def _restore_metadata(self, backup, volume_id):
        # Called by the stock restore after the data: apply what restore()
        # judged before the first extent was written.
        value = self._read_metadata(backup).get("volume_meta")
        if value:
            self.put_metadata(volume_id, value)


class _BackupPool:
    """Restore data from the pool the backup was made in. Cinder's
    ``_get_restore_point`` opens the backup's image in ``backup_ceph_pool``
    (``rbd.ImageNotFound`` for a backup made into another pool, while every
    other step uses ``backup.container``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._restore_pools = {}   # backup id -> pool, during _restore_volume

    def _restore_volume(self, backup, volume, volume_file, volume_is_new):
        self._restore_pools[backup.id] = self._meta_pool(backup)
        try:
            return super()._restore_volume(backup, volume, volume_file, volume_is_new)
        finally:
            self._restore_pools.pop(backup.id, None)

    def _get_restore_point(self, base_name, backup_id):
        pool = self._restore_pools.get(backup_id, self._ceph_backup_pool)
        with utils.tpool_wrap(rbd_driver.RADOSClient(self, pool)) as client:
            base_rbd = utils.tpool_wrap(
                self.rbd.Image(client.ioctx, base_name, read_only=True))
            try:
                return self._get_backup_snap_name(base_rbd, base_name, backup_id)
            finally:
                base_rbd.close()


class SealedCephBackupDriver(CephMetadataPort, _BackupPool, mixin.SealedMetadataMixin,
                             _stock.CephBackupDriver):
    """CephBackupDriver whose backups' metadata object is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.ceph.CephBackupDriver",
    )
