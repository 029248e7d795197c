"""Rewrap: re-seal the stored envelopes under PATHs with the active version.

For every envelope found under the PATHs (see :mod:`sealedmeta.carriers`)
that is not sealed under its keyring's active version,
:meth:`Sealer.rewrap <sealedmeta.sealer.Sealer.rewrap>` re-seals it, same
keyring and context, inside the library (the plaintext never leaves it), and
the carrier puts the new envelope back into the file, which is replaced
atomically (:func:`sealedmeta.safefs.replace`: temporary file, fsync,
rename, fsync of the directory), keeping the file's mode and owner.

A tree a user can write: every file is read and replaced through directory
handles (:mod:`sealedmeta.safefs`), never by re-resolving its path, so a
directory swapped for a symbolic link during the run cannot steer a read, a
write or a removal out of the tree. Run as root, rewrap never gives a file
it created to another user where that user could interfere: another user's
file is written by a child process that has become that user, unless its
directory is root's and writable by no one else (then root writes it and
gives it the old owner). Run as anyone else, another user's file is refused
(reported failed, ``owned by uid N``). That child is the user's to signal:
one that stops, or is still running after ``user_write_timeout`` seconds,
is killed and its file reported failed (it holds its old envelope or the
new one; run again), and the run goes on.

Throughput: a durable replacement waits for the disk twice (the file's and
the directory's fsync), far longer than the re-sealing. :meth:`Rewrapper.run`
therefore reads, checks and re-seals the files one after the other, in walk
order, and hands each replacement to a small pool of writer threads
(``io_workers``), so that several fsyncs are in flight at once and the
file system can commit them together. Every file is still replaced
atomically and made durable, each on its own, exactly as above; the pool
changes neither what is written nor the summary, and a bounded number of
replacements is ever pending.

Crash safety and resumption: each file is replaced by one rename, so a
``kill -9`` at any instant leaves every file either the old, valid envelope
or the new, valid one (at worst a few stray ``.tmp-*`` files, at most one
per writer thread, which scans skip and a later rewrap removes, below).
The old version stays decrypt-only until an operator retires it, so both
open. A rerun skips what is already current and finishes the job: the files
themselves are the journal, and running it twice changes nothing the second
time. A file changed by someone else while it was being rewrapped is left
alone and reported as failed (run again).

Temporary files of interrupted writes: a file the walk meets is removed,
and reported (:data:`REMOVED`, ``removed_temp_files``), when it is *stale*:

* a regular file (``lstat``: never a symbolic link, a directory or anything
  else) with one link;
* named exactly as :func:`sealedmeta.atomic.write_file` names its temporary
  files: :data:`sealedmeta.atomic.TEMP_PREFIX` and the 8 characters of
  :func:`tempfile.mkstemp` (``[a-z0-9_]``), nothing more;
* last modified at least ``temp_age`` seconds ago (default
  :data:`DEFAULT_TEMP_AGE`, one hour; at least :data:`MIN_TEMP_AGE`).

Such a file is what a killed rewrap, ``cinder reseal`` or key store write
left behind: the write that creates one renames it away milliseconds later,
after one fsync. The age is what tells it from the temporary file of a
write still under way in another process (a concurrent rewrap or reseal);
the hour leaves room for a slow disk and for the clock of a network file
system's server being behind this host's. Should a too short ``temp_age``
still catch a write under way, that write fails (its rename finds no file)
and its file keeps the envelope it had: a file reported failed, never a
lost one. Any other ``.tmp-*`` file (younger, of another shape, a link, a
directory) is left alone and listed as skipped, as before. Removal is one
``os.unlink`` of the name, after a fresh ``lstat``; a file gone meanwhile
(another rewrap removed it) is skipped, a file that cannot be removed is
skipped with the reason, and neither fails the run. The ``lstat`` and the
``unlink`` are relative to the handle of the file's directory. Each directory where
files were removed is fsynced once, at the end of a durable run.
"""

import collections
import concurrent.futures
import dataclasses
import logging
import os
import re
import stat
import time

from sealedmeta import atomic
from sealedmeta import carriers as sm_carriers
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import names
from sealedmeta import safefs
from sealedmeta import sealer as sm_sealer
from sealedmeta import verdict as sm_verdict

LOG = logging.getLogger(__name__)

REWRAPPED = "rewrapped"
CURRENT = "current"
SKIPPED = "skipped"
FAILED = "failed"
REMOVED = "removed"  # a stale temporary file of an interrupted write
OUTCOMES = (REWRAPPED, CURRENT, SKIPPED, FAILED, REMOVED)

# Writer threads of a durable run (each mostly waits in fsync).
DEFAULT_IO_WORKERS = 8

# Seconds since its last change after which a temporary file of an
# interrupted write is removed (see the module's documentation), and the
# least value accepted.
DEFAULT_TEMP_AGE = 3600
MIN_TEMP_AGE = 60

# The name of a temporary file of atomic.write_file: its prefix, then the 8
# characters tempfile.mkstemp draws (no suffix is given).
_TEMP_NAME = re.compile(re.escape(atomic.TEMP_PREFIX) + r"[a-z0-9_]{8}\Z")
# How the skip reason of a stale temporary file that could not be removed
# starts.
CANNOT_REMOVE = "stale temporary file of an interrupted write; cannot remove it"


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
            "removed_temp": self.count(REMOVED),
            "removed_temp_files": [{"path": o.path, "reason": o.reason}
                                   for o in self.of(REMOVED)],
        }


class Rewrapper:
    """Rewraps the envelopes under PATHs (of one keyring, or of all).

    *temp_age*: seconds after which a temporary file of an interrupted
    write is removed (at least :data:`MIN_TEMP_AGE`; None: never).
    *user_write_timeout*: seconds a write made as the file's owner (run as
    root) may take before it is killed and the file reported failed; one
    that stops is killed at once (:func:`sealedmeta.safefs.as_user`).
    """

    def __init__(self, store, keyring=None,
                 max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                 carriers=None, progress=None, durable=True, sealer_factory=None,
                 io_workers=DEFAULT_IO_WORKERS, temp_age=DEFAULT_TEMP_AGE,
                 user_write_timeout=safefs.DEFAULT_USER_WRITE_TIMEOUT):
        if temp_age is not None and not temp_age >= MIN_TEMP_AGE:
            raise ValueError("temp_age must be at least %d seconds, not %r"
                             % (MIN_TEMP_AGE, temp_age))
        self.temp_age = temp_age
        self.user_write_timeout = user_write_timeout
        self.store = store
        self.keyring = (names.check_keyring_name(keyring)
                        if keyring is not None else None)
        self.max_envelope_size = max_envelope_size
        self.carriers = (carriers if carriers is not None
                         else sm_carriers.load_carriers(max_envelope_size))
        self.progress = progress
        self.durable = durable
        # Writes go to threads only when they wait for the disk.
        self.io_workers = io_workers if durable else 0
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
        items = list(sm_carriers.iter_located(paths))
        outcomes = []
        # Directories where temporary files were removed; the Outcomes of
        # those that could not be.
        cleaned, unremovable = set(), []
        total = len(items)
        pool = None
        if self.io_workers > 1:
            pool = concurrent.futures.ThreadPoolExecutor(
                self.io_workers, thread_name_prefix="sealedmeta-rewrap")
        # Files not finished yet, in walk order: (outcome, future of its
        # replacement, or None when there is nothing to write). They are
        # finished in that order, so the progress callback and the log see
        # the files in the same order as without a pool.
        pending = collections.deque()

        def finish(outcome):
            outcomes.append(outcome)
            self._log(outcome)
            if self.progress is not None:
                self.progress(len(outcomes), total)

        def settle(limit):
            while len(pending) > limit:
                outcome, future = pending.popleft()
                if future is not None:
                    outcome = self._written(outcome, future.result())
                finish(outcome)

        try:
            for path, st, problem, where in items:
                if problem is not None:
                    outcome, write = Outcome(path, FAILED, problem), None
                elif self._stale_temp(path, st):
                    outcome, write = self._remove_temp(path, st, where), None
                    if outcome.status == REMOVED:
                        cleaned.add((where.tree, where.parts))
                    elif (outcome.reason or "").startswith(CANNOT_REMOVE):
                        unremovable.append(outcome)
                else:
                    outcome, write = self._prepare(
                        sm_carriers.examine(path, st, self.carriers, where))
                if pool is None:
                    if write is not None:
                        outcome = self._written(outcome, self._replace(*write))
                    finish(outcome)
                    continue
                pending.append((outcome, None if write is None
                                else pool.submit(self._replace, *write)))
                settle(4 * self.io_workers)
            settle(0)
        finally:
            if pool is not None:
                # On an error or an interrupt, queued replacements are
                # dropped (those files keep their old, valid envelope) and
                # the ones under way are finished before returning.
                pool.shutdown(wait=True, cancel_futures=True)
            self._removed(outcomes, cleaned, unremovable)
        active = {name: ring.active.number for name, ring in self._rings.items()}
        return Summary(outcomes, active)

    def _stale_temp(self, path, st):
        """Whether *st* (an lstat) is of a stale temporary file."""
        return (self.temp_age is not None and stat.S_ISREG(st.st_mode)
                and st.st_nlink == 1
                and _TEMP_NAME.match(os.path.basename(path)) is not None
                and time.time() - st.st_mtime >= self.temp_age)

    def _remove_temp(self, path, st, where):
        """The Outcome of removing the stale temporary file *path*."""
        kept = "temporary file of an interrupted write"
        try:
            with where.directory() as dir_fd:
                now = where.lstat(dir_fd)
                if (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino) or (
                        not self._stale_temp(path, now)):
                    # Replaced or written meanwhile: not the file judged stale.
                    return self._prepare(sm_carriers.examine(
                        path, now, self.carriers, where))[0]
                safefs.remove(dir_fd, where.name, now)
        except (FileNotFoundError, safefs.FileChanged):
            return Outcome(path, SKIPPED, kept + ", gone before it was removed")
        except OSError as exc:
            return Outcome(path, SKIPPED, "%s: %s" % (
                CANNOT_REMOVE, exc.strerror or exc))
        return Outcome(path, REMOVED, "%s, last written %d s ago" % (
            kept, time.time() - now.st_mtime))

    def _removed(self, outcomes, cleaned, unremovable):
        """Make the removals of temporary files durable, and say so."""
        if self.durable:
            for tree, parts in sorted(cleaned, key=lambda d: (d[0].path, d[1])):
                try:
                    fd = safefs.open_beneath(tree.fd, parts)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                except OSError as exc:
                    LOG.warning("cannot fsync directory %s after removing"
                                " temporary files: %s",
                                os.path.join(tree.path, *parts),
                                exc.strerror or exc)
        removed = [o for o in outcomes if o.status == REMOVED]
        if removed:
            LOG.info("removed %d temporary file%s left by interrupted writes"
                     " (last written %d s ago or more; first: %s)",
                     len(removed), "" if len(removed) == 1 else "s",
                     self.temp_age, removed[0].path)
        if unremovable:
            LOG.warning("%d stale temporary file%s could not be removed"
                        " (first: %s: %s)", len(unremovable),
                        "" if len(unremovable) == 1 else "s",
                        unremovable[0].path, unremovable[0].reason)

    @staticmethod
    def _log(outcome):
        if outcome.status == REMOVED:
            LOG.debug("removed %s: %s", outcome.path, outcome.reason)
        elif outcome.status == REWRAPPED:
            LOG.debug("rewrapped %s: %s version %d -> %d", outcome.path,
                      outcome.keyring, outcome.from_version,
                      outcome.to_version)
        elif outcome.status == FAILED:
            # Reported in the summary; one line per file only with -v -v.
            LOG.debug("cannot rewrap %s: %s", outcome.path, outcome.reason)

    @staticmethod
    def _written(outcome, problem):
        """*outcome* once its replacement ended with *problem* (None: done)."""
        if problem is not None:
            outcome.reason = problem
        else:
            outcome.status = REWRAPPED
        return outcome

    def rewrap_file(self, item):
        """The :class:`Outcome` of one examined file."""
        outcome, write = self._prepare(item)
        if write is None:
            return outcome
        return self._written(outcome, self._replace(*write))

    def _prepare(self, item):
        """``(outcome, write)``: *write* is None when *outcome* is final,
        else the ``(path, stat, content)`` to replace the file with; the
        outcome then is FAILED with the versions filled in, and
        :meth:`_written` completes it."""
        path = item.path
        if item.skipped is not None:
            return Outcome(path, SKIPPED, item.skipped), None
        if item.error is not None:
            return Outcome(path, FAILED, item.error), None
        if item.malformed is not None:
            return Outcome(path, FAILED, item.malformed), None
        raw = item.carried.envelope
        try:
            parsed = envelope.parse(raw, self.max_envelope_size)
        except exceptions.InvalidEnvelope as exc:
            return Outcome(path, FAILED, str(exc)), None
        header = parsed.header
        outcome = Outcome(path, FAILED, None, header.keyring, header.key_version)
        if self.keyring is not None and header.keyring != self.keyring:
            outcome.status = SKIPPED
            outcome.reason = "sealed under keyring %r, not %r" % (
                header.keyring, self.keyring)
            return outcome, None
        sealer = self._sealer(header.keyring)
        if sealer is None:
            outcome.reason = "no keyring %r in the key store" % header.keyring
            return outcome, None
        verdict = sm_verdict.judge(self._rings[header.keyring], header,
                                   parsed.signature, raw)
        if (verdict.status == sm_verdict.UNKNOWN_KEY
                and time.monotonic() - self._read_at[header.keyring] >= 1.0):
            # Sealed after a rotation made since we read the keyring?
            self._rings[header.keyring] = sealer.refresh()
            self._read_at[header.keyring] = time.monotonic()
            verdict = sm_verdict.judge(self._rings[header.keyring], header,
                                       parsed.signature, raw)
        if verdict.status != sm_verdict.VALID:
            outcome.reason = verdict.reason
            return outcome, None
        try:
            new = sealer.rewrap(raw)
        except (exceptions.InvalidEnvelope, exceptions.KeyUnavailable) as exc:
            outcome.reason = str(exc)
            return outcome, None
        except exceptions.NoSuchKeyring as exc:
            outcome.reason = str(exc)
            return outcome, None
        if new == raw:
            outcome.status = CURRENT
            outcome.to_version = header.key_version
            return outcome, None
        new_header = envelope.parse(new, self.max_envelope_size).header
        outcome.to_version = new_header.key_version
        try:
            content = item.carried.rewritten(new)
        except Exception as exc:  # a carrier plug-in must not stop the run
            outcome.reason = "carrier %s cannot write the envelope back: %s" % (
                item.carried.carrier.name, exc)
            return outcome, None
        return outcome, (item.where, item.stat, content)

    def _replace(self, where, st, content):
        """Atomically replace the file at *where* with *content*; None, or
        why not."""
        try:
            with where.directory() as dir_fd:
                safefs.replace(dir_fd, where.name, content, st,
                               durable=self.durable,
                               timeout=self.user_write_timeout)
        except safefs.FileChanged:
            return "changed while being rewrapped; left alone (run again)"
        except (safefs.NotOwner, safefs.WriteAbandoned) as exc:
            return "not rewrapped: %s" % exc
        except OSError as exc:
            return "cannot write: %s" % (exc.strerror or exc)
        return None


def rewrap(store, paths, keyring=None,
           max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE, progress=None):
    """Shortcut: ``Rewrapper(...).run(paths)``."""
    return Rewrapper(store, keyring=keyring, max_envelope_size=max_envelope_size,
                     progress=progress).run(paths)
