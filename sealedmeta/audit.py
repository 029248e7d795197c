"""Audit: find the envelopes under PATHs, verify each, count per key version.

Never writes. Every file under the PATHs (directories are walked, see
:func:`sealedmeta.carriers.iter_paths`) is either an envelope (found by a
carrier) with a status, or skipped (not an envelope; a symbolic link; not a
regular file; a temporary file of an interrupted write).

Statuses (``STATUSES``)
-----------------------

``valid``
    authenticated under an openable version (active or decrypt-only) of its
    keyring, its context holds every ``--expect`` pair, and it is the
    context its file expects (when the carrier knows one).
``invalid``
    failed authentication (wrong key, changed bytes, forged header).
``unsealed``
    a carrier claims the file, but it holds no envelope where one belongs:
    a Cinder ``*_metadata`` object whose ``volume_meta`` is not sealed (a
    backup made before sealing, or a forgery). Never valid.
``malformed``
    a carrier claims the file, but it is not a well-formed envelope
    (truncated, over the size limit, unknown format version or suite, bad
    armour, bad payload).
``unknown-key``
    names a keyring, or a key id in it, that the key store does not have.
``retired-key`` / ``destroyed-key``
    names a version of its keyring that is retired / destroyed.
``context-mismatch``
    authentic, but its context lacks or differs in an ``--expect`` pair, or
    is not the context the file it sits in expects (a carrier that knows it,
    e.g. a Cinder ``*_metadata`` object's own ``backup_id`` and
    ``volume_id``: an envelope copied from another backup). The reason names
    the differing keys (and, for the file's context, both values).
``unreadable``
    the file could not be read (I/O error, permission), so whether it holds
    an envelope is unknown.

The keyring state comes from the key store (``store.get_keyring``), read
once per keyring per run and again when an envelope names a key id the
snapshot does not know (a rotation during the audit).

JSON report, format 1 (``sealedmeta verify -f json``)
-----------------------------------------------------

One JSON object; every object's keys are sorted; the key sets below are
fixed for format 1 (new keys only come with a new ``format`` number), except
that ``counts`` has one key per status of ``STATUSES``: the status
``unsealed`` was added to it (a count of 0 where there is none)::

    {
      "envelopes": [                 # one per envelope (and unreadable
        {                            #   file), sorted by path
          "key_id": "32 hex" | null, # from the header (null: no header)
          "keyring": "name" | null,
          "path": "dir/file",        # as walked from the PATH given
          "reason": "one line" | null,   # null when valid
          "status": "<a status above>",
          "version": 3 | null        # key version the header names
        }, ...
      ],
      "format": 1,
      "skipped": [                   # files that are not envelopes, by path
        {"path": "dir/notes.txt", "reason": "not an envelope"}, ...
      ],
      "summary": {
        "all_valid": true,           # envelopes > 0 and every one valid
        "counts": {                  # every status, zeros included
          "context-mismatch": 0, "destroyed-key": 0, "invalid": 0,
          "malformed": 0, "retired-key": 0, "unknown-key": 0,
          "unreadable": 0, "unsealed": 0, "valid": 12
        },
        "envelopes": 12,             # len(envelopes)
        "files": 15,                 # envelopes + skipped
        "skipped": 3                 # len(skipped)
      },
      "versions": [                  # sorted by keyring, version, key_id
        {
          "counts": {...every status...},  # envelopes naming this version
          "envelopes": 12,
          "key_id": "32 hex",
          "keyring": "cinder-backup",
          "state": "active" | "decrypt-only" | "retired" | "destroyed"
                   | "unknown",
          "version": 3
        }, ...
      ]
    }

``versions`` lists every version of every keyring an envelope names, those
with no envelope included (candidates for ``key destroy``), plus one entry
per (keyring, version, key id) that envelopes name but the store does not
know (state ``unknown``). Envelopes without a readable header (malformed
before the header, unreadable) are counted in ``summary`` only.

Exit status of ``sealedmeta verify``: 0 when ``all_valid``; 1 when any
envelope is not valid or none was found; 2 when the audit cannot run (key
store unreachable, bad arguments, a PATH that does not exist) -- then no
report is printed.

Public mode (``sealedmeta verify --public-keys FILE``)
------------------------------------------------------

:class:`PublicAuditor` checks Ed25519 signatures (suite 2) against a public
keys file (:mod:`sealedmeta.public`) and never touches a key store: it holds
no symmetric key, so it cannot decrypt, check the MAC or check the payload.
What it establishes is that the signing key of the version the header names
signed every byte before the signature -- the backup service sealed this
envelope, with this header (keyring, version, key id, context, time).
Per envelope: the header is parsed (``malformed`` as above; an unknown
suite is ``malformed``); a suite-1 envelope is ``unsigned``, or
``invalid`` when the file gives its version a public key (such a version
signs every envelope, so a suite-1 one was made with the symmetric key
alone, and key holders refuse it too); the header's
(keyring, key id) is looked up in the file (``unknown-key`` if absent, and
``invalid`` when the file has that key id under another version number);
the signature is verified over everything before it (``invalid`` when it
does not verify); then the version's state as the file records it
(``retired-key`` / ``destroyed-key``) and the context, against the
``--expect`` pairs and the context the file expects, as above
(``context-mismatch``).

``unsigned``
    (public mode only) a well-formed suite-1 envelope of a version without a
    key pair: it carries no signature, so nothing about its origin can be
    checked without the key.

JSON report, format 2 (public mode only)
----------------------------------------

Format 1's key sets are fixed, so the public mode's report is format 2:
exactly format 1's structure and keys, with these differences:

* ``"format": 2`` and one more top-level key, ``"mode": "public"``;
* the status ``unsigned`` exists: every ``counts`` object (in ``summary``
  and in each ``versions`` row) has the ten keys of ``PUBLIC_STATUSES``;
* ``versions`` rows come from the public keys file (``state`` as the file
  records it; ``unknown`` for what envelopes name and the file lacks),
  listing every version of every keyring an envelope names.

The default mode keeps report format 1, unchanged. Exit statuses are the
same in both modes (an ``unsigned`` envelope is not valid: exit 1; a public
keys file that cannot be read or parsed: exit 2).
"""

import dataclasses
import time

from cryptography.hazmat.primitives.asymmetric import ed25519

from sealedmeta import carriers as sm_carriers
from sealedmeta import crypto
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import sealer as sm_sealer
from sealedmeta import signing

REPORT_FORMAT = 1

VALID = "valid"
INVALID = "invalid"
MALFORMED = "malformed"
UNKNOWN_KEY = "unknown-key"
RETIRED_KEY = "retired-key"
DESTROYED_KEY = "destroyed-key"
CONTEXT_MISMATCH = "context-mismatch"
UNREADABLE = "unreadable"
UNSEALED = "unsealed"

STATUSES = (VALID, INVALID, MALFORMED, UNKNOWN_KEY, RETIRED_KEY,
            DESTROYED_KEY, CONTEXT_MISMATCH, UNREADABLE, UNSEALED)

UNSIGNED = "unsigned"
PUBLIC_REPORT_FORMAT = 2
PUBLIC_STATUSES = STATUSES + (UNSIGNED,)

UNKNOWN_STATE = "unknown"


def classify_header(ring, header):
    """``(status, reason)`` an envelope gets before authentication, or None
    when its version is openable. *ring* is the keyring the header names as
    the store has it (None: no such keyring)."""
    if ring is None:
        return UNKNOWN_KEY, "no keyring %r in the key store" % header.keyring
    version = ring.by_key_id(header.key_id)
    if version is None:
        return UNKNOWN_KEY, ("keyring %r has no version with key id %s"
                             " (the envelope names version %d)"
                             % (header.keyring, header.key_id.hex(),
                                header.key_version))
    if version.number != header.key_version:
        return INVALID, crypto.AUTH_FAILED
    if version.state is kr.KeyState.RETIRED:
        return RETIRED_KEY, "version %d of keyring %r is retired" % (
            version.number, header.keyring)
    if version.state is kr.KeyState.DESTROYED:
        return DESTROYED_KEY, "version %d of keyring %r is destroyed" % (
            version.number, header.keyring)
    return None


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
    """Verifies the envelopes under PATHs; never writes."""

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
        if item.error is not None:
            return unjudged(item, self.max_envelope_size)
        if item.unsealed:
            return Finding(item.path, UNSEALED, item.malformed)
        if item.malformed is not None:
            return Finding(item.path, MALFORMED, item.malformed)
        raw = item.carried.envelope
        try:
            header = envelope.parse(raw, self.max_envelope_size).header
        except exceptions.InvalidEnvelope as exc:
            return Finding(item.path, MALFORMED, str(exc))
        finding = Finding(item.path, VALID, None, header.keyring,
                          header.key_version, header.key_id.hex())
        if header.suite not in crypto.SUITES:
            finding.status, finding.reason = MALFORMED, (
                "unsupported algorithm suite %d" % header.suite)
            return finding
        verdict = classify_header(self.rings.for_header(header), header)
        if verdict is None:
            verdict = self._verify(raw, header)
        if verdict is None:
            verdict = self._expectation(header, item.carried)
        if verdict is not None:
            finding.status, finding.reason = verdict
        return finding

    def _verify(self, raw, header):
        try:
            self._sealer(header.keyring).verify(raw)
        except exceptions.MalformedEnvelope as exc:
            return MALFORMED, str(exc)
        except exceptions.UnsupportedFormat as exc:
            return MALFORMED, str(exc)
        except exceptions.InvalidEnvelope as exc:
            return INVALID, str(exc)
        except exceptions.KeyUnavailable as exc:
            # The store changed since the snapshot: classify again.
            ring = self.rings.refresh(header.keyring)
            return classify_header(ring, header) or (UNKNOWN_KEY, str(exc))
        except exceptions.NoSuchKeyring as exc:
            return UNKNOWN_KEY, str(exc)
        return None

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
        self._verifiers = {}   # public key bytes -> Ed25519PublicKey
        self._named = set()    # keyrings envelopes name

    def run(self, paths, sources=()):
        """The :class:`PublicReport` of *paths* and *sources* (PathError
        when a PATH does not exist)."""
        findings, skipped = _gather(paths, sources, self.carriers, self.check,
                                    self.progress)
        return PublicReport(findings, skipped,
                            {name: self.rings.get(name) for name in self._named})

    def check(self, item):
        if item.error is not None:
            return unjudged(item, self.max_envelope_size)
        if item.unsealed:
            return Finding(item.path, UNSEALED, item.malformed)
        if item.malformed is not None:
            return Finding(item.path, MALFORMED, item.malformed)
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
        verdict = self._verdict(raw, header, parsed.signature, carried)
        if verdict is not None:
            finding.status, finding.reason = verdict
        return finding

    def _verdict(self, raw, header, signature, carried):
        if header.suite == crypto.SUITE_ID:
            # Under a version with a key pair, a suite 1 envelope is a
            # forgery with the symmetric key: key holders refuse it too.
            ring = self.rings.get(header.keyring)
            version = None if ring is None else ring.by_key_id(header.key_id)
            if version is not None and version.public_key is not None:
                return INVALID, "envelope failed signature verification"
            return UNSIGNED, ("suite 1 envelope: not signed, its origin cannot"
                              " be checked with public keys")
        if header.suite != crypto.SIGNED_SUITE_ID:
            return MALFORMED, "unsupported algorithm suite %d" % header.suite
        ring = self.rings.get(header.keyring)
        if ring is None:
            return UNKNOWN_KEY, ("no keyring %r in the public keys file"
                                 % header.keyring)
        version = ring.by_key_id(header.key_id)
        if version is None:
            return UNKNOWN_KEY, ("keyring %r has no version with key id %s in"
                                 " the public keys file (the envelope names"
                                 " version %d)" % (header.keyring,
                                                   header.key_id.hex(),
                                                   header.key_version))
        if version.number != header.key_version:
            return INVALID, "envelope failed signature verification"
        verifier = self._verifiers.get(version.public_key)
        if verifier is None:
            verifier = self._verifiers[version.public_key] = (
                ed25519.Ed25519PublicKey.from_public_bytes(version.public_key))
        if not signing.verify(verifier, signature,
                              raw[:-envelope.SIGNATURE_SIZE]):
            return INVALID, "envelope failed signature verification"
        verdict = classify_header(ring, header)
        if verdict is not None:
            return verdict
        return self._expectation(header, carried)

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
