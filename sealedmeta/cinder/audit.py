"""Audit every backup the Cinder database knows, judged where it is stored.

Each backup's metadata object is read through the configured driver class
(acting in the backup's project where the store keeps backups per project:
:func:`sealedmeta.cinder.drivers.project_drivers`) and judged by the very
function a restore uses (:meth:`SealedMetadataMixin.judge`). Never writes
to the store or the database.

The classes (``CLASSES``) are words of the one vocabulary of
:mod:`sealedmeta.verdict`, specified with ``sealedmeta verify``'s statuses
in docs/source/audit.rst.

Backups are read from the database a page at a time, ordered by id, and
rows are yielded as they are judged: memory does not grow with the number
of backups. ``--state FILE`` appends each finished row (one JSON line, made
durable before the next row is reported) so that a killed audit resumes
without reading those backups again.
"""

import collections
import concurrent.futures
import dataclasses
import gc
import json
import os
import threading
import uuid

from cinder import context as cinder_context
from cinder import exception
from cinder import objects
from sealedmeta import carriers
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta.cinder import carrier as cinder_carrier
from sealedmeta.cinder import drivers as sm_drivers
from sealedmeta.cinder import metadata_object
from sealedmeta.cinder import mixin
from sealedmeta.cinder import options
from sealedmeta.cinder import volume_meta as vm
from sealedmeta.verdict import CONTEXT_MISMATCH
from sealedmeta.verdict import INVALID
from sealedmeta.verdict import LEGACY
from sealedmeta.verdict import MISSING
from sealedmeta.verdict import UNKNOWN_KEY
from sealedmeta.verdict import UNREADABLE
from sealedmeta.verdict import UNSIGNED
from sealedmeta.verdict import VALID

# UNSIGNED and UNKNOWN_KEY with public keys only: an envelope whose origin
# they cannot check (suite 1 under a version without key pair), or one
# under a keyring or key the file lacks.
CLASSES = (VALID, LEGACY, INVALID, CONTEXT_MISMATCH, MISSING, UNREADABLE,
           UNSIGNED, UNKNOWN_KEY)

COLUMNS = ("backup_id", "project_id", "volume_id", "status", "class",
           "key_version", "reason")

PAGE = 500  # backups read from the database at a time


@dataclasses.dataclass
class Row:
    backup_id: str
    project_id: str
    volume_id: str
    status: str
    klass: str
    key_version: int = None
    reason: str = None

    def as_row(self):
        return (self.backup_id, self.project_id, self.volume_id, self.status,
                self.klass, self.key_version, self.reason)

    def as_dict(self):
        return dict(zip(COLUMNS, self.as_row(), strict=True))

    @classmethod
    def from_dict(cls, data):
        row = cls(*(data[name] for name in COLUMNS))
        if row.klass not in CLASSES:
            # e.g. "sealed-valid" or "unverified" of an older sealedmeta
            raise ValueError("unknown class %r" % (row.klass,))
        return row


def parse_shard(text):
    """``"K/N"`` -> ``(K, N)`` with ``1 <= K <= N``."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise exceptions.SetupError("bad --shard %r: expected K/N, e.g. 1/4" % text) from None
    if not 1 <= k <= n:
        raise exceptions.SetupError("bad --shard %r: K must be between 1 and N" % text)
    return k, n


def in_shard(backup_id, shard):
    if shard is None:
        return True
    k, n = shard
    try:
        number = uuid.UUID(backup_id).int
    except ValueError:
        number = int.from_bytes(backup_id.encode(), "big")
    return number % n == k - 1


def _key_version(value):
    try:
        return envelope.parse(envelope.dearmor(value)).header.key_version
    except exceptions.InvalidEnvelope:
        return None


def _invalid_class(cause):
    if isinstance(cause, exceptions.ContextMismatch):
        return CONTEXT_MISMATCH
    return INVALID


def _reason_class(cause, default):
    if isinstance(cause, exceptions.SealedMetaError):
        return "%s: %s" % (type(cause).__name__, cause)
    return default


def _read(driver, backup, row):
    """The backup's metadata object through its driver; None (with *row*'s
    class and reason set) when it is missing or cannot be read."""
    try:
        return driver.read_metadata_object(backup)
    except exception.InvalidBackup as exc:
        cause = exc.__context__
        if cause is not None and metadata_object.missing(cause):
            row.klass, row.reason = MISSING, str(exc.msg)
        else:
            row.klass, row.reason = INVALID, "object: %s" % exc.msg
    except Exception as exc:  # the store's own errors: I/O, permissions, auth
        row.klass, row.reason = UNREADABLE, "%s: %s" % (type(exc).__name__, exc)
    return None


def judge_backup(driver, backup):
    """The :class:`Row` of one backup, judged as a restore would."""
    row = Row(backup.id, backup.project_id, backup.volume_id, backup.status, None)
    metadata = _read(driver, backup, row)
    if metadata is None:
        return row
    value = metadata.get("volume_meta")
    sealed = vm.is_sealed(value)
    if sealed:
        row.key_version = _key_version(value)
    try:
        _, verdict, reason = driver.judge(backup, metadata=dict(metadata))
    except exception.InvalidBackup as exc:
        cause = exc.__context__
        if isinstance(cause, exceptions.KeyUnavailable) and not isinstance(
                cause, exceptions.InvalidEnvelope):
            row.klass = UNREADABLE
        elif not sealed and driver.is_legacy_service(backup.service):
            row.klass = LEGACY  # refused by legacy_backups = reject
        else:
            row.klass = _invalid_class(cause)
        row.reason = _reason_class(cause, str(exc.msg))
        return row
    except exception.BackupOperationError as exc:
        row.klass, row.reason = UNREADABLE, str(exc.msg)
        return row
    if verdict == mixin.SEALED:
        row.klass = VALID
    elif verdict == mixin.LEGACY:
        row.klass, row.key_version = LEGACY, None
    else:  # on_invalid = drop: judged untrustworthy
        row.klass, row.reason = INVALID, reason
    return row


# The public auditor's statuses that are audit classes as they are; any
# other is INVALID.
_PUBLIC_CLASSES = frozenset((VALID, CONTEXT_MISMATCH, UNSIGNED, UNKNOWN_KEY))


def judge_backup_public(driver, backup, auditor):
    """The :class:`Row` of one backup judged with public keys only
    (*auditor*: a :class:`sealedmeta.audit.PublicAuditor`): its envelope's
    signature, header and context, no symmetric key."""
    row = Row(backup.id, backup.project_id, backup.volume_id, backup.status, None)
    metadata = _read(driver, backup, row)
    if metadata is None:
        return row
    value = metadata.get("volume_meta")
    if not vm.is_sealed(value):
        if driver.is_legacy_service(backup.service):
            row.klass = LEGACY
        else:
            row.klass, row.reason = INVALID, (
                "made by %s, which seals its metadata, but its volume_meta is"
                " not sealed" % backup.service)
        return row
    try:
        raw = envelope.dearmor(value, auditor.max_envelope_size)
    except exceptions.InvalidEnvelope as exc:
        row.klass, row.reason = INVALID, "%s: %s" % (type(exc).__name__, exc)
        return row
    finding = auditor.check_bytes(backup.id, raw, carriers.Carried(
        cinder_carrier.CinderMetadataCarrier(auditor.max_envelope_size), raw, b"",
        expected_context=vm.context_for(backup.id, backup.volume_id)))
    row.klass = finding.status if finding.status in _PUBLIC_CLASSES else INVALID
    if row.klass in (VALID, CONTEXT_MISMATCH):
        row.key_version = finding.version
    if row.klass != VALID:
        row.reason = "%s: %s" % (finding.status, finding.reason)
    return row


class CinderSource:
    """Every backup of the Cinder database as a
    :class:`~sealedmeta.carriers.Item` of its metadata's envelope, read
    through the configured driver as the audit reads it: a source of
    :mod:`sealedmeta.audit` for ``key destroy --scan-cinder``. A metadata
    object that cannot be read is an error (it may hold an envelope under
    the version); a missing one is skipped, an unsealed one is unsealed."""

    def __init__(self, max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                 drivers=None):
        self.max_envelope_size = max_envelope_size
        self.drivers = drivers or sm_drivers.project_drivers()
        self.carrier = cinder_carrier.CinderMetadataCarrier(max_envelope_size)

    def __str__(self):
        return "the backups of the Cinder database"

    def items(self):
        ctxt = cinder_context.get_admin_context()
        drivers = {}
        for backup in iter_backups(ctxt):
            path = "cinder backup %s" % backup.id
            try:
                if backup.project_id not in drivers:
                    drivers[backup.project_id] = self.drivers(backup.project_id)
                driver = drivers[backup.project_id]
            except Exception as exc:  # the service user's login, a driver's own
                yield carriers.Item(path, error="cannot act in project %s: %s"
                                    % (backup.project_id, exc))
                continue
            yield self._item(driver, backup, path)

    def _item(self, driver, backup, path):
        row = Row(backup.id, backup.project_id, backup.volume_id, backup.status, None)
        metadata = _read(driver, backup, row)
        if metadata is None:
            if row.klass == MISSING:
                return carriers.Item(path, skipped=row.reason)
            if row.klass == UNREADABLE:
                return carriers.Item(path, error=row.reason)
            return carriers.Item(path, malformed=row.reason)
        value = metadata.get("volume_meta")
        if not vm.is_sealed(value):
            return carriers.Item(path, malformed="volume_meta is not sealed",
                                 unsealed=True)
        try:
            raw = envelope.dearmor(value, self.max_envelope_size)
        except exceptions.InvalidEnvelope as exc:
            return carriers.Item(path, malformed=str(exc))
        return carriers.Item(path, carried=carriers.Carried(
            self.carrier, raw, b"",
            expected_context=vm.context_for(backup.id, backup.volume_id)))


def _chain_ok():
    """The classes of a parent that let a restore of its incremental go
    on: a legacy parent only where ``legacy_backups`` does not refuse it
    (a restore judges the whole chain first)."""
    if mixin.CONF.sealedmeta.legacy_backups == options.REJECT:
        return (VALID,)
    return (VALID, LEGACY)


CHAIN_CACHE = 1024   # parents' rows kept while an audit runs (most recent)


class ChainJudge:
    """Judges a backup's parents, nearest first, with the backup's own judge
    (``judge(driver, backup) -> Row``), as a restore of it needs them all;
    parents' rows are kept for the incrementals that share them.

    The database is read only by :meth:`lineage`, in the thread that pages
    it: a connection (SQLite's above all) is not shared between threads.
    :meth:`apply`, in the workers, only reads the store."""

    def __init__(self, ctxt, judge):
        self.ctxt = ctxt.elevated(read_deleted="yes")
        self.judge = judge
        self._parents = collections.OrderedDict()  # id -> Backup or None
        self._rows = collections.OrderedDict()     # id -> Row
        self._lock = threading.Lock()

    @staticmethod
    def _keep(cache, key, value):
        cache[key] = value
        while len(cache) > CHAIN_CACHE:
            cache.popitem(last=False)

    def lineage(self, backup):
        """*backup*'s parents, nearest first: Backup objects, None for one
        not in the database (the last), or the id where the chain loops
        back (the last)."""
        found, parent_id, seen = [], backup.parent_id, {backup.id}
        while parent_id:
            if parent_id in seen:   # a loop in the database: refused too
                found.append(parent_id)
                break
            seen.add(parent_id)
            if parent_id in self._parents:
                parent = self._parents[parent_id]
                self._parents.move_to_end(parent_id)
            else:
                try:
                    parent = objects.Backup.get_by_id(self.ctxt, parent_id)
                except exception.BackupNotFound:
                    parent = None
                self._keep(self._parents, parent_id, parent)
            if parent is None:
                found.append(Row(parent_id, None, None, None, MISSING,
                                 reason="no such backup in the database"))
                break
            found.append(parent)
            parent_id = parent.parent_id
        return found

    def _row(self, driver, parent):
        with self._lock:
            row = self._rows.get(parent.id)
            if row is not None:
                self._rows.move_to_end(parent.id)
                return row
        row = self.judge(driver, parent)
        with self._lock:
            self._keep(self._rows, parent.id, row)
        return row

    def apply(self, driver, row, lineage):
        """*row* (the backup's own) with the class of its first parent in
        *lineage* a restore of the backup would refuse -- neither
        valid nor, unless ``legacy_backups = reject``, legacy -- and
        a reason naming it."""
        ok = _chain_ok()
        if row.klass not in ok:
            return row
        for parent in lineage:
            if isinstance(parent, str):
                row.klass = INVALID
                row.reason = "parent %s: a loop in the chain" % parent
                return row
            judged = parent if isinstance(parent, Row) else self._row(driver, parent)
            if judged.klass not in ok:
                row.klass = judged.klass
                row.reason = "parent %s: %s%s" % (
                    judged.backup_id, judged.klass,
                    " (%s)" % judged.reason if judged.reason else "")
                return row
        return row


def _since_ok(backup, since):
    return since is None or (backup.created_at is not None
                             and backup.created_at.replace(tzinfo=None) >= since)


def iter_backups(ctxt, project=None, status=None, since=None, shard=None):
    """The selected backups, ordered by id, a page at a time."""
    filters = {}
    if project:
        filters["project_id"] = project
    if status:
        filters["status"] = status
    marker = None
    while True:
        page = objects.BackupList.get_all(
            ctxt, filters=dict(filters), marker=marker, limit=PAGE,
            sort_keys=["id"], sort_dirs=["asc"])
        if not page:
            return
        for backup in page:
            if in_shard(backup.id, shard) and _since_ok(backup, since):
                yield backup
        marker = page[-1].id
        if len(page) < PAGE:
            return
        # Cinder's objects hold reference cycles (object <-> context): free
        # each page's now, or the heap grows for a long while between the
        # collector's full passes, with the size of the database.
        del page
        gc.collect()


class State:
    """The rows already finished, kept in *path* as JSON lines.

    Rows are recorded in the order the audit judges backups (by id), so a
    rerun reads the file alongside the database, a line at a time
    (:meth:`recorded`): memory does not grow with what the file holds.
    """

    MAX_LINE = 64 * 1024  # far over a row; a longer line is not one

    def __init__(self, path, selection=None):
        """*selection*: what the audit was asked for (project, status, since,
        shard); a file made for another selection is refused, so that a
        rerun never mixes two audits' rows."""
        self.path = path
        self._file = self._reader = self._next = None
        if path is None:
            return
        header = json.dumps({"selection": selection or {}}, sort_keys=True)
        try:
            self._reader = open(path, "rb")
            # Only what is there now: rows this run appends are not read.
            self._left = os.fstat(self._reader.fileno()).st_size
        except FileNotFoundError:
            self._left = 0
        except OSError as exc:
            raise exceptions.SetupError(
                "cannot read --state %s: %s" % (path, exc.strerror)) from None
        if self._left:
            first = self._reader.readline(min(self._left, self.MAX_LINE))
            self._left -= len(first)
            if first.rstrip(b"\n") != header.encode():
                self._reader.close()
                raise exceptions.SetupError(
                    "--state %s was written by an audit of another selection"
                    " (or is not a state file); give the same --project,"
                    " --status, --since and --shard as that audit, or another"
                    " file" % path)
        try:
            self._file = open(path, "a", encoding="utf-8")
        except OSError as exc:
            raise exceptions.SetupError(
                "cannot write --state %s: %s" % (path, exc.strerror)) from None
        if self._left:
            # A killed write leaves a partial last line: start on a new one.
            self._file.write("\n")
        else:
            self._file.write(header + "\n")
            self._file.flush()
        self._advance()

    def _advance(self):
        """The next whole, valid row of the file, or None at its end."""
        self._next = None
        while self._left > 0:
            line = self._reader.readline(min(self._left, self.MAX_LINE))
            self._left -= len(line)
            if not line.endswith(b"\n") and self._left > 0 and len(line) == self.MAX_LINE:
                # Too long to be a row: skip the rest of it.
                while self._left > 0 and not line.endswith(b"\n"):
                    line = self._reader.readline(min(self._left, self.MAX_LINE))
                    self._left -= len(line)
                continue
            try:
                self._next = Row.from_dict(json.loads(line))
                return
            except (ValueError, KeyError, TypeError):
                continue  # the last line of a killed write, or a blank one

    def recorded(self, backup_id):
        """The recorded row of *backup_id*, asked for in increasing id order."""
        while self._next is not None and self._next.backup_id < backup_id:
            self._advance()
        if self._next is not None and self._next.backup_id == backup_id:
            return self._next
        return None

    def record(self, row):
        if self._file is None:
            return
        self._file.write(json.dumps(row.as_dict(), sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        for handle in (self._file, self._reader):
            if handle is not None:
                handle.close()


class Summary:
    """Counts per class, per project and per key version."""

    def __init__(self):
        self.classes = dict.fromkeys(CLASSES, 0)
        self.projects = {}
        self.key_versions = {}

    def add(self, row):
        self.classes[row.klass] += 1
        project = self.projects.setdefault(row.project_id, dict.fromkeys(CLASSES, 0))
        project[row.klass] += 1
        if row.klass == VALID:
            key = str(row.key_version)
            self.key_versions[key] = self.key_versions.get(key, 0) + 1

    @property
    def total(self):
        return sum(self.classes.values())

    @property
    def all_valid(self):
        return self.classes[VALID] == self.total

    def as_dict(self):
        return {"classes": self.classes, "projects": self.projects,
                "key_versions": self.key_versions}


def audit(project=None, status=None, since=None, shard=None, workers=4,
          state=None, summary=None, progress=None, drivers=None, public=None,
          chain=False):
    """Yield one :class:`Row` per selected backup; *summary* counts them.

    Backups finished in *state* are not read again: their recorded rows
    are yielded as they were. With *public* (a
    :class:`sealedmeta.audit.PublicAuditor`) envelopes are judged with
    public keys alone (:func:`judge_backup_public`). With *chain* an
    incremental backup takes the class of its first parent that a restore
    would refuse (:class:`ChainJudge`).
    """
    drivers = drivers or sm_drivers.project_drivers()
    ctxt = cinder_context.get_admin_context()
    judge = (judge_backup if public is None
             else lambda driver, backup: judge_backup_public(driver, backup, public))
    chains = ChainJudge(ctxt, judge) if chain else None
    state = state or State(None)
    summary = summary if summary is not None else Summary()
    local = threading.local()

    def driver_for(project_id):
        # One driver per project and worker thread: a driver holds one
        # connection to its store (swiftclient's, an S3 client), and those
        # are not safe to share between threads. Drivers share the sealer.
        cache = getattr(local, "drivers", None)
        if cache is None:
            cache = local.drivers = {}
        if project_id not in cache:
            cache[project_id] = drivers(project_id)
        return cache[project_id]

    def one(backup, lineage):
        try:
            driver = driver_for(backup.project_id)
        except Exception as exc:  # the service user's login, a driver's own
            return Row(backup.id, backup.project_id, backup.volume_id, backup.status,
                       UNREADABLE, None, "cannot act in project %s: %s"
                       % (backup.project_id, exc))
        row = judge(driver, backup)
        if chains is not None:
            row = chains.apply(driver, row, lineage)
        return row

    done = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        window = []
        backups = iter_backups(ctxt, project, status, since, shard)

        def drain(keep):
            nonlocal done
            while len(window) > keep:
                row = window.pop(0).result()
                state.record(row)
                summary.add(row)
                done += 1
                if progress is not None:
                    progress(done)
                yield row

        for backup in backups:
            recorded = state.recorded(backup.id)
            if recorded is not None:
                yield from drain(0)
                summary.add(recorded)
                done += 1
                yield recorded
                continue
            lineage = chains.lineage(backup) if chains is not None else ()
            window.append(pool.submit(one, backup, lineage))
            # A bounded window: memory stays flat whatever the database holds.
            yield from drain(workers * 4)
        yield from drain(0)
