"""The encryption key of an encrypted volume's backup restored without its
metadata (``[sealedmeta] on_invalid = drop``).

Cinder sets a restored volume's ``encryption_key_id`` from the backup's
metadata (base section), and its backup manager then gives the volume a
clone of the backup's key. When the metadata is dropped, the data -- still
encrypted under the source volume's key -- would land in a volume that keeps
the key it was created with: unreadable, reported a success. So the key id
is taken from where a tenant cannot write it, the backup's database row
(Cinder keeps a clone of the volume's key id there since Queens), and the
target is checked as Cinder checks it; otherwise the restore is refused
before any data is written.
"""

from cinder import exception


def _refuse(backup, why):
    raise exception.InvalidBackup(
        reason="backup %s is of an encrypted volume and its metadata cannot be"
        " trusted; it cannot be restored without it (%s)" % (backup["id"], why))


def _source_volume(db, ctxt, volume_id):
    try:
        return db.volume_get(ctxt.elevated(read_deleted="yes"), volume_id)
    except exception.VolumeNotFound:
        return None  # purged, or restored in another cloud


def key_for_dropped(db, ctxt, backup, target_id):
    """The key id ``put_metadata`` sets on *target_id* when *backup*'s
    metadata is dropped: None for an unencrypted backup; raises
    ``InvalidBackup`` when the restored volume could not be read."""
    key_id = backup["encryption_key_id"]
    source = _source_volume(db, ctxt, backup["volume_id"])
    if key_id is None:
        if source is not None and source["encryption_key_id"] is not None:
            _refuse(backup, "its database row keeps no encryption key id")
        return None
    target = db.volume_get(ctxt, target_id)
    if source is not None:
        if source["volume_type_id"] != target["volume_type_id"]:
            _refuse(backup, "the target volume's type %s is not the source"
                    " volume's type %s" % (target["volume_type_id"],
                                           source["volume_type_id"]))
    elif not db.volume_type_encryption_get(ctxt, target["volume_type_id"]):
        _refuse(backup, "the target volume's type %s is not encrypted"
                % target["volume_type_id"])
    return key_id


def apply_key(db, ctxt, volume_id, key_id):
    """Give the restored volume the backup's key id, as Cinder's own
    metadata restore would: the backup manager then replaces it by a clone
    and deletes the volume's previous key."""
    db.volume_update(ctxt, volume_id, {"encryption_key_id": key_id})
