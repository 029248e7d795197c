"""SealedMetadataMixin: sealed ``volume_meta`` for Cinder's chunked backup
drivers.

Put it first in the bases of any ``ChunkedBackupDriver`` subclass::

    class SealedPosixBackupDriver(SealedMetadataMixin, PosixBackupDriver):
        LEGACY_SERVICES = ("cinder.backup.drivers.posix.PosixBackupDriver",)

Backup: ``_backup_metadata`` lets the driver collect the volume's metadata,
then replaces ``object_meta['volume_meta']`` by the armour of an envelope
holding the whole original string, bound to ``{backup_id, volume_id}``. No
object is added under the backup's prefix.

Restore: ``restore`` first reads and judges the metadata object of every
backup of the chain (the backup and its parents), before a byte is written to
the target; ``_read_metadata`` hands the driver the authenticated original
``volume_meta``; ``put_metadata`` applies it, or, by policy, applies none of
it and clears the target's Glance metadata and bootable flag. The context is
taken from the Cinder database (the backup row), never from the object.

Which backups must be sealed is also decided from the database: a backup
whose ``service`` is one of :attr:`LEGACY_SERVICES` (the stock class that made
it before the switch) may be unsealed and is judged by
``[sealedmeta] legacy_backups``; any other backup of this driver must carry a
valid envelope, so replacing the envelope by plain JSON is not a downgrade.
"""

import json
import sys

from oslo_config import cfg
from oslo_log import log as logging

from cinder.db import api as db
from cinder import exception
from cinder import objects
from sealedmeta import events
from sealedmeta import exceptions
from sealedmeta.cinder import encrypted
from sealedmeta.cinder import metadata_object
from sealedmeta.cinder import options
from sealedmeta.cinder import policy_check
from sealedmeta.cinder import port
from sealedmeta.cinder import records
from sealedmeta.cinder import volume_meta as vm

LOG = logging.getLogger(__name__)

CONF = cfg.CONF
options.register_opts(CONF)

# How a backup's metadata was judged (see SealedMetadataMixin.judge).
SEALED = "sealed"        # authentic envelope, sealed for this backup
LEGACY = "legacy"        # unsealed, made before sealing: legacy_backups policy
DROPPED = "dropped"      # cannot be trusted, on_invalid = drop


class Directive:
    """What ``put_metadata`` does instead of applying a JSON string.

    Only the mixin's ``_read_metadata`` makes these (a JSON object read from
    storage can never be one). Always true, so Cinder's restore loop hands it
    to ``put_metadata``.
    """

    __slots__ = ("kind", "text", "reason", "reason_class", "encryption_key_id")

    def __init__(self, kind, text=None, reason=None, reason_class=None):
        self.kind, self.text, self.reason = kind, text, reason
        self.reason_class = reason_class
        # Of the backup's database row, for an encrypted volume's data
        # restored without its metadata (see sealedmeta.cinder.encrypted).
        self.encryption_key_id = None

    def __bool__(self):
        return True

    def __repr__(self):
        return "<sealedmeta %s directive>" % self.kind


def refusal_class(cause):
    """The audit's class (sealedmeta.cinder.audit) of metadata refused
    because of *cause*: the error being handled when it was refused, or
    None. For events: never the reason's text, which may quote the object."""
    if isinstance(cause, exceptions.ContextMismatch):
        return "context-mismatch"
    if isinstance(cause, exceptions.InvalidEnvelope):
        return "invalid"
    if isinstance(cause, exceptions.SealedMetaError):   # a key that cannot be used
        return "unreadable"
    if cause is not None and metadata_object.missing(cause):
        return "missing"
    return "invalid"


def service_name(cls):
    return "%s.%s" % (cls.__module__, cls.__name__)


def claim_legacy_backups(cls):
    """Let Cinder's backup manager treat the backups of *cls*'s stock parent
    as this driver's own (``BackupManager._is_our_backup``), when *cls* is the
    configured ``backup_driver``.

    Cinder records the driver class in ``backup.service`` and refuses to
    restore, delete, export or reset a backup made by another class; its
    ``cinder.backup.manager.MAPPING`` (old name -> new name, for renamed
    drivers) is the one place it accepts another name, so each stock name is
    added there, mapped to the configured name, and logged once. Nothing is
    added in a process configured with another driver, so the mapping never
    turns a stock configuration into a sealed one.

    Called by the driver's constructor, never when a module is imported:
    Cinder's backup manager builds its driver when the service starts
    (``init_host``, before it takes any request) and for each request, so
    the names are mapped before the manager first asks whose a backup is.
    Returns True when the names are mapped.
    """
    # Only a BackupManager reads the mapping, and where there is one its
    # module is loaded (it imports the driver class). Importing it here
    # instead would need Cinder's objects registered first.
    manager = sys.modules.get("cinder.backup.manager")
    if manager is None:
        return False
    try:
        configured = CONF.backup_driver
    except cfg.Error:
        return False
    if configured != service_name(cls):
        return False
    for legacy in cls.LEGACY_SERVICES:
        if legacy not in manager.MAPPING:
            manager.MAPPING[legacy] = configured
            LOG.info("Backups recorded as made by %s are taken for %s's own"
                     " (cinder.backup.manager.MAPPING): made before sealing,"
                     " they are judged by [sealedmeta] legacy_backups.",
                     legacy, configured)
    return True


def _error_name(cause):
    """The library's exception class name of *cause*, else None."""
    if isinstance(cause, exceptions.SealedMetaError):
        return type(cause).__name__
    return None


class SealedMetadataMixin(port.ChunkedObjectPort):
    """Seals ``volume_meta`` of a ``ChunkedBackupDriver`` (put it first).

    Reaches the metadata object through the store port
    (:mod:`sealedmeta.cinder.port`) only; a chunked driver's is inherited.
    """

    #: ``backup.service`` values of backups made by the stock parent class
    #: before the switch: those may be unsealed (``legacy_backups`` policy).
    LEGACY_SERVICES = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._judged = {}  # backup id -> metadata, during restore()
        claim_legacy_backups(type(self))

    # -- helpers ------------------------------------------------------------

    @classmethod
    def is_legacy_service(cls, service):
        """True when a backup recorded with *service* was made by the stock
        parent (or records no driver). Prefixes count, as in Cinder's own
        check, for backups that recorded a module name only."""
        if not service:
            return True
        return any(name.startswith(service) for name in cls.LEGACY_SERVICES)

    @property
    def sealer(self):
        return options.get_sealer(CONF)

    def check_for_setup_error(self):
        super().check_for_setup_error()
        try:
            policy_check.check(CONF)
        except policy_check.PermissivePolicy as exc:
            raise exception.BackupDriverException(reason=str(exc))

    # -- backup -------------------------------------------------------------

    def _seal(self, backup, text):
        try:
            return vm.seal(self.sealer, text, backup["id"], backup["volume_id"])
        except exceptions.SealedMetaError as exc:
            events.for_service(CONF).seal_failed(
                backup["id"], backup["project_id"], backup["volume_id"],
                CONF.sealedmeta.keyring, type(exc).__name__)
            raise exception.BackupOperationError(
                "cannot seal the metadata of backup %s: %s" % (backup["id"], exc))

    def _backup_metadata(self, backup, object_meta):
        super()._backup_metadata(backup, object_meta)
        object_meta["volume_meta"] = self._seal(backup, object_meta.get("volume_meta"))

    def _finalize_backup(self, backup, container, object_meta, object_sha256):
        # backup(..., backup_metadata=False) skips _backup_metadata: seal the
        # absence of metadata too, or it could not be told from a stripped one.
        if not vm.is_sealed(object_meta.get("volume_meta")):
            object_meta["volume_meta"] = self._seal(backup, object_meta.get("volume_meta"))
        return super()._finalize_backup(backup, container, object_meta, object_sha256)

    # -- restore ------------------------------------------------------------

    def _invalid(self, backup, metadata, reason):
        if CONF.sealedmeta.on_invalid == options.DROP:
            metadata["volume_meta"] = Directive(
                options.DROP, reason=reason,
                reason_class=refusal_class(sys.exc_info()[1]))
            return metadata, DROPPED, reason
        raise exception.InvalidBackup(
            reason="the metadata of backup %s cannot be trusted: %s"
            % (backup["id"], reason))

    @staticmethod
    def plain_problem(value):
        """Why an unsealed volume_meta cannot be handed to Cinder, or None."""
        if value is None:
            return None
        if not isinstance(value, str):
            return "volume_meta is neither sealed nor a JSON string"
        try:
            meta = metadata_object.loads(
                value, CONF.sealedmeta.max_metadata_object_size)
        except metadata_object.ObjectError:
            return "volume_meta is not valid JSON"
        if not isinstance(meta, dict):
            return "volume_meta is not a JSON object"
        if meta.get("version") not in vm.CINDER_META_VERSIONS:
            return "volume_meta has an unsupported version %r" % (meta.get("version"),)
        return None

    def judge(self, backup, metadata=None):
        """``(metadata, verdict, reason)`` of *backup*'s metadata object.

        *metadata*, when given, is that object already read with
        :meth:`read_metadata_object` (the audit keeps the sealed original).

        *metadata* is the object with ``volume_meta`` replaced by what
        ``put_metadata`` may apply: the authenticated original string, the
        unsealed string of a trusted legacy backup, or a :class:`Directive`.
        Raises ``InvalidBackup`` when the backup must not be restored, and
        ``BackupOperationError`` when the key store cannot be used.
        """
        backup_id = backup["id"]
        service = backup["service"]
        policy = CONF.sealedmeta.legacy_backups
        legacy = self.is_legacy_service(service)
        # Decided from the database alone: whatever the object holds (a
        # forged "sealedmeta:" prefix under on_invalid = drop included).
        if legacy and policy == options.REJECT:
            raise exception.InvalidBackup(
                reason="backup %s was made before sealing (by %s): refused"
                " whatever its metadata object holds, [sealedmeta]"
                " legacy_backups = reject. Seal it with 'sealedmeta cinder"
                " reseal --backup-id %s'" % (backup_id, service, backup_id))
        if metadata is None:
            metadata = self.read_metadata_object(backup)
        value = metadata.get("volume_meta")
        if vm.is_sealed(value):
            try:
                metadata["volume_meta"] = vm.open_(
                    self.sealer, value, backup_id, backup["volume_id"])
            except exceptions.InvalidEnvelope as exc:
                return self._invalid(backup, metadata, str(exc))
            except exceptions.KeyUnavailable as exc:
                raise exception.InvalidBackup(
                    reason="the metadata of backup %s is sealed under a key that"
                    " cannot be used: %s" % (backup_id, exc))
            except exceptions.SealedMetaError as exc:
                raise exception.BackupOperationError(
                    "cannot open the metadata of backup %s: %s" % (backup_id, exc))
            return metadata, SEALED, None
        if not legacy:
            # Decided from the database alone, again: nothing a tenant can
            # write (backup metadata, the object) makes a backup legacy.
            return self._invalid(
                backup, metadata,
                "the backup was made by %s, which seals its metadata, but its"
                " volume_meta is not sealed" % service)
        problem = self.plain_problem(value)
        if problem is not None:
            return self._invalid(backup, metadata, problem)
        if policy == options.DROP_GLANCE:
            metadata["volume_meta"] = Directive(
                options.DROP_GLANCE, text=self._without_glance(backup, value))
        return metadata, LEGACY, None

    def _without_glance(self, backup, value):
        """*value* (a legacy volume_meta, checked) without its Glance
        section, and with what Cinder would apply from its base section
        that an unauthenticated object must not decide -- the encryption
        key id and volume type -- taken from the database, as reseal does:
        the source volume's row, deleted or not."""
        if value is None:
            return None
        meta = metadata_object.loads(
            value, CONF.sealedmeta.max_metadata_object_size)
        meta.pop(vm.GLANCE_SECTION, None)
        base = meta.get(vm.BASE_SECTION)
        if isinstance(base, dict):
            try:
                volume = db.volume_get(self.context.elevated(read_deleted="yes"),
                                       backup["volume_id"])
                base["encryption_key_id"] = volume.encryption_key_id
                base["volume_type_id"] = volume.volume_type_id
            except exception.VolumeNotFound:
                if backup["encryption_key_id"] is not None:
                    raise exception.InvalidBackup(
                        reason="backup %s was made before sealing from an"
                        " encrypted volume that is no longer in the database:"
                        " its volume type cannot be taken from the database"
                        % backup["id"]) from None
                base["encryption_key_id"] = base["volume_type_id"] = None
        return json.dumps(meta)

    def _read_metadata(self, backup):
        judged = self._judged.get(backup["id"])
        if judged is not None:
            return judged
        return self.judge(backup)[0]

    def restore(self, backup, volume_id, volume_file, volume_is_new):
        # Judge the whole chain (parents first, as they are applied) before
        # Cinder writes the first chunk: a refused parent must not leave a
        # half-restored target. What was judged is what is used.
        chain = [backup]
        while chain[-1].parent_id:
            chain.append(objects.Backup.get_by_id(self.context, chain[-1].parent_id))
        mine = []
        try:
            for member in reversed(chain):
                metadata, verdict, reason = self._judge_restored(member, volume_id)
                if verdict == DROPPED:
                    # Refused here, before any data is written, when the
                    # volume could not be read.
                    metadata["volume_meta"].encryption_key_id = (
                        encrypted.key_for_dropped(self.db, self.context, member,
                                                  volume_id))
                self._log_verdict(member, volume_id, verdict, reason)
                self._judged[member["id"]] = metadata
                mine.append(member["id"])
            return super().restore(backup, volume_id, volume_file, volume_is_new)
        finally:
            for backup_id in mine:
                self._judged.pop(backup_id, None)

    def _judge_restored(self, backup, volume_id):
        """:meth:`judge` for a restore into *volume_id*, telling the message
        bus (:mod:`sealedmeta.events`) of metadata refused or dropped."""
        notify = events.for_service(CONF).restore_refused
        try:
            metadata, verdict, reason = self.judge(backup)
        except exception.InvalidBackup as exc:
            cause = exc.__context__
            legacy = (self.is_legacy_service(backup["service"])
                      and CONF.sealedmeta.legacy_backups == options.REJECT)
            notify(backup["id"], backup["project_id"], volume_id,
                   "legacy" if legacy else refusal_class(cause),
                   _error_name(cause))
            raise
        except exception.BackupOperationError as exc:
            notify(backup["id"], backup["project_id"], volume_id, "unreadable",
                   _error_name(exc.__context__))
            raise
        if verdict == DROPPED:
            directive = metadata["volume_meta"]
            notify(backup["id"], backup["project_id"], volume_id,
                   directive.reason_class, None, events.DROPPED)
        return metadata, verdict, reason

    def _log_verdict(self, backup, volume_id, verdict, reason):
        policy = CONF.sealedmeta.legacy_backups
        if verdict == LEGACY:
            LOG.warning(
                "Restoring backup %(backup)s to volume %(volume)s: its metadata was"
                " written before sealing (by %(service)s) and cannot be"
                " authenticated; %(what)s ([sealedmeta] legacy_backups = %(policy)s)."
                " Seal it with 'sealedmeta cinder reseal --backup-id %(backup)s'.",
                {"backup": backup["id"], "volume": volume_id,
                 "service": backup["service"] or "an unknown driver",
                 "policy": policy,
                 "what": ("restoring it as it is" if policy == options.TRUST else
                          "restoring it without its Glance metadata")})
        elif verdict == DROPPED:
            LOG.warning(
                "Restoring backup %(backup)s to volume %(volume)s without its"
                " metadata, which cannot be trusted (%(reason)s): the volume's Glance"
                " metadata is cleared and it is not bootable ([sealedmeta]"
                " on_invalid = drop).",
                {"backup": backup["id"], "volume": volume_id, "reason": reason})

    def _clear_glance(self, volume_id):
        self.db.volume_glance_metadata_delete_by_volume(self.context, volume_id)
        self.db.volume_update(self.context, volume_id, {"bootable": False})

    def put_metadata(self, volume_id, json_metadata):
        if isinstance(json_metadata, Directive):
            if json_metadata.kind == options.DROP_GLANCE and json_metadata.text:
                # Judged and stripped by _without_glance.
                super().put_metadata(volume_id, json_metadata.text)
            # A missing Glance section would leave the target's own Glance
            # metadata (and bootable flag) in place: clear them.
            self._clear_glance(volume_id)
            if json_metadata.encryption_key_id is not None:
                encrypted.apply_key(self.db, self.context, volume_id,
                                    json_metadata.encryption_key_id)
            return
        super().put_metadata(volume_id, json_metadata)

    # -- export / import (sealedmeta.cinder.records) -------------------------

    def export_record(self, backup):
        return records.export_info(self, backup, super().export_record(backup))

    def import_record(self, backup, driver_info):
        records.check_import(self, backup, driver_info)
        return super().import_record(backup, driver_info)
