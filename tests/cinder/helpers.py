"""Volumes as files, backups through the real (Sealed)PosixBackupDriver."""

import json
import os
import uuid

from oslo_config import cfg

from cinder.db import api as db
from cinder import exception
from cinder import objects
from cinder.backup.drivers import posix as stock_posix
from cinder.objects import fields

CONF = cfg.CONF

SEALED_POSIX = "sealedmeta.cinder.posix.SealedPosixBackupDriver"
STOCK_POSIX = "cinder.backup.drivers.posix.PosixBackupDriver"
CHUNK = 64 * 1024
SHA_BLOCK = 4 * 1024
VOLUME_BYTES = 5 * CHUNK

GLANCE = {
    "image_id": "7f0e8b5a-1c39-4a0e-9a55-0d4b7c3e2b11",
    "image_name": "rhel-9.4",
    "os_distro": "rhel",
    "billing_code_licence": "RHEL-PREMIUM-0042",
    "min_disk": "1",
}
OTHER_GLANCE = {
    "image_id": "00000000-0000-4000-8000-000000000000",
    "image_name": "cirros",
    "billing_code_licence": "FREE",
}


def sealed_class():
    from sealedmeta.cinder import posix
    return posix.SealedPosixBackupDriver


def stock_class():
    return stock_posix.PosixBackupDriver


def random_bytes(size=VOLUME_BYTES, seed=None):
    # Compressible enough to exercise zlib, distinct per call.
    unit = (seed or uuid.uuid4().bytes) * 4
    block = bytearray()
    while len(block) < size:
        block += unit + os.urandom(16)
    return bytes(block[:size])


class Cloud:
    """Volumes (DB rows + files) and backups of one test."""

    def __init__(self, ctxt, voldir):
        self.ctxt = ctxt
        self.voldir = voldir
        os.makedirs(voldir, exist_ok=True)
        self.project_id = str(uuid.uuid4())
        self.user_id = str(uuid.uuid4())
        self.type_id = db.volume_type_get_by_name(ctxt, "__DEFAULT__")["id"]

    # -- volumes ------------------------------------------------------------

    def path(self, volume_id):
        return os.path.join(self.voldir, volume_id)

    def volume(self, glance=None, user_meta=None, data=None, name="vol",
               status="available", encryption_key_id=None, volume_type_id=None,
               volume_id=None):
        volume = db.volume_create(self.ctxt, {
            "id": volume_id or str(uuid.uuid4()),
            "size": 1,
            "status": status,
            "host": "testhost@lvm#lvm",
            "display_name": name,
            "display_description": "volume %s" % name,
            "project_id": self.project_id,
            "user_id": self.user_id,
            "volume_type_id": volume_type_id or self.type_id,
            "availability_zone": "nova",
            "metadata": dict(user_meta or {}),
            "encryption_key_id": encryption_key_id,
        })
        for key, value in (glance or {}).items():
            db.volume_glance_metadata_create(self.ctxt, volume.id, key, value)
        if glance:
            db.volume_update(self.ctxt, volume.id, {"bootable": True})
        with open(self.path(volume.id), "wb") as handle:
            handle.write(data if data is not None else random_bytes())
        return volume.id

    def new_target(self):
        """A volume created for a restore: zeros, no metadata."""
        return self.volume(data=bytes(VOLUME_BYTES), name="restore_backup_target",
                           status="restoring-backup")

    def data(self, volume_id):
        with open(self.path(volume_id), "rb") as handle:
            return handle.read()

    def write(self, volume_id, offset, data):
        with open(self.path(volume_id), "r+b") as handle:
            handle.seek(offset)
            handle.write(data)

    def glance(self, volume_id):
        try:
            rows = db.volume_glance_metadata_get(self.ctxt, volume_id)
        except exception.GlanceMetadataNotFound:
            return {}
        return {row.key: row.value for row in rows}

    def bootable(self, volume_id):
        return db.volume_get(self.ctxt, volume_id).bootable

    def user_meta(self, volume_id):
        return db.volume_metadata_get(self.ctxt, volume_id)

    def volume_row(self, volume_id):
        return db.volume_get(self.ctxt, volume_id)

    # -- backups ------------------------------------------------------------

    def driver(self, cls=None):
        return (cls or sealed_class())(self.ctxt)

    def backup(self, volume_id, parent=None, cls=None, service=None,
               backup_id=None):
        """Back *volume_id* up with the real driver; returns the Backup."""
        cls = cls or sealed_class()
        if service is None:
            service = STOCK_POSIX if cls is stock_class() else SEALED_POSIX
        values = dict(
            volume_id=volume_id, user_id=self.user_id,
            project_id=self.project_id, host="testhost", availability_zone="nova",
            display_name="backup of %s" % volume_id[:8], display_description="",
            status=fields.BackupStatus.CREATING, service=service, size=1,
            parent_id=parent.id if parent is not None else None)
        if backup_id is None:
            backup = objects.Backup(context=self.ctxt, metadata={}, **values)
            backup.create()
        else:   # Backup.create() gives every backup an id of its own
            backup = objects.Backup.get_by_id(self.ctxt, db.backup_create(
                self.ctxt, dict(values, id=backup_id)).id)
        with open(self.path(volume_id), "rb") as handle:
            cls(self.ctxt).backup(backup, handle)
        backup.status = fields.BackupStatus.AVAILABLE
        backup.save()
        if parent is not None:
            db.backup_add_dependent(self.ctxt, parent.id)
        return objects.Backup.get_by_id(self.ctxt, backup.id)

    def restore(self, backup, target, volume_is_new=True, cls=None):
        """Restore with the real driver into the target's file (opened r+b,
        so only what the driver writes changes it)."""
        backup = objects.Backup.get_by_id(self.ctxt, backup.id)
        backup.status = fields.BackupStatus.RESTORING
        backup.save()
        try:
            with open(self.path(target), "r+b") as handle:
                self.driver(cls).restore(backup, target, handle, volume_is_new)
        finally:
            backup.status = fields.BackupStatus.AVAILABLE
            backup.save()

    # -- the objects the user can edit --------------------------------------

    def container_dir(self, backup):
        backup = objects.Backup.get_by_id(self.ctxt, backup.id)
        return os.path.join(CONF.backup_posix_path, backup.container)

    def metadata_path(self, backup):
        backup = objects.Backup.get_by_id(self.ctxt, backup.id)
        return os.path.join(self.container_dir(backup),
                            backup.service_metadata + "_metadata")

    def read_object(self, backup):
        with open(self.metadata_path(backup), "rb") as handle:
            return json.loads(handle.read())

    def raw_object(self, backup):
        with open(self.metadata_path(backup), "rb") as handle:
            return handle.read()

    def write_object(self, backup, obj):
        self.write_raw_object(backup, json.dumps(obj, sort_keys=True, indent=2).encode())

    def write_raw_object(self, backup, data):
        with open(self.metadata_path(backup), "wb") as handle:
            handle.write(data)

    def object_names(self, backup):
        backup = objects.Backup.get_by_id(self.ctxt, backup.id)
        return sorted(os.listdir(self.container_dir(backup)))
