"""Rewrap: re-seal the stored envelopes under PATHs with the active version.

For every envelope found under the PATHs (see :mod:`sealedmeta.carriers`)
that is not sealed under its keyring's active version,
:meth:`Sealer.rewrap <sealedmeta.sealer.Sealer.rewrap>` re-seals it, same
keyring and context, inside the library (the plaintext never leaves it), and
the carrier puts the new envelope back into the file, which is replaced
atomically (:func:`sealedmeta.atomic.write_file`: temporary file, fsync,
rename, fsync of the directory), keeping the file's mode and owner.

Crash safety and resumption: each file is replaced by one rename, so a
``kill -9`` at any instant leaves every file either the old, valid envelope
or the new, valid one (at worst a stray ``.tmp-*`` file, which scans skip).
The old version stays decrypt-only until an operator retires it, so both
open. A rerun skips what is already current and finishes the job: the files
themselves are the journal, and running it twice changes nothing the second
time. A file changed by someone else while it was being rewrapped is left
alone and reported as failed (run again).
"""

import dataclasses
import logging
import os
import stat
import time

from sealedmeta import atomic
from sealedmeta import audit
from sealedmeta import carriers as sm_carriers
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import sealer as sm_sealer

LOG = logging.getLogger(__name__)

REWRAPPED = "rewrapped"
CURRENT = "current"
SKIPPED = "skipped"
FAILED = "failed"
OUTCOMES = (REWRAPPED, CURRENT, SKIPPED, FAILED)


@dataclasses.dataclass
class Outcome:
    path: str
    status: str
    reason: str = None
    keyring: str = None
    from_version: int = None
    to_version: int = None


class Summary:
    def __init__(self, outcomes, active):
        self.outcomes = sorted(outcomes, key=lambda o: o.path)
        self.active = active  # keyring name -> active version number

    def count(self, status):
        return sum(1 for o in self.outcomes if o.status == status)

    def of(self, status):
        return [o for o in self.outcomes if o.status == status]

    @property
    def ok(self):
        return self.count(FAILED) == 0

    def as_dict(self):
        return {
            "rewrapped": self.count(REWRAPPED),
            "already_current": self.count(CURRENT),
            "skipped": self.count(SKIPPED),
            "failed": self.count(FAILED),
            "active_versions": dict(sorted(self.active.items())),
            "failures": [{"path": o.path, "reason": o.reason}
                         for o in self.of(FAILED)],
            "skipped_files": [{"path": o.path, "reason": o.reason}
                              for o in self.of(SKIPPED)],
        }


class Rewrapper:
    """Rewraps the envelopes under PATHs (of one keyring, or of all)."""

    def __init__(self, store, keyring=None,
                 max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                 carriers=None, progress=None, durable=True, sealer_factory=None):
        self.store = store
        self.keyring = (envelope.check_keyring_name(keyring)
                        if keyring is not None else None)
        self.max_envelope_size = max_envelope_size
        self.carriers = (carriers if carriers is not None
                         else sm_carriers.load_carriers(max_envelope_size))
        self.progress = progress
        self.durable = durable
        self._sealer_factory = sealer_factory or self._default_sealer
        self._sealers = {}  # keyring -> Sealer, or None when absent
        self._rings = {}    # keyring -> KeyRing as last read
        self._read_at = {}  # keyring -> time.monotonic() of that read

    def _default_sealer(self, name):
        return sm_sealer.Sealer(self.store, keyring=name, cache_ttl=3600,
                                refresh_interval=1.0,
                                max_envelope_size=self.max_envelope_size)

    def _sealer(self, name):
        """The Sealer of keyring *name*, its keyring read now; None when the
        store has no such keyring."""
        if name not in self._sealers:
            sealer = self._sealer_factory(name)
            try:
                self._rings[name] = sealer.refresh()
                self._read_at[name] = time.monotonic()
            except exceptions.NoSuchKeyring:
                sealer = None
            self._sealers[name] = sealer
        return self._sealers[name]

    def run(self, paths):
        """Rewrap everything under *paths*; returns a :class:`Summary`.

        Raises PathError (a PATH does not exist) or NoSuchKeyring (the
        keyring asked for) before touching anything, and KeyStoreError when
        the store cannot be read.
        """
        sm_carriers.check_paths(paths)
        if self.keyring is not None and self._sealer(self.keyring) is None:
            raise exceptions.NoSuchKeyring(
                "no keyring %r in the key store" % self.keyring)
        items = list(sm_carriers.iter_paths(paths))
        outcomes = []
        for done, (path, st, problem) in enumerate(items, 1):
            if problem is not None:
                outcome = Outcome(path, FAILED, problem)
            else:
                outcome = self.rewrap_file(
                    sm_carriers.examine(path, st, self.carriers))
            outcomes.append(outcome)
            if outcome.status == REWRAPPED:
                LOG.debug("rewrapped %s: %s version %d -> %d", path,
                          outcome.keyring, outcome.from_version,
                          outcome.to_version)
            elif outcome.status == FAILED:
                # Reported in the summary; one line per file only with -v -v.
                LOG.debug("cannot rewrap %s: %s", path, outcome.reason)
            if self.progress is not None:
                self.progress(done, len(items))
        active = {name: ring.active.number for name, ring in self._rings.items()}
        return Summary(outcomes, active)

    def rewrap_file(self, item):
        """The :class:`Outcome` of one examined file."""
        path = item.path
        if item.skipped is not None:
            return Outcome(path, SKIPPED, item.skipped)
        if item.error is not None:
            return Outcome(path, FAILED, item.error)
        if item.malformed is not None:
            return Outcome(path, FAILED, item.malformed)
        raw = item.carried.envelope
        try:
            header = envelope.parse(raw, self.max_envelope_size).header
        except exceptions.InvalidEnvelope as exc:
            return Outcome(path, FAILED, str(exc))
        outcome = Outcome(path, FAILED, None, header.keyring, header.key_version)
        if self.keyring is not None and header.keyring != self.keyring:
            outcome.status = SKIPPED
            outcome.reason = "sealed under keyring %r, not %r" % (
                header.keyring, self.keyring)
            return outcome
        sealer = self._sealer(header.keyring)
        if sealer is None:
            outcome.reason = "no keyring %r in the key store" % header.keyring
            return outcome
        verdict = audit.classify_header(self._rings[header.keyring], header)
        if (verdict is not None and verdict[0] == audit.UNKNOWN_KEY
                and time.monotonic() - self._read_at[header.keyring] >= 1.0):
            # Sealed after a rotation made since we read the keyring?
            self._rings[header.keyring] = sealer.refresh()
            self._read_at[header.keyring] = time.monotonic()
            verdict = audit.classify_header(self._rings[header.keyring], header)
        if verdict is not None:
            outcome.reason = verdict[1]
            return outcome
        try:
            new = sealer.rewrap(raw)
        except (exceptions.InvalidEnvelope, exceptions.KeyUnavailable) as exc:
            outcome.reason = str(exc)
            return outcome
        except exceptions.NoSuchKeyring as exc:
            outcome.reason = str(exc)
            return outcome
        if new == raw:
            outcome.status = CURRENT
            outcome.to_version = header.key_version
            return outcome
        new_header = envelope.parse(new, self.max_envelope_size).header
        outcome.to_version = new_header.key_version
        try:
            content = item.carried.rewritten(new)
        except Exception as exc:  # a carrier plug-in must not stop the run
            outcome.reason = "carrier %s cannot write the envelope back: %s" % (
                item.carried.carrier.name, exc)
            return outcome
        problem = self._replace(path, item.stat, content)
        if problem is not None:
            outcome.reason = problem
            return outcome
        outcome.status = REWRAPPED
        return outcome

    def _replace(self, path, st, content):
        """Atomically replace *path* with *content*; None, or why not."""
        try:
            now = os.lstat(path)
        except OSError as exc:
            return "cannot examine before writing: %s" % exc.strerror
        if (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (
                st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns):
            return "changed while being rewrapped; left alone (run again)"
        owner = None
        if (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
            owner = (st.st_uid, st.st_gid)
        try:
            atomic.write_file(path, content, mode=stat.S_IMODE(st.st_mode),
                              durable=self.durable, owner=owner)
        except OSError as exc:
            return "cannot write: %s" % (exc.strerror or exc)
        return None


def rewrap(store, paths, keyring=None,
           max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE, progress=None):
    """Shortcut: ``Rewrapper(...).run(paths)``."""
    return Rewrapper(store, keyring=keyring, max_envelope_size=max_envelope_size,
                     progress=progress).run(paths)
