"""Audit: find the envelopes under PATHs, judge each, count per key version.

Never writes. :class:`Auditor` judges with the key store (the verdict of
:func:`sealedmeta.verdict.judge` on each header, then the MAC and the
payload); :class:`PublicAuditor` with the public keys of signing keyrings
alone. The statuses, the JSON report (formats 1 and 2) and the exit
statuses of ``sealedmeta verify`` are specified in docs/source/audit.rst.
"""

import dataclasses
import time

from sealedmeta import carriers as sm_carriers
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import sealer as sm_sealer
from sealedmeta import verdict as sm_verdict
from sealedmeta.verdict import CONTEXT_MISMATCH
from sealedmeta.verdict import DESTROYED_KEY
from sealedmeta.verdict import INVALID
from sealedmeta.verdict import MALFORMED
from sealedmeta.verdict import RETIRED_KEY
from sealedmeta.verdict import UNKNOWN_KEY
from sealedmeta.verdict import UNREADABLE
from sealedmeta.verdict import UNSEALED
from sealedmeta.verdict import UNSIGNED
from sealedmeta.verdict import VALID

REPORT_FORMAT = 1
STATUSES = (VALID, INVALID, MALFORMED, UNKNOWN_KEY, RETIRED_KEY,
            DESTROYED_KEY, CONTEXT_MISMATCH, UNREADABLE, UNSEALED)

PUBLIC_REPORT_FORMAT = 2
PUBLIC_STATUSES = STATUSES + (UNSIGNED,)

UNKNOWN_STATE = "unknown"


def check_expect(expect):
    """Validate ``--expect`` pairs (a str -> str mapping)."""
    try:
        return envelope.check_context(expect or {})
    except exceptions.InvalidMetadata as exc:
        raise exceptions.InvalidMetadata("bad --expect: %s" % exc) from None


class KeyringCache:
    """Keyrings as the store has them, read once per run (None = absent).

    A key id the snapshot does not know triggers one re-read per keyring per
    *refresh_interval* seconds. Errors other than NoSuchKeyring propagate:
    an unreachable store stops the run.
    """

    def __init__(self, store, refresh_interval=1.0, clock=time.monotonic):
        self.store = store
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._rings = {}
        self._read_at = {}

    def _read(self, name):
        try:
            ring = self.store.get_keyring(name)
        except exceptions.NoSuchKeyring:
            ring = None
        self._rings[name] = ring
        self._read_at[name] = self._clock()
        return ring

    def get(self, name):
        if name in self._rings:
            return self._rings[name]
        return self._read(name)

    def refresh(self, name):
        """Re-read *name* unless read less than refresh_interval ago."""
        if (name in self._read_at
                and self._clock() - self._read_at[name] < self.refresh_interval):
            return self._rings[name]
        return self._read(name)

    def for_header(self, header):
        ring = self.get(header.keyring)
        if ring is None or ring.by_key_id(header.key_id) is None:
            ring = self.refresh(header.keyring)
        return ring

    def seen(self):
        return dict(self._rings)


@dataclasses.dataclass
class Finding:
    path: str
    status: str
    reason: str = None
    keyring: str = None
    version: int = None
    key_id: str = None

    def as_dict(self):
        return {"path": self.path, "status": self.status, "reason": self.reason,
                "keyring": self.keyring, "version": self.version,
                "key_id": self.key_id}


def unjudged(item, max_envelope_size):
    """The ``unreadable`` :class:`Finding` of an item that could not be read
    or judged; when it carries an envelope, with the keyring, version and
    key id its header names, so that it counts under that version (and
    holds ``key destroy`` like any other)."""
    finding = Finding(item.path, UNREADABLE, item.error)
    if item.carried is not None:
        try:
            header = envelope.parse(item.carried.envelope, max_envelope_size).header
        except exceptions.InvalidEnvelope:
            return finding
        finding.keyring, finding.version = header.keyring, header.key_version
        finding.key_id = header.key_id.hex()
    return finding


def unexamined(item, max_envelope_size):
    """The :class:`Finding` of an item whose envelope is not there to judge
    (unreadable, unsealed, or a carrier that holds none); None when it is."""
    if item.error is not None:
        return unjudged(item, max_envelope_size)
    if item.unsealed:
        return Finding(item.path, UNSEALED, item.malformed)
    if item.malformed is not None:
        return Finding(item.path, MALFORMED, item.malformed)
    return None


def _counts(statuses=STATUSES):
    return {status: 0 for status in statuses}


class Report:
    """The result of an audit; :meth:`as_dict` is the JSON report."""

    statuses = STATUSES
    report_format = REPORT_FORMAT
    mode = None

    def __init__(self, findings, skipped, rings):
        self.findings = sorted(findings, key=lambda f: f.path)
        self.skipped = sorted(skipped, key=lambda s: s[0])
        self.rings = rings  # keyring name -> KeyRing or None

    @property
    def counts(self):
        counts = _counts(self.statuses)
        for finding in self.findings:
            counts[finding.status] += 1
        return counts

    @property
    def all_valid(self):
        return bool(self.findings) and all(
            f.status == VALID for f in self.findings)

    def under(self, keyring, key_id):
        """Findings whose header names key *key_id* (bytes) of *keyring*."""
        key_id = key_id.hex()
        return [f for f in self.findings
                if f.keyring == keyring and f.key_id == key_id]

    def versions(self):
        rows = {}
        for name, ring in self.rings.items():
            for version in ring.versions if ring is not None else ():
                rows[(name, version.number, version.key_id.hex())] = {
                    "keyring": name, "version": version.number,
                    "key_id": version.key_id.hex(),
                    "state": version.state.value, "envelopes": 0,
                    "counts": _counts(self.statuses)}
        for finding in self.findings:
            if finding.key_id is None:
                continue
            key = (finding.keyring, finding.version, finding.key_id)
            row = rows.get(key)
            if row is None:
                row = rows[key] = {
                    "keyring": finding.keyring, "version": finding.version,
                    "key_id": finding.key_id, "state": UNKNOWN_STATE,
                    "envelopes": 0, "counts": _counts(self.statuses)}
            row["envelopes"] += 1
            row["counts"][finding.status] += 1
        return [rows[key] for key in sorted(rows)]

    def as_dict(self):
        counts = self.counts
        report = {
            "format": self.report_format,
            "summary": {
                "all_valid": self.all_valid,
                "counts": counts,
                "envelopes": len(self.findings),
                "files": len(self.findings) + len(self.skipped),
                "skipped": len(self.skipped),
            },
            "versions": self.versions(),
            "envelopes": [f.as_dict() for f in self.findings],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }
        if self.mode is not None:
            report["mode"] = self.mode
        return report


class PublicReport(Report):
    """The report of a public-mode audit: JSON report format 2."""

    statuses = PUBLIC_STATUSES
    report_format = PUBLIC_REPORT_FORMAT
    mode = "public"


def _scan(paths, carriers, check, progress):
    """(findings, skipped) of walking *paths*: each file unreadable, skipped
    by every carrier, or an envelope judged by *check*."""
    sm_carriers.check_paths(paths)
    items = list(sm_carriers.iter_located(paths))
    findings, skipped = [], []
    for done, (path, st, problem, where) in enumerate(items, 1):
        if problem is not None:
            findings.append(Finding(path, UNREADABLE, problem))
        else:
            item = sm_carriers.examine(path, st, carriers, where)
            if item.skipped is not None:
                skipped.append((path, item.skipped))
            else:
                findings.append(check(item))
        if progress is not None:
            progress(done, len(items))
    return findings, skipped


def _gather(paths, sources, carriers, check, progress):
    """(findings, skipped) of *paths* (when given, or when there is no
    source) and of the items of every source: an object whose ``items()``
    gives :class:`~sealedmeta.carriers.Item` objects, e.g. a
    :class:`sealedmeta.cinder.ceph_pool.CephPool`."""
    findings, skipped = ((_scan(paths, carriers, check, progress)
                          if paths or not sources else ([], [])))
    for source in sources:
        # A source may be a generator (the backups of a Cinder database):
        # its items are checked as they come, the progress shown when the
        # number is known.
        items = source.items()
        total = len(items) if hasattr(items, "__len__") else None
        for done, item in enumerate(items, 1):
            if item.skipped is not None:
                skipped.append((item.path, item.skipped))
            else:
                findings.append(check(item))
            if progress is not None and total is not None:
                progress(done, total)
    return findings, skipped


class Auditor:
    """Verifies the envelopes under PATHs with the keys of *store* (any
    :class:`~sealedmeta.keystores.base.KeyReader`); never writes."""

    def __init__(self, store, max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                 expect=None, carriers=None, progress=None):
        self.store = store
        self.max_envelope_size = max_envelope_size
        self.expect = check_expect(expect)
        self.carriers = (carriers if carriers is not None
                         else sm_carriers.load_carriers(max_envelope_size))
        self.progress = progress
        self.rings = KeyringCache(store)
        self._sealers = {}

    def _sealer(self, name):
        sealer = self._sealers.get(name)
        if sealer is None:
            sealer = self._sealers[name] = sm_sealer.Sealer(
                self.store, keyring=name, cache_ttl=3600, refresh_interval=1.0,
                max_envelope_size=self.max_envelope_size)
        return sealer

    def run(self, paths, sources=()):
        """The :class:`Report` of *paths* and *sources* (see
        :func:`_gather`). Raises PathError before reading anything when a
        PATH does not exist, and KeyStoreError when the store cannot be
        read."""
        findings, skipped = _gather(paths, sources, self.carriers, self.check,
                                    self.progress)
        return Report(findings, skipped, self.rings.seen())

    def check(self, item):
        """The :class:`Finding` of one examined file."""
        early = unexamined(item, self.max_envelope_size)
        if early is not None:
            return early
        raw = item.carried.envelope
        try:
            parsed = envelope.parse(raw, self.max_envelope_size)
        except exceptions.InvalidEnvelope as exc:
            return Finding(item.path, MALFORMED, str(exc))
        header = parsed.header
        finding = Finding(item.path, VALID, None, header.keyring,
                          header.key_version, header.key_id.hex())
        verdict = self._judge(parsed, raw)
        if verdict.status == VALID:
            verdict = self._expectation(header, item.carried) or verdict
        finding.status, finding.reason = verdict[:2]
        return finding

    def _judge(self, parsed, raw):
        """The verdict on the envelope *parsed* (of bytes *raw*) under its
        keyring as the store has it; when VALID, its MAC and payload are
        checked as well."""
        header = parsed.header
        verdict = sm_verdict.judge(self.rings.for_header(header), header,
                                   parsed.signature, raw)
        if verdict.status != VALID:
            return verdict
        try:
            envelope.decode_payload(self._sealer(header.keyring).unseal(
                parsed, verdict.version))
        except exceptions.MalformedEnvelope as exc:
            return sm_verdict.Verdict(MALFORMED, str(exc))
        except exceptions.InvalidEnvelope as exc:
            return sm_verdict.Verdict(INVALID, str(exc))
        except exceptions.NoSuchKeyring as exc:
            return sm_verdict.Verdict(UNKNOWN_KEY, str(exc))
        except exceptions.KeyUnavailable as exc:
            # The store changed since the snapshot: judge again.
            verdict = sm_verdict.judge(self.rings.refresh(header.keyring),
                                       header, parsed.signature, raw)
            if verdict.status == VALID:
                return sm_verdict.Verdict(UNKNOWN_KEY, str(exc))
        return verdict

    def _expectation(self, header, carried=None):
        """CONTEXT_MISMATCH when the (authenticated) context lacks or
        differs in an ``--expect`` pair, or is not the context the
        envelope's file expects (:attr:`Carried.expected_context
        <sealedmeta.carriers.Carried.expected_context>`); else None."""
        context = header.context
        reasons = []
        differing = sorted(k for k, v in self.expect.items()
                           if context.get(k) != v)
        if differing:
            reasons.append("context differs from --expect in: %s"
                           % ", ".join(differing))
        if carried is not None:
            mismatch = carried.context_mismatch(context)
            if mismatch is not None:
                reasons.append(mismatch)
        if reasons:
            return CONTEXT_MISMATCH, "; ".join(reasons)
        return None


class PublicAuditor:
    """Verifies the signatures of the envelopes under PATHs against public
    keys (``{keyring name: KeyRing}`` whose versions carry public keys, as
    :func:`sealedmeta.public.load` returns them). No key store, no key
    material, never writes."""

    def __init__(self, rings, max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                 expect=None, carriers=None, progress=None):
        self.rings = dict(rings)
        self.max_envelope_size = max_envelope_size
        self.expect = check_expect(expect)
        self.carriers = (carriers if carriers is not None
                         else sm_carriers.load_carriers(max_envelope_size))
        self.progress = progress
        self._named = set()    # keyrings envelopes name

    def run(self, paths, sources=()):
        """The :class:`PublicReport` of *paths* and *sources* (PathError
        when a PATH does not exist)."""
        findings, skipped = _gather(paths, sources, self.carriers, self.check,
                                    self.progress)
        return PublicReport(findings, skipped,
                            {name: self.rings.get(name) for name in self._named})

    def check(self, item):
        early = unexamined(item, self.max_envelope_size)
        if early is not None:
            return early
        return self.check_bytes(item.path, item.carried.envelope, item.carried)

    def check_bytes(self, path, raw, carried=None):
        """The :class:`Finding` of the raw envelope bytes *raw* (found in
        the file as *carried*, a :class:`~sealedmeta.carriers.Carried`)."""
        try:
            parsed = envelope.parse(raw, self.max_envelope_size)
        except exceptions.InvalidEnvelope as exc:
            return Finding(path, MALFORMED, str(exc))
        header = parsed.header
        finding = Finding(path, VALID, None, header.keyring,
                          header.key_version, header.key_id.hex())
        self._named.add(header.keyring)
        verdict = sm_verdict.judge(self.rings.get(header.keyring), header,
                                   parsed.signature, raw, public=True)
        if verdict.status == VALID:
            verdict = self._expectation(header, carried) or verdict
        finding.status, finding.reason = verdict[:2]
        return finding

    _expectation = Auditor._expectation


def public_audit(rings, paths, expect=None,
                 max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                 carriers=None, progress=None):
    """Shortcut: ``PublicAuditor(...).run(paths)``."""
    return PublicAuditor(rings, max_envelope_size, expect=expect,
                         carriers=carriers, progress=progress).run(paths)


def audit(store, paths, expect=None, max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
          carriers=None, progress=None):
    """Shortcut: ``Auditor(...).run(paths)``."""
    return Auditor(store, max_envelope_size, expect=expect, carriers=carriers,
                   progress=progress).run(paths)
