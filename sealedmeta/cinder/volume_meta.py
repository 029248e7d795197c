"""Sealing and opening the ``volume_meta`` field of a Cinder backup's
``<prefix>_metadata`` object. Imports nothing from Cinder.

The field's sealed form is the armour (``sealedmeta:`` + unpadded base64url)
of an envelope whose

* context is ``{"backup_id": <backup id>, "volume_id": <volume id>}``, both
  taken from the Cinder database at restore time, never from the object;
* payload is ``{"format": "cinder-volume-meta/1", "volume_meta": <the WHOLE
  original volume_meta JSON string, or None when the volume had none>}``.

The armour contains no character JSON escapes, so it appears verbatim in the
object.
"""

from sealedmeta import envelope
from sealedmeta import exceptions

PAYLOAD_FORMAT = "cinder-volume-meta/1"
ARMOR_PREFIX = envelope.ARMOR_PREFIX

# backup_metadata_version values Cinder's BackupMetadataAPI.put accepts.
CINDER_META_VERSIONS = (1, 2)
GLANCE_SECTION = "volume-glance-metadata"
BASE_SECTION = "volume-base-metadata"
USER_SECTION = "volume-metadata"


def context_for(backup_id, volume_id):
    """The envelope context of a backup: ids as str."""
    return {"backup_id": str(backup_id), "volume_id": str(volume_id)}


def is_sealed(value):
    """True when a ``volume_meta`` value is (claims to be) an armoured envelope."""
    return isinstance(value, str) and value.startswith(ARMOR_PREFIX)


def seal(sealer, volume_meta, backup_id, volume_id):
    """The armour sealing *volume_meta* (a str, or None) for the backup."""
    if volume_meta is not None and not isinstance(volume_meta, str):
        raise exceptions.InvalidMetadata(
            "volume_meta must be a JSON string or None, not %s"
            % type(volume_meta).__name__)
    payload = {"format": PAYLOAD_FORMAT, "volume_meta": volume_meta}
    return envelope.armor(sealer.seal(payload, context_for(backup_id, volume_id)))


def open_(sealer, armour, backup_id, volume_id):
    """The original ``volume_meta`` (str or None) sealed in *armour*.

    Raises :class:`~sealedmeta.exceptions.InvalidEnvelope` (or a subclass:
    ``ContextMismatch`` when sealed for another backup or volume) and
    :class:`~sealedmeta.exceptions.KeyUnavailable` as :meth:`Sealer.open`
    does, and ``MalformedEnvelope`` for an authentic envelope whose payload is
    not a Cinder ``volume_meta`` payload.
    """
    payload = sealer.open(armour, context_for(backup_id, volume_id))
    return check_payload(payload)


def check_payload(payload):
    if (set(payload) != {"format", "volume_meta"}
            or payload["format"] != PAYLOAD_FORMAT):
        raise exceptions.MalformedEnvelope(
            "malformed envelope: payload is not a Cinder volume_meta payload"
            " (%s)" % PAYLOAD_FORMAT)
    value = payload["volume_meta"]
    if value is not None and type(value) is not str:
        raise exceptions.MalformedEnvelope(
            "malformed envelope: sealed volume_meta is not a string")
    return value
