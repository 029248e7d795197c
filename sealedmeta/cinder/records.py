"""Backup records (``cinder backup-export`` / ``backup-import``) of the sealed
drivers, and the one fact about a record that a restore needs: whether the
backup was made before sealing.

Which backups may be unsealed is decided from ``backup.service`` alone (see
:meth:`SealedMetadataMixin.judge`): a stock class's name there means "made
before sealing", and only the backup service and sealedmeta's admin commands
write that column -- no tenant can, through any API. Cinder's
``BackupManager.import_record`` sets the imported row's ``service`` to the
configured driver *after* the driver's import hook, so an imported backup
made by the stock class (``service`` one of ``LEGACY_SERVICES``, its
``volume_meta`` not sealed) would be taken for one the sealed driver made and
refused. Its record carries the missing fact as a **legacy claim**: "backup
B of volume V was made by stock class S, and its ``volume_meta`` was this
(SHA-256)". The claim is a MAC under the sealing keyring (:meth:`Sealer.tag`)
so that no one without the key can write one, and it names backup, volume,
service and metadata digest, so that it cannot be moved to another backup,
nor make a later change of the object trusted::

    smc1:<key version>:<MAC, base64url>:<volume id>:<digest, base64url or ->:<service>

* ``export_record`` (the driver hook): a legacy backup whose object is not
  sealed gets a claim in the record's ``driver_info`` -- only there: the
  record is the administrator's. The exported row's backup metadata, which
  a project member can rewrite through Cinder's API (``backup:update``,
  microversion 3.43), never carries one. The exporting cloud's database is
  not changed.
* ``import_record`` (the driver hook) refuses a record whose claim does not
  authenticate for the backup being imported, or that a non-administrator
  imports: the import fails and the backup is left in ``error``.
* ``sealedmeta cinder mark-legacy RECORD`` (:func:`mark_legacy`), run by the
  administrator after the import, checks the record's claim again, and the
  object against the claim's digest, and writes the stock class into the
  row's ``service``. Until then the restore of such a backup is refused
  (its row names the sealed driver, its object is not sealed).

A restore never reads a claim: releases before this one kept it in the
row's backup metadata (key :data:`CLAIM_KEY`), where a member could put it
back after ``cinder reseal`` together with the pre-reseal plain object.
Such a claim left in a row is ignored (and removed by ``mark-legacy`` and
``reseal``).

Backup import is an administrator's action by Cinder's default policy
(``backup:backup-import`` is ``rule:admin_api``): :func:`non_admin_rules`
evaluates the deployment's effective policy with oslo.policy, and the import
hook logs a warning when it lets a project member import or export records.
"""

import base64
import hashlib
import hmac
import json
import re

from oslo_config import cfg
from oslo_log import log as logging

from cinder import exception
from cinder.objects import fields
from sealedmeta import exceptions
from sealedmeta.cinder import volume_meta as vm

LOG = logging.getLogger(__name__)
CONF = cfg.CONF

CLAIM_KEY = "sealedmeta-legacy-claim"
PURPOSE = "cinder legacy backup claim v1"
PREFIX = "smc1"
MAX_CLAIM = 255   # Cinder's backup_metadata.value column
RECORD_RULES = ("backup:backup-import", "backup:export-import")

_CLAIM_RE = re.compile(
    r"\A" + PREFIX + r":(?P<version>[1-9][0-9]{0,9}):(?P<mac>[A-Za-z0-9_-]{43})"
    r":(?P<volume>[0-9A-Za-z-]{1,36}):(?P<digest>[A-Za-z0-9_-]{43}|-)"
    r":(?P<service>[A-Za-z0-9_.]{0,150})\Z")


class Claim:
    __slots__ = ("version", "mac", "volume_id", "digest", "service")

    def __init__(self, version, mac, volume_id, digest, service):
        self.version, self.mac, self.volume_id = version, mac, volume_id
        self.digest, self.service = digest, service


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def digest_of(volume_meta):
    """What a claim names of a ``volume_meta``: SHA-256 (base64url), or ``-``
    for none."""
    if volume_meta is None:
        return "-"
    return _b64(hashlib.sha256(volume_meta.encode("utf-8")).digest())


def _message(backup_id, volume_id, service, digest):
    return json.dumps([PURPOSE, str(backup_id), str(volume_id), service, digest],
                      separators=(",", ":")).encode("utf-8")


def make_claim(sealer, backup_id, volume_id, service, volume_meta):
    service = service or ""
    digest = digest_of(volume_meta)
    version, mac = sealer.tag(PURPOSE, _message(backup_id, volume_id, service, digest))
    claim = ":".join((PREFIX, str(version), _b64(mac), str(volume_id), digest, service))
    if not _CLAIM_RE.match(claim) or len(claim) > MAX_CLAIM:
        raise exception.InvalidBackup(
            reason="backup %s cannot be exported with a legacy claim: its service"
            " or volume id cannot be written in one" % backup_id)
    return claim


def parse_claim(claim):
    """A :class:`Claim`, or ``InvalidEnvelope`` (never anything else)."""
    match = _CLAIM_RE.match(claim) if type(claim) is str else None
    if match is None:
        raise exceptions.InvalidEnvelope("the legacy claim is malformed")
    mac = base64.urlsafe_b64decode(match["mac"] + "=")
    return Claim(int(match["version"]), mac, match["volume"], match["digest"],
                 match["service"])


def check_claim(sealer, claim, backup_id):
    """The authenticated :class:`Claim` of *claim* for *backup_id*."""
    parsed = parse_claim(claim)
    sealer.check_tag(PURPOSE, _message(backup_id, parsed.volume_id, parsed.service,
                                       parsed.digest), parsed.version, parsed.mac)
    return parsed


# -- the driver hooks --------------------------------------------------------

def export_info(driver, backup, info):
    """``driver_info`` of an exported *backup*, with a legacy claim when the
    backup needs one."""
    info = dict(info or {})
    # A claim left in the row by an earlier release is the tenant's to
    # write: the record must not carry it into another cloud's row.
    if CLAIM_KEY in (backup.metadata or {}):
        metadata = dict(backup.metadata)
        metadata.pop(CLAIM_KEY)
        backup.metadata = metadata   # not saved: only the record changes
    if not driver.is_legacy_service(backup.service):
        return info
    value = driver.read_metadata_object(backup).get("volume_meta")
    if vm.is_sealed(value):
        return info  # judged as sealed wherever it is imported
    if value is not None and not isinstance(value, str):
        raise exception.InvalidBackup(
            reason="backup %s cannot be exported: its volume_meta is neither"
            " sealed nor a JSON string" % backup.id)
    try:
        info[CLAIM_KEY] = make_claim(driver.sealer, backup.id, backup.volume_id,
                                     backup.service, value)
    except exceptions.SealedMetaError as exc:
        raise exception.BackupOperationError(
            "cannot make the legacy claim of backup %s: %s" % (backup.id, exc))
    return info


def check_import(driver, backup, info):
    """Refuse (``InvalidBackup``) a record whose legacy claim cannot be
    trusted; called by the import hook before Cinder writes the row."""
    warn_if_non_admins_may_import()
    claim = (info or {}).get(CLAIM_KEY)
    if claim is None:
        return
    context = getattr(backup, "_context", None)
    if not getattr(context, "is_admin", False):
        raise exception.InvalidBackup(
            reason="the record of backup %s claims it was made before sealing;"
            " only an administrator's import may carry that claim" % backup.id)
    try:
        parsed = check_claim(driver.sealer, claim, backup.id)
    except (exceptions.InvalidEnvelope, exceptions.KeyUnavailable) as exc:
        raise exception.InvalidBackup(
            reason="the record of backup %s carries a legacy claim that cannot be"
            " trusted (%s)" % (backup.id, exc))
    except exceptions.SealedMetaError as exc:
        raise exception.BackupOperationError(
            "cannot check the legacy claim of backup %s: %s" % (backup.id, exc))
    if not driver.is_legacy_service(parsed.service):
        raise exception.InvalidBackup(
            reason="the record of backup %s claims it was made by %s, which is"
            " not a stock class of this driver" % (backup.id, parsed.service or "-"))
    LOG.warning(
        "Backup %(backup)s was made before sealing (by %(service)s). Cinder's"
        " import records it as made by the configured driver, so its restore"
        " is refused until 'sealedmeta cinder mark-legacy' is run with this"
        " record.", {"backup": backup.id, "service": parsed.service or "-"})


# -- sealedmeta cinder mark-legacy -------------------------------------------

MARKED = "marked"
ALREADY_LEGACY = "already-legacy"
ALREADY_SEALED = "already-sealed"
NO_CLAIM = "no-claim"
FAILED = "failed"
MARK_COLUMNS = ("backup_id", "volume_id", "result", "service", "reason")
MAX_RECORD = 1024 * 1024   # a record is a few KiB


def claim_of_record(text):
    """``(backup id, claim or None)`` of a backup record as ``openstack
    volume backup record export -f json`` writes it (a JSON object with
    ``backup_service`` and ``backup_url``). Raises ValueError saying why
    it is not one."""
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("not a JSON backup record") from None
    if not isinstance(record, dict) or not isinstance(record.get("backup_url"), str):
        raise ValueError("not a backup record: no backup_url")
    try:
        inner = json.loads(base64.b64decode(record["backup_url"], validate=True))
    except (ValueError, RecursionError):
        raise ValueError("its backup_url is not a base64 JSON record") from None
    if not isinstance(inner, dict) or not isinstance(inner.get("id"), str):
        raise ValueError("its backup_url names no backup id")
    info = inner.get("driver_info")
    claim = info.get(CLAIM_KEY) if isinstance(info, dict) else None
    return inner["id"], claim


def mark_legacy(driver, backup, claim):
    """``(result, reason)`` of marking the imported *backup* (a Backup
    row) made before sealing, as its record's *claim* says: its
    ``service`` becomes the stock class the claim names. Checks that the
    claim authenticates for this backup and volume, that the row is what
    Cinder's import left (the configured driver's, available) and that the
    object's ``volume_meta`` is the exported one."""
    if claim is None:
        return NO_CLAIM, "the record carries no legacy claim (a sealed backup's)"
    try:
        parsed = check_claim(driver.sealer, claim, backup.id)
    except (exceptions.InvalidEnvelope, exceptions.KeyUnavailable) as exc:
        return FAILED, "the record's legacy claim cannot be trusted (%s)" % exc
    except exceptions.SealedMetaError as exc:
        return FAILED, "cannot check the record's legacy claim: %s" % exc
    if parsed.volume_id != str(backup.volume_id):
        return FAILED, "the record's legacy claim was made for another volume"
    if not driver.is_legacy_service(parsed.service):
        return FAILED, ("the record's legacy claim names %s, not a stock class of"
                        " this driver" % (parsed.service or "-"))
    if driver.is_legacy_service(backup.service):
        return ALREADY_LEGACY, None
    if backup.service != CONF.backup_driver:
        return FAILED, ("the row names %s, not the configured driver: not a"
                        " record this driver imported" % backup.service)
    if backup.status != fields.BackupStatus.AVAILABLE:
        return FAILED, "status %s: only available backups are marked" % backup.status
    try:
        value = driver.read_metadata_object(backup).get("volume_meta")
    except exception.InvalidBackup as exc:
        return FAILED, exc.msg
    except Exception as exc:  # the store's own errors: I/O, permissions, auth
        return FAILED, "cannot read the metadata object: %s" % exc
    if vm.is_sealed(value):
        return ALREADY_SEALED, "its metadata object is sealed: nothing to mark"
    if (value is not None and not isinstance(value, str)) or not hmac.compare_digest(
            digest_of(value), parsed.digest):
        return FAILED, ("its metadata object is not the one the record's legacy"
                        " claim names (changed since the record was exported)")
    backup.service = parsed.service or None
    metadata = dict(backup.metadata or {})
    if metadata.pop(CLAIM_KEY, None) is not None:
        backup.metadata = metadata
    backup.save()
    return MARKED, None


# -- Cinder's policy ---------------------------------------------------------

def non_admin_rules(conf=None):
    """The record rules (:data:`RECORD_RULES`) the effective policy grants to
    a plain project member (roles member and reader, no admin): Cinder's
    registered defaults, overridden by the deployment's policy file."""
    from oslo_policy import policy as oslo_policy

    from cinder import policies
    enforcer = oslo_policy.Enforcer(conf or CONF)
    enforcer.register_defaults(policies.list_rules())
    enforcer.load_rules()
    creds = {"user_id": "u", "project_id": "p", "roles": ["member", "reader"],
             "is_admin": False, "is_admin_project": True, "system_scope": None,
             "domain_id": None}
    return [rule for rule in RECORD_RULES
            if enforcer.enforce(rule, {"project_id": "p", "user_id": "u"}, creds)]


_warned = []


def warn_if_non_admins_may_import(conf=None):
    if _warned:
        return
    _warned.append(True)
    try:
        rules = non_admin_rules(conf)
    except Exception as exc:  # a broken policy file is Cinder's to report
        LOG.warning("cannot evaluate Cinder's backup record policy: %s", exc)
        return
    if rules:
        LOG.warning(
            "Cinder's policy lets a project member use %s: a tenant can import"
            " backup records of its choosing. sealedmeta still refuses claims it"
            " cannot authenticate, but Cinder trusts every other field of a"
            " record; keep backup import an administrator's action.",
            ", ".join(rules))
