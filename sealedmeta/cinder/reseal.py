"""Seal the metadata of Cinder backups made before sealing.

A backup made by the stock driver class has a plain ``volume_meta`` in its
``<prefix>_metadata`` object, which anyone who could edit the object may have
changed. Resealing must not bless such a change, so the fields that carry
privileges are taken from the Cinder DATABASE, not from the object:

* the Glance section (``volume-glance-metadata``: image id, licence and
  billing codes; its presence makes a restored volume bootable) is rebuilt
  from the source volume's Glance metadata rows -- the live rows, or, for a
  deleted source volume, the rows deleted together with it;
* in the base section, ``encryption_key_id`` and ``volume_type_id`` are
  those of the source volume's row.

The rest (user metadata, display name and description) is kept from the
object: the volume's owner can set those through the API anyway.

Per backup the metadata object is checked first (it names this backup and
volume; its chunk list matches the objects stored under the backup's
prefix), then rewritten in place with ``volume_meta`` sealed -- atomically
(temp file + rename) on the posix and NFS drivers, with one PUT on object
stores -- read back and verified, and finally the backup's ``service`` is
set to the configured sealed driver, so that a later plain ``volume_meta``
is refused instead of taken for a legacy one. Nothing is added under the
backup's prefix. On a versioned S3 bucket the PUT leaves the plain object as
an older version, readable by its version id: the older versions of the
metadata object are removed, or each one that could not be is reported
(result ``resealed-plaintext-left``, exit status 1).
"""

import dataclasses
import json

from oslo_config import cfg

from cinder import context as cinder_context
from cinder.db import api as db
from cinder.db import models
from cinder import exception
from cinder import objects
from cinder.objects import fields
from sealedmeta import atomic
from sealedmeta import exceptions
from sealedmeta.cinder import drivers as sm_drivers
from sealedmeta.cinder import mixin
from sealedmeta.cinder import port
from sealedmeta.cinder import records
from sealedmeta.cinder import volume_meta as vm

CONF = cfg.CONF

RESEALED = "resealed"
WOULD_RESEAL = "would-reseal"
ALREADY_SEALED = "already-sealed"
SKIPPED = "skipped"
FAILED = "failed"
# Resealed, but older versions of the object, in clear, could not be removed.
PLAINTEXT_LEFT = "resealed-plaintext-left"

TEMP_PREFIX = atomic.TEMP_PREFIX  # what scans skip, should a reseal be killed


class CannotReseal(exceptions.SealedMetaError):
    """One backup cannot be resealed: the message says why."""


@dataclasses.dataclass
class Result:
    backup_id: str
    volume_id: str
    result: str
    reason: str = None
    glance: str = None   # where the sealed Glance metadata came from
    versions_removed: int = 0   # superseded plaintext versions deleted
    plaintext_left: tuple = ()  # superseded plaintext versions that stay

    def as_row(self):
        return (self.backup_id, self.volume_id, self.result, self.glance, self.reason,
                self.versions_removed)


COLUMNS = ("backup_id", "volume_id", "result", "glance", "reason", "versions_removed")


def source_volume(ctxt, volume_id):
    """The source volume's row, deleted or not; CannotReseal when purged."""
    try:
        return db.volume_get(ctxt.elevated(read_deleted="yes"), volume_id)
    except exception.VolumeNotFound:
        raise CannotReseal(
            "source volume %s is not in the database (purged): its Glance metadata"
            " cannot be taken from the database" % volume_id) from None


def glance_from_db(ctxt, volume):
    """The source volume's Glance metadata as the database has it (a dict,
    empty when none): its live rows, or those deleted with the volume."""
    if not volume.deleted:
        try:
            rows = db.volume_glance_metadata_get(ctxt, volume.id)
        except exception.GlanceMetadataNotFound:
            rows = []
    else:
        reader = ctxt.elevated(read_deleted="yes")
        with db.main_context_manager.reader.using(reader):
            rows = [row for row in
                    db.model_query(reader, models.VolumeGlanceMetadata,
                                   read_deleted="yes")
                    .filter_by(volume_id=volume.id).all()
                    if row.deleted_at == volume.deleted_at]
    return {row.key: row.value for row in rows}


def true_volume_meta(ctxt, backup, plain):
    """(volume_meta text to seal, note on the Glance source) for *backup*
    whose object holds the unsealed *plain* text (or None)."""
    volume = source_volume(ctxt, backup.volume_id)
    glance = glance_from_db(ctxt, volume)
    if plain is None:
        if not glance:
            return None, "database: none"
        meta = {"version": CONF.backup_metadata_version}
    else:
        meta = json.loads(plain)
    if glance:
        meta[vm.GLANCE_SECTION] = glance
    else:
        meta.pop(vm.GLANCE_SECTION, None)
    base = meta.get(vm.BASE_SECTION)
    if isinstance(base, dict):
        base["encryption_key_id"] = volume.encryption_key_id
        base["volume_type_id"] = volume.volume_type_id
    note = "database: %d keys%s" % (len(glance), " (source volume deleted)"
                                    if volume.deleted else "")
    return json.dumps(meta), note


def _check_object(driver, backup, obj):
    """The object names this backup and volume, and its chunk list the
    objects stored under the backup's prefix (where the store keeps both)."""
    stored = driver.list_backup_objects(backup)
    if stored is None:   # Ceph: the object is volume_meta alone
        return
    if obj.get("backup_id") != backup.id or obj.get("volume_id") != backup.volume_id:
        raise CannotReseal(
            "the metadata object names backup %r and volume %r, not this backup:"
            " it was replaced" % (obj.get("backup_id"), obj.get("volume_id")))
    listed = []
    try:
        for entry in obj["objects"]:
            listed.extend(entry.keys())
    except (KeyError, TypeError, AttributeError):
        raise CannotReseal("the metadata object has no valid chunk list") from None
    if sorted(stored) != sorted(listed):
        raise CannotReseal("the chunk list of the metadata object does not match"
                           " the objects stored under the backup's prefix")


def read_object(driver, backup):
    """The backup's metadata object, checked, as a dict with ``volume_meta``."""
    try:
        obj = driver.read_metadata_object(backup)
    except exception.InvalidBackup as exc:
        raise CannotReseal(exc.msg) from None
    except Exception as exc:
        raise CannotReseal("cannot read the metadata object: %s" % exc) from None
    _check_object(driver, backup, obj)
    return obj


def _write(driver, backup, obj):
    try:
        driver.write_metadata_object(backup, obj)
    except port.WriteRefused as exc:
        raise CannotReseal(str(exc)) from None
    except Exception as exc:
        raise CannotReseal("cannot write the metadata object: %s" % exc) from None


def _mark_sealed(backup, dry_run):
    """Record the configured sealed driver as the backup's service."""
    if dry_run:
        return
    changed = backup.service != CONF.backup_driver
    backup.service = CONF.backup_driver
    # A legacy claim an earlier release kept in the row (never read now).
    metadata = dict(backup.metadata or {})
    if metadata.pop(records.CLAIM_KEY, None) is not None:
        backup.metadata = metadata
        changed = True
    if changed:
        backup.save()


def _remove_plaintext_versions(driver, backup, result):
    """Versioned stores keep what a rewrite replaced (Swift's archive
    containers and object versions, S3's noncurrent versions): delete the
    older versions of the metadata object that are not sealed, and report
    each one that stays (result ``resealed-plaintext-left``, exit 1)."""
    try:
        removed, left = driver.remove_superseded_metadata(backup)
    except Exception as exc:  # the store's own errors: listing refused, ...
        removed, left = [], ["cannot list the versions of the metadata object: %s" % exc]
    result.versions_removed = len(removed)
    if left:
        result.result = PLAINTEXT_LEFT
        result.plaintext_left = tuple(left)
        result.reason = "superseded plaintext versions left: %s" % "; ".join(left)


def reseal_backup(driver, backup, dry_run=False):
    """The :class:`Result` of resealing one backup (never raises for a
    problem of that backup)."""
    result = Result(backup.id, backup.volume_id, FAILED)
    ctxt = driver.context
    service = backup.service
    if not (driver.is_legacy_service(service) or service == CONF.backup_driver):
        result.result = SKIPPED
        result.reason = "made by another backup driver (%s)" % service
        return result
    if backup.status != fields.BackupStatus.AVAILABLE:
        result.result = SKIPPED
        result.reason = "status %s: only available backups are resealed" % backup.status
        return result
    try:
        obj = read_object(driver, backup)
        current = obj.get("volume_meta")
        if vm.is_sealed(current):
            try:
                vm.open_(driver.sealer, current, backup.id, backup.volume_id)
            except exceptions.InvalidEnvelope as exc:
                raise CannotReseal("its sealed metadata does not authenticate (%s);"
                                   " not resealed" % exc) from None
            except exceptions.SealedMetaError as exc:
                raise CannotReseal("its sealed metadata cannot be opened: %s" % exc) from None
            _mark_sealed(backup, dry_run)
            result.result = ALREADY_SEALED
            if not dry_run:  # an earlier rewrite may have left some
                _remove_plaintext_versions(driver, backup, result)
            return result
        problem = driver.plain_problem(current)
        if problem is not None:
            raise CannotReseal(problem)
        text, result.glance = true_volume_meta(ctxt, backup, current)
        try:
            obj["volume_meta"] = vm.seal(driver.sealer, text, backup.id, backup.volume_id)
        except exceptions.SealedMetaError as exc:
            raise CannotReseal("cannot seal: %s" % exc) from None
        if dry_run:
            result.result = WOULD_RESEAL
            return result
        _write(driver, backup, obj)
        # Judged as the sealed driver's from now on (legacy_backups =
        # reject refuses the legacy service whatever its object holds).
        probe = backup.obj_clone()
        probe.service = CONF.backup_driver
        try:
            _, verdict, _ = driver.judge(probe)
        except exception.CinderException:
            raise
        except Exception as exc:  # the store's own (posix: a link swapped in)
            raise CannotReseal("the rewritten metadata object cannot be read"
                               " back: %s" % exc) from None
        if verdict != mixin.SEALED:
            raise CannotReseal("the rewritten metadata object does not read back sealed")
        _mark_sealed(backup, dry_run)
        result.result = RESEALED
        _remove_plaintext_versions(driver, backup, result)
    except CannotReseal as exc:
        result.result, result.reason = FAILED, str(exc)
    except exception.CinderException as exc:
        result.result, result.reason = FAILED, str(exc)
    return result


def select_backups(ctxt, backup_ids=None, all_backups=False):
    """``(backups, results for ids not found)``."""
    missing = []
    if all_backups:
        backups = list(objects.BackupList.get_all(ctxt))
        return sorted(backups, key=lambda b: (str(b.created_at), b.id)), missing
    backups = []
    for backup_id in backup_ids or ():
        try:
            backups.append(objects.Backup.get_by_id(ctxt, backup_id))
        except exception.BackupNotFound:
            missing.append(Result(backup_id, None, FAILED, "no such backup"))
    return backups, missing


def reseal(backup_ids=None, all_backups=False, dry_run=False, driver=None):
    """Reseal the backups asked for; returns a list of :class:`Result`."""
    drivers = (lambda project_id: driver) if driver else sm_drivers.project_drivers()
    ctxt = driver.context if driver else cinder_context.get_admin_context()
    backups, results = select_backups(ctxt, backup_ids, all_backups)
    for backup in backups:
        try:
            project_driver = drivers(backup.project_id)
        except Exception as exc:  # the service user's login, a driver's own
            results.append(Result(backup.id, backup.volume_id, FAILED,
                                  "cannot act in project %s: %s" % (backup.project_id, exc)))
            continue
        results.append(reseal_backup(project_driver, backup, dry_run=dry_run))
    return results
