"""Keyring administration: every state change, under the coordination lock.

The CLI's ``keyring create``, ``rekey``, ``key retire | reinstate | destroy``
call these functions and only print. Each one takes the keyring's lock from
*coordinator* (:class:`sealedmeta.coordination.Coordinator`), re-reads the
keyring from the store once the lock is held, checks the change against
that fresh state, and only then asks the store to make it. A coordinator
that cannot be reached raises
:class:`~sealedmeta.coordination.CoordinationError` and nothing changes.
"""

import dataclasses
import logging
import time

from sealedmeta import audit
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import names
from sealedmeta import keyring as kr

LOG = logging.getLogger(__name__)

# How many paths a refusal to destroy names.
MAX_PATHS_SHOWN = 10


class VersionInUse(exceptions.InvalidTransition):
    """``key destroy`` refused: the scan found envelopes under the version
    (or files it could not read)."""

    def __init__(self, message, paths=()):
        super().__init__(message)
        self.paths = list(paths)


class DestroyRefused(exceptions.InvalidTransition):
    """``key destroy`` refused: no scan of the backup stores and no force."""


class ScanRequired(exceptions.InvalidTransition):
    """``key retire --unused``, ``key destroy --after`` or ``--due``
    refused: no scan of the backup stores."""


class NotSettled(exceptions.InvalidTransition):
    """``key retire`` / ``key destroy`` refused: the version stopped being
    active less than the settle window (``cache_ttl + stale_grace``) ago, so
    a running process may still seal under it. *left*: seconds to wait."""

    def __init__(self, message, left):
        super().__init__(message)
        self.left = left


# The settle window of the default configuration (cache_ttl 300 +
# stale_grace 0): what retire and destroy wait when the caller says
# nothing. A test keeps it equal to the options' defaults.
DEFAULT_SETTLE = 300


class ClockAhead(exceptions.InvalidTransition):
    """``key retire`` / ``key destroy`` refused: the keyring records that
    the version stopped being active at a time still in this host's future,
    so this host's clock or the rotating host's is wrong, and the settle
    window cannot be counted from it."""


def _require_scan(scan, sources, action, shows=""):
    """ScanRequired unless the backup stores are to be scanned (*scan*
    paths or *sources*) before *action*."""
    if not (scan or sources):
        raise ScanRequired(
            "refusing to %s without a scan of the backup stores%s (give the"
            " paths to scan)" % (action, shows))

def settle_window(conf):
    """Seconds a running process may keep sealing under a version after it
    stopped being active: it reads the keyring again after ``cache_ttl``,
    and keeps the old one ``stale_grace`` longer when the store fails.

    These are *conf*'s values: the window is right only when every agent
    (every process that seals) runs with the same ``cache_ttl`` and
    ``stale_grace`` or shorter ones (see the keys page of the docs)."""
    return conf.sealedmeta.cache_ttl + conf.sealedmeta.stale_grace


def _check_settled(ring, version, action, settle, at):
    if settle > 0:
        now = kr.now() if at is None else at
        since = kr.inactive_since(ring, version)
        if since is not None and since > now:
            raise ClockAhead(
                "refusing to %s version %d of keyring %r: it is recorded as no"
                " longer active since %s, %ds ahead of this host's clock; this"
                " host's clock or that of the host that rotated it is wrong,"
                " and the settle window (cache_ttl + stale_grace) counts from"
                " that time: correct the clock, then try again"
                % (action, version, ring.name, _utc(since), since - now))
    left = kr.settle_left(ring, version, settle, at)
    if left > 0:
        raise NotSettled(
            "refusing to %s version %d of keyring %r: %s"
            % (action, version, ring.name, settling(ring, version, settle,
                                                    left)), left)


def settling(ring, version, settle, left):
    """Why version *version* of *ring* must wait *left* more seconds of the
    settle window *settle*, in terms that add up: the times are recorded
    in whole seconds, so the window counts from the second after."""
    since = kr.inactive_since(ring, version)
    return ("it stopped being active at %s and the settle window (cache_ttl"
            " + stale_grace, %ds from the next whole second) ends at %s, so a"
            " running process may still seal under it; %ds left"
            % (_utc(since), settle, _utc(since + 1 + settle), left))


def span(seconds):
    """*seconds* in the largest whole unit: ``90d``, ``12h``, ``30m``, ``45s``."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return "%d%s" % (seconds // size, unit)
    return "%ds" % seconds


def _utc(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


class RekeyFailed(exceptions.KeyStoreError):
    """``rekey`` failed; the message also says what the keyring, read again
    right after the failure (under the same lock), shows -- a failure can
    come after the rotation took effect (a connection lost once the store
    applied the activation).

    *took_effect*: True when a new version is active, False when the
    previous one still is, None when the keyring could not be read again.
    *ring*: the KeyRing as read again (None when it could not be).
    """

    def __init__(self, message, took_effect=None, ring=None):
        super().__init__(message)
        self.took_effect = took_effect
        self.ring = ring


class DestroyFailed(exceptions.KeyStoreError):
    """``key destroy`` failed; the message also says what the keyring, read
    again right after the failure (under the same lock), shows.

    *destroyed*: True when the version reads as destroyed (no envelope opens
    under it, but some of its material may be left: destroying it again
    finishes the job), False when it is still retired (nothing changed),
    None when the keyring could not be read again.
    """

    def __init__(self, message, destroyed=None):
        super().__init__(message)
        self.destroyed = destroyed


@dataclasses.dataclass(frozen=True)
class RekeyResult:
    keyring: str
    version: kr.KeyVersion        # the new active version (or the active one)
    previous: kr.KeyVersion       # the former active, now decrypt-only
    # What the store held that no version used (left by interrupted
    # rotations), as base.Leftover records; those old enough were removed.
    leftovers: tuple = ()
    # False when a rekey with *older_than* found the active version young
    # enough (then *previous* is None and nothing changed).
    rotated: bool = True


@dataclasses.dataclass(frozen=True)
class DestroyResult:
    keyring: str
    version: kr.KeyVersion        # as it is now: destroyed
    scanned: int                  # envelopes examined by the scan (or None)
    in_use: int                   # of them, under this version (forced)
    forced: bool
    # The version was already destroyed: this call finished an earlier
    # destroy (True if that one had left material behind).
    finished: bool = None


def _number(version):
    if type(version) is not int or not 1 <= version <= names.MAX_KEY_VERSION:
        raise exceptions.InvalidTransition(
            "bad version %r: expected an integer 1-%d"
            % (version, names.MAX_KEY_VERSION))
    return version


def create_keyring(store, name, coordinator, signing=False):
    """Create keyring *name* (version 1 active; with an Ed25519 key pair per
    version when *signing*); returns the KeyRing."""
    names.check_keyring_name(name)
    with coordinator.lock(name):
        try:
            store.get_keyring(name)  # fresh, under the lock
        except exceptions.NoSuchKeyring:
            pass
        else:
            raise exceptions.KeyringExists("keyring %r already exists" % name)
        ring = (store.create_keyring(name, signing=True) if signing
                else store.create_keyring(name))
    LOG.info("created keyring %s, version 1 (key id %s) active", name,
             ring.active.key_id.hex())
    return ring


def rekey(store, name, coordinator, signing=False, events=None,
          older_than=None, at=None):
    """Rotate keyring *name*: a new active version, the previous active
    becomes decrypt-only. With *signing*, a keyring without signing keys
    becomes a signing keyring from the new version on (a signing keyring
    stays one either way). Returns a :class:`RekeyResult`. *events*: a
    :class:`sealedmeta.events.Events` told of the rotation.

    With *older_than* (seconds), rotate only when the active version was
    created at least that long before *at* (epoch seconds, default now);
    otherwise change nothing and return ``rotated=False``. The age is
    judged on the keyring read under the lock, so of many hosts running
    this at once exactly one rotates."""
    names.check_keyring_name(name)
    with coordinator.lock(name):
        previous = store.get_keyring(name).active  # fresh, under the lock
        if older_than is not None:
            age = (kr.now() if at is None else at) - previous.created
            if age < older_than:
                LOG.info("keyring %s: version %d (created %s) is younger than"
                         " %s: not rotated", name, previous.number,
                         _utc(previous.created), span(older_than))
                return RekeyResult(name, previous, None, rotated=False)
        try:
            version = (store.rotate(name, signing=True) if signing
                       else store.rotate(name))
        except Exception as exc:
            # Still under the lock: whatever the keyring shows now is this
            # rotation's doing.
            raise _rekey_failed(store, name, previous, exc) from exc
        # Still under the lock, once the rotation stands: remove what
        # interrupted rotations left (old enough to be safe, see the store).
        try:
            leftovers, failure = tuple(store.leftovers(name, remove=True)), None
        except Exception as exc:
            leftovers, failure = (), exc
    LOG.info("rotated keyring %s: version %d (key id %s) active, version %d"
             " decrypt-only", name, version.number, version.key_id.hex(),
             previous.number)
    _report_leftovers(name, leftovers, failure)
    if events is not None:
        events.key_rotated(name, version, previous)
    return RekeyResult(name, version, previous, leftovers)


def _report_leftovers(name, found, failure):
    """Log what rekey's clean-up did; its failure never fails the rotation."""
    if failure is not None:
        LOG.warning("keyring %s: could not look for secrets left by interrupted"
                    " rotations (%s); the next rekey tries again", name,
                    failure if isinstance(failure, exceptions.SealedMetaError)
                    else type(failure).__name__)
        return
    removed = [f for f in found if f.action == "removed"]
    if removed:
        LOG.info("keyring %s: removed %d secret%s left by interrupted"
                 " rotations: %s", name, len(removed),
                 "" if len(removed) == 1 else "s",
                 ", ".join("%s (%s, %s)" % (f.name, f.kind, f.ref)
                           for f in removed))
    kept = len(found) - len(removed)
    if kept:
        LOG.info("keyring %s: %d more secret%s no version uses; see"
                 " 'sealedmeta keyring show %s --leftovers'", name, kept,
                 "" if kept == 1 else "s", name)


def _rekey_failed(store, name, previous, exc):
    """The RekeyFailed of a rotation of *name* that raised *exc*, saying in
    which state the keyring is (*previous*: its active version before)."""
    why = (str(exc) if isinstance(exc, exceptions.SealedMetaError)
           else "unexpected %s" % type(exc).__name__)
    failed = "rekey of keyring %r failed (%s)" % (name, why)
    try:
        ring = store.get_keyring(name)
    except Exception as again:
        again = (str(again) if isinstance(again, exceptions.SealedMetaError)
                 else type(again).__name__)
        return RekeyFailed(
            "%s; reading the keyring again failed too (%s), so whether the"
            " rotation took effect is unknown (version %d was active before):"
            " check with 'sealedmeta keyring show %s' before running rekey"
            " again" % (failed, again, previous.number, name))
    active = ring.active
    if active.key_id != previous.key_id:
        former = ring.version(previous.number)
        return RekeyFailed(
            "%s; read again, the keyring shows that the rotation to version %d"
            " did take effect: version %d (key id %s) is active, version %d is"
            " %s; do not run rekey again" % (
                failed, active.number, active.number, active.key_id.hex(),
                previous.number,
                former.state if former is not None else "gone"),
            took_effect=True, ring=ring)
    newer = [v for v in ring.versions if v.number > previous.number]
    if newer:
        return RekeyFailed(
            "%s; read again, the keyring shows that the rotation did not take"
            " effect: version %d is still active (also listed: %s)" % (
                failed, previous.number, ", ".join(
                    "version %d, %s" % (v.number, v.state) for v in newer)),
            took_effect=False, ring=ring)
    return RekeyFailed(
        "%s; read again, the keyring shows that nothing changed: version %d is"
        " still active" % (failed, previous.number),
        took_effect=False, ring=ring)


def _set_state(store, name, version, state, coordinator, settle=DEFAULT_SETTLE,
               at=None, announce=None):
    names.check_keyring_name(name)
    _number(version)
    with coordinator.lock(name):
        ring = store.get_keyring(name)
        kr.check_transition(ring, version, state)
        if state is kr.KeyState.RETIRED:
            _check_settled(ring, version, "retire", settle, at)
        updated = store.set_state(name, version, state)
    LOG.info("keyring %s: version %d is now %s", name, version, updated.state)
    if announce is not None:
        announce(name, updated)
    return updated


def retire(store, name, version, coordinator, settle=DEFAULT_SETTLE, at=None,
           events=None):
    """decrypt-only -> retired (envelopes under it are refused, key kept).

    Refused (:class:`NotSettled`) until *settle* seconds have passed since
    the version stopped being active: pass :func:`settle_window` of the
    agents' configuration; the default, :data:`DEFAULT_SETTLE`, is that of
    the default configuration; 0 only where no process caches the keyring.
    Refused (:class:`ClockAhead`) while that time lies in the future of
    *at*, the current time (epoch seconds, default now).
    """
    return _set_state(store, name, version, kr.KeyState.RETIRED, coordinator,
                      settle, at, events and events.key_retired)


def reinstate(store, name, version, coordinator, events=None):
    """retired or pending destruction -> decrypt-only (for a version
    pending destruction: its destruction is cancelled)."""
    return _set_state(store, name, version, kr.KeyState.DECRYPT_ONLY,
                      coordinator, announce=events and events.key_reinstated)


def destroy(store, name, version, coordinator, scan=None, force=False,
            max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
            carriers=None, sources=(), settle=DEFAULT_SETTLE, at=None,
            events=None):
    """retired (or pending destruction, ahead of its time) -> destroyed:
    the key material is removed for good.

    *scan* is a list of PATHs holding the backups' envelopes, *sources*
    more places that do (see :meth:`sealedmeta.audit.Auditor.run`, e.g. a
    Ceph backup pool); they are audited first and the destruction is
    refused (:class:`VersionInUse`) while any envelope under this version
    -- or any file that cannot be read -- is found. Without *scan* (or
    *sources*) it is refused (:class:`DestroyRefused`) unless *force*;
    *force* also overrides what the scan found. The active version is
    never destroyed (it must be rotated, then retired, first).

    A destroy that failed half-way (:class:`DestroyFailed`, ``destroyed``
    True) is finished by calling this again: for a version already
    destroyed no scan is needed, and the store removes whatever the earlier
    run left (:meth:`~sealedmeta.keystores.base.KeyStore.finish_destroy`).

    Refused (:class:`NotSettled`, :class:`ClockAhead`) until *settle*
    seconds have passed since the version stopped being active, as
    :func:`retire`.
    """
    names.check_keyring_name(name)
    _number(version)
    ring = store.get_keyring(name)
    current = ring.version(version)
    if current is not None and current.state is kr.KeyState.DESTROYED:
        return _finish_destroy(store, name, version, coordinator, force)
    # Fail fast on what the current state already forbids...
    target = kr.check_transition(ring, version, kr.KeyState.DESTROYED)
    _check_settled(ring, version, "destroy", settle, at)
    scanned, in_use = _check_unused(
        store, name, target, "destroy", scan, sources, force,
        max_envelope_size, carriers)
    # ...and decide again on the state read under the lock.
    with coordinator.lock(name):
        ring = store.get_keyring(name)
        current = kr.check_transition(ring, version, kr.KeyState.DESTROYED)
        _check_settled(ring, version, "destroy", settle, at)
        _check_unchanged(current, target, name)
        try:
            updated = store.set_state(name, version, kr.KeyState.DESTROYED)
        except Exception as exc:
            raise _destroy_failed(store, name, version, exc) from exc
    if in_use:
        LOG.warning("destroyed version %d of keyring %s although %d envelopes"
                    " under it were found (forced)", version, name, in_use)
    else:
        LOG.info("destroyed version %d of keyring %s", version, name)
    if events is not None:
        events.key_destroyed(name, updated, scanned, in_use or 0, force)
    return DestroyResult(name, updated, scanned, in_use or 0, bool(force))


def _check_unused(store, name, target, action, scan, sources, force,
                  max_envelope_size, carriers):
    """Before *action* ("destroy", "schedule the destruction of") of
    version *target* of keyring *name*: (envelopes scanned, of them under
    it), both None without a scan. Refused (:class:`VersionInUse`) while
    the scan of *scan* and *sources* finds envelopes under it or files it
    cannot read, and (:class:`DestroyRefused`) without a scan, unless
    *force*."""
    version = target.number
    if not (scan or sources):
        if not force:
            raise DestroyRefused(
                "refusing to %s version %d of keyring %r without a scan of"
                " the backup stores that shows no envelope under it (give"
                " the paths to scan, or force)" % (action, version, name))
        return None, None
    # A version that is retired, or pending destruction, seals nothing and
    # rewrap cannot open it, so no envelope under it appears while the scan
    # runs: the scan can be made without holding the lock.
    report = _audit(store, scan, sources, max_envelope_size, carriers)
    under = report.under(name, target.key_id)
    if under and not force:
        raise VersionInUse(
            "refusing to %s version %d of keyring %r: the scan found %s under"
            " it: %s; rewrap them first"
            % (action, version, name, _count(len(under), "envelope"),
               _shown_paths(under)), [f.path for f in under])
    if not force:
        _refuse_unreadable(report, "%s version %d" % (action, version), name,
                           "it")
    return len(report.findings), len(under)


def _check_unchanged(current, target, name):
    if current.key_id != target.key_id:
        raise exceptions.InvalidTransition(
            "version %d of keyring %r changed during the scan; run again"
            % (target.number, name))


def schedule_destroy(store, name, version, coordinator, after, scan=None,
                     sources=(),
                     max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                     carriers=None, settle=DEFAULT_SETTLE, at=None,
                     events=None):
    """retired -> pending destruction, due *after* seconds from *at*
    (epoch seconds, default now): from then on :func:`destroy_due`
    destroys it, unless :func:`reinstate` cancels first. Like
    :func:`retire`, it opens nothing meanwhile.

    Checked as :func:`destroy` checks, at this moment: refused while the
    scan of *scan* and *sources* finds envelopes under the version (or
    files it cannot read), without a scan, and inside the settle window.
    There is no forcing a schedule: forcing is for :func:`destroy`, at
    once. Returns a :class:`DestroyResult` (the version pending, with its
    ``destroy_after``)."""
    names.check_keyring_name(name)
    _number(version)
    if type(after) is not int or after < 1:
        raise exceptions.InvalidTransition(
            "bad delay %r: expected a number of seconds, at least 1"
            % (after,))
    state = kr.KeyState.PENDING_DESTRUCTION
    action = "schedule the destruction of"
    _require_scan(scan, sources, "%s version %d of keyring %r"
                  % (action, version, name), " that shows no envelope under it")
    ring = store.get_keyring(name)
    target = kr.check_transition(ring, version, state)
    _check_settled(ring, version, action, settle, at)
    scanned, in_use = _check_unused(store, name, target, action, scan,
                                    sources, False, max_envelope_size,
                                    carriers)
    with coordinator.lock(name):
        ring = store.get_keyring(name)
        current = kr.check_transition(ring, version, state)
        _check_settled(ring, version, action, settle, at)
        _check_unchanged(current, target, name)
        # Counted from now, once the scan is done: the delay is the time
        # left to take it back.
        due = (kr.now() if at is None else at) + after
        updated = store.set_state(name, version, state, destroy_after=due)
    LOG.info("keyring %s: version %d is now pending destruction, due at %s"
             " ('sealedmeta key reinstate %s %d' cancels)", name, version,
             _utc(due), name, version)
    if events is not None:
        events.key_destroy_scheduled(name, updated, due)
    return DestroyResult(name, updated, scanned, in_use, False)


@dataclasses.dataclass(frozen=True)
class DestroyDueResult:
    keyring: str
    destroyed: tuple      # version numbers destroyed by this call
    in_use: dict          # version number -> envelopes under it (kept)
    not_due: dict         # version number -> its destroy_after (kept)
    scanned: int          # envelopes examined by the scan (None: no scan)


def destroy_due(store, name, coordinator, scan=None, sources=(),
                max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                carriers=None, at=None, events=None):
    """Destroy every version of keyring *name* pending destruction whose
    time has come at *at* (epoch seconds, default now), checking again,
    now, that nothing uses it: a scan of *scan* and *sources* (as
    :func:`destroy`) that finds envelopes under a due version leaves it
    pending (``in_use``); one that cannot read a file destroys nothing
    (:class:`VersionInUse`). Without a scan: :class:`ScanRequired`. With
    no version due, nothing is scanned. Each destroy is decided under the
    lock on the keyring read again (a version reinstated meanwhile is left
    alone). Versions pending but not due yet are in ``not_due``."""
    names.check_keyring_name(name)
    _require_scan(scan, sources, "destroy the due versions of keyring %r" % name)
    at = kr.now() if at is None else at
    ring = store.get_keyring(name)
    due = kr.due_for_destruction(ring, at)
    not_due = {v.number: v.destroy_after for v in ring.versions
               if v.state is kr.KeyState.PENDING_DESTRUCTION
               and v.number not in {d.number for d in due}}
    if not due:
        LOG.info("keyring %s: no version is due to be destroyed", name)
        return DestroyDueResult(name, (), {}, not_due, None)
    report = _audit(store, scan, sources, max_envelope_size, carriers)
    _refuse_unreadable(report, "destroy the due versions", name,
                       "its versions due to be destroyed")
    in_use, free = {}, []
    for version in due:
        under = report.under(name, version.key_id)
        if under:
            in_use[version.number] = under
        else:
            free.append(version)
    destroyed, was_due = [], {v.number: v.destroy_after for v in due}
    failed = None
    with coordinator.lock(name):
        for version in free:
            ring = store.get_keyring(name)        # fresh, under the lock
            current = ring.version(version.number)
            if (current is None or current.key_id != version.key_id
                    or current not in kr.due_for_destruction(ring, at)):
                continue
            try:
                updated = store.set_state(name, version.number,
                                          kr.KeyState.DESTROYED)
            except Exception as exc:
                # Still under the lock (see _destroy_failed); raised once
                # the versions destroyed before it are reported.
                failed = _destroy_failed(store, name, version.number, exc)
                failed.__cause__ = exc
                break
            destroyed.append(updated)
    scanned = len(report.findings)
    for updated in destroyed:
        LOG.info("destroyed version %d of keyring %s (due at %s)",
                 updated.number, name, _utc(was_due[updated.number]))
        if events is not None:
            events.key_destroyed(name, updated, scanned, 0, False)
    for number, under in sorted(in_use.items()):
        LOG.warning(
            "keyring %s: version %d is due to be destroyed but the scan found"
            " %s under it: %s; kept pending destruction (they cannot be"
            " opened meanwhile): reinstate it ('sealedmeta key reinstate %s"
            " %d') and rewrap them", name, number,
            _count(len(under), "envelope"), _shown_paths(under), name, number)
    if failed is not None:
        raise failed
    return DestroyDueResult(
        name, tuple(v.number for v in destroyed),
        {n: len(u) for n, u in in_use.items()}, not_due, scanned)


def _audit(store, scan, sources, max_envelope_size, carriers):
    """The audit Report of the backup stores *scan* (PATHs) and *sources*."""
    return audit.Auditor(store, max_envelope_size, carriers=carriers).run(
        list(scan or ()), list(sources))


def _count(n, noun):
    return "%d %s%s" % (n, noun, "" if n == 1 else "s")


def _shown_paths(findings):
    shown = [f.path for f in findings[:MAX_PATHS_SHOWN]]
    return ", ".join(shown) + (", ..." if len(findings) > len(shown) else "")


def _refuse_unreadable(report, action, name, which):
    """VersionInUse when the scan could not read a file: it may hold
    envelopes under *which* (the versions *action* would change)."""
    unreadable = [f for f in report.findings if f.status == audit.UNREADABLE]
    if unreadable:
        raise VersionInUse(
            "refusing to %s of keyring %r: the scan could not read %s, which"
            " may hold envelopes under %s: %s"
            % (action, name, _count(len(unreadable), "file"), which,
               _shown_paths(unreadable)), [f.path for f in unreadable])


@dataclasses.dataclass(frozen=True)
class RetireUnusedResult:
    keyring: str
    retired: tuple        # version numbers retired by this call
    in_use: dict          # version number -> envelopes under it (kept)
    settling: dict        # version number -> seconds of settle window left
    scanned: int          # envelopes examined by the scan (None: no scan)


def retire_unused(store, name, coordinator, scan=None, sources=(),
                  max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                  carriers=None, settle=DEFAULT_SETTLE, at=None, events=None):
    """Retire every decrypt-only version of keyring *name* that a scan of
    the backup stores (*scan* PATHs, *sources*, as :func:`destroy`) finds
    no envelope under. Versions still inside the settle window (counted at
    the start of the scan: an agent may have sealed under them after the
    scan passed by) are left, in ``settling``; versions in use are left, in
    ``in_use``. Without *scan* or *sources*: :class:`ScanRequired`. A
    file the scan cannot read retires nothing (:class:`VersionInUse`).
    Each retire is decided under the lock on the keyring read again (a
    version reinstated, rotated or changed meanwhile is left alone)."""
    names.check_keyring_name(name)
    _require_scan(scan, sources, "retire unused versions of keyring %r" % name)
    started = kr.now() if at is None else at
    ring = store.get_keyring(name)
    candidates = [v for v in ring.versions
                  if v.state is kr.KeyState.DECRYPT_ONLY]
    if not candidates:
        LOG.info("keyring %s: no decrypt-only version to retire", name)
        return RetireUnusedResult(name, (), {}, {}, None)
    report = _audit(store, scan, sources, max_envelope_size, carriers)
    _refuse_unreadable(report, "retire unused versions", name,
                       "its decrypt-only versions")
    in_use, waiting, free = {}, {}, []
    for version in candidates:
        under = report.under(name, version.key_id)
        left = kr.settle_left(ring, version.number, settle, started)
        if under:
            in_use[version.number] = len(under)
        elif left > 0:
            waiting[version.number] = left
        else:
            free.append(version)
    retired = []
    with coordinator.lock(name):
        ring = store.get_keyring(name)        # fresh, under the lock
        for version in free:
            current = ring.version(version.number)
            if (current is None or current.key_id != version.key_id
                    or current.state is not kr.KeyState.DECRYPT_ONLY):
                continue
            updated = store.set_state(name, version.number,
                                      kr.KeyState.RETIRED)
            retired.append(updated)
    for updated in retired:
        LOG.info("keyring %s: version %d is now retired (no backup uses it)",
                 name, updated.number)
        if events is not None:
            events.key_retired(name, updated)
    for number, count in sorted(in_use.items()):
        LOG.info("keyring %s: version %d kept: %s under it", name, number,
                 _count(count, "envelope"))
    for number, left in sorted(waiting.items()):
        LOG.info("keyring %s: version %d kept: %s", name, number,
                 settling(ring, number, settle, left))
    return RetireUnusedResult(name, tuple(v.number for v in retired), in_use,
                              waiting, len(report.findings))


def _finish_destroy(store, name, version, coordinator, force):
    """destroy of a version already destroyed: finish what an earlier,
    interrupted destroy left (no scan needed: the decision is made, and no
    envelope opens under the version any more)."""
    with coordinator.lock(name):
        try:
            updated, left = store.finish_destroy(name, version)
        except exceptions.InvalidTransition:
            raise
        except Exception as exc:
            raise _destroy_failed(store, name, version, exc) from exc
    if left:
        LOG.info("finished destroying version %d of keyring %s (an earlier"
                 " destroy had been interrupted)", version, name)
    else:
        LOG.info("version %d of keyring %s was already destroyed; nothing was"
                 " left", version, name)
    return DestroyResult(name, updated, None, 0, bool(force), finished=left)


def _destroy_failed(store, name, version, exc):
    """The DestroyFailed of a destroy of *version* that raised *exc*, saying
    in which state the keyring is."""
    why = (str(exc) if isinstance(exc, exceptions.SealedMetaError)
           else "unexpected %s" % type(exc).__name__)
    failed = "destroy of version %d of keyring %r failed (%s)" % (version, name, why)
    again = "run 'sealedmeta key destroy %s %d' again" % (name, version)
    try:
        current = store.get_keyring(name).version(version)
    except Exception as reread:
        reread = (str(reread) if isinstance(reread, exceptions.SealedMetaError)
                  else type(reread).__name__)
        return DestroyFailed(
            "%s; reading the keyring again failed too (%s): check with"
            " 'sealedmeta keyring show %s', then %s" % (failed, reread, name, again))
    if current is not None and current.state is kr.KeyState.DESTROYED:
        return DestroyFailed(
            "%s; read again, the keyring shows version %d destroyed (no envelope"
            " opens under it) but its key material may be left in the key"
            " store: %s to finish" % (failed, version, again), destroyed=True)
    return DestroyFailed(
        "%s; read again, the keyring shows version %d still %s: nothing"
        " changed" % (failed, version, current.state if current else "gone"),
        destroyed=False)
