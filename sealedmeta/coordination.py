"""The tooz lock taken around every keyring state change.

Every change of a keyring's state made through the library's admin entry
points (:mod:`sealedmeta.admin`: keyring create, rekey, key retire /
reinstate / destroy) and therefore through the CLI runs as::

    with coordinator.lock(name):
        ring = store.get_keyring(name)   # re-read after acquiring
        ...check, then change...

The lock is named after the keyring (``sealedmeta-keyring-NAME``) and lives
in the tooz backend of ``[coordination] backend_url``: by default a
``file://`` directory next to the file key store (one host), in production
redis / etcd shared by every agent. When the backend cannot be reached, or
the lock is not granted within ``[coordination] lock_timeout`` seconds,
:class:`CoordinationError` is raised and nothing is changed: a state change
is never made without the lock.

The wait is bounded even when the backend dies during it: tooz's redis
driver retries a lost connection for about a minute, and a file lock on a
hung file system blocks in the kernel, so every call into tooz runs in a
thread of its own that the caller stops waiting for after ``lock_timeout``
plus :data:`ANSWER_MARGIN` seconds (a networked backend is also probed
every :data:`PROBE_INTERVAL` seconds while the caller waits, so its death
is reported at once). An acquisition that was given up counts as not held,
whatever it does later: if it still gets the lock, that thread releases it
straight away.
"""

import contextlib
import importlib.util
import logging
import os
import socket
import threading
import time
import urllib.parse
import uuid

from sealedmeta import conf as sm_conf
from sealedmeta import exceptions
from sealedmeta import names

LOG = logging.getLogger(__name__)

LOCK_PREFIX = "sealedmeta-keyring-"

# Seconds a TCP connection to a networked backend may take before it is
# called unreachable. tooz's redis driver retries a refused connection 15
# times with redis-py's own back-off (about a minute); a quick probe first
# turns a dead backend into one clear error at once.
PROBE_TIMEOUT = 5.0
# Seconds beyond lock_timeout an acquisition may take (the backend's last
# answer) before it is given up; also the bound of a start, release or stop.
ANSWER_MARGIN = 2.0
# Seconds between two probes of a networked backend while waiting for a lock.
PROBE_INTERVAL = 1.0

_DEFAULT_PORTS = {
    "redis": 6379, "etcd3+http": 2379, "etcd3+https": 2379, "zookeeper": 2181,
    "kazoo": 2181, "memcached": 11211, "mysql": 3306, "postgresql": 5432,
}


class CoordinationError(exceptions.SealedMetaError):
    """The coordination backend is unreachable or the lock was not granted.

    No keyring state was changed.
    """


def redact(url):
    """*url* without its password, for messages and logs."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urllib.parse.urlunsplit(
        (parts.scheme, "%s:***@%s" % (user, netloc), parts.path, parts.query,
         parts.fragment))


def lock_name(keyring):
    return LOCK_PREFIX + names.check_keyring_name(keyring)


class _Call:
    """``fn()`` in a daemon thread that the caller may stop waiting for.

    If the caller gives up (:meth:`abandon`) before ``fn`` returns, a result
    that still comes is handed to *late* (in that thread) instead: an
    acquisition given up releases the lock it gets after all.
    """

    def __init__(self, fn, what, late=None):
        self._fn = fn
        self._late = late
        self._guard = threading.Lock()
        self._done = threading.Event()
        self._abandoned = False
        self.result = self.error = None
        threading.Thread(target=self._run, daemon=True,
                         name="sealedmeta-coordination-%s" % what).start()

    def _run(self):
        try:
            result, error = self._fn(), None
        except Exception as exc:
            result, error = None, exc
        with self._guard:
            self.result, self.error = result, error
            self._done.set()
            late = self._abandoned
        if late and error is None and self._late is not None:
            try:
                self._late(result)
            except Exception as exc:  # nobody is waiting; just say so
                LOG.warning("coordination: cleaning up after an abandoned call"
                            " failed: %s", type(exc).__name__)

    def wait(self, timeout):
        """True once ``fn`` has returned or raised."""
        return self._done.wait(max(0.0, timeout))

    def abandon(self):
        """Stop waiting. True if ``fn`` had finished after all (then its
        outcome is in :attr:`result` / :attr:`error` and *late* is not
        called); False if it had not (and never will be waited for)."""
        with self._guard:
            if self._done.is_set():
                return True
            self._abandoned = True
            return False


class Coordinator:
    """Locks keyrings through a tooz backend; start it lazily, stop it once.

    Use as a context manager, or call :meth:`stop` when done.
    """

    def __init__(self, backend_url, lock_timeout=30.0, member_id=None):
        self.backend_url = backend_url
        self.lock_timeout = lock_timeout
        self.member_id = (member_id or "sealedmeta-%s-%d-%s" % (
            socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8]))
        self._driver = None

    @classmethod
    def from_config(cls, conf):
        return cls(sm_conf.backend_url(conf),
                   lock_timeout=conf.coordination.lock_timeout)

    def __repr__(self):
        return "Coordinator(%r)" % redact(self.backend_url)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def _fail(self, what, exc):
        detail = str(exc).strip().splitlines()
        detail = detail[0] if detail else type(exc).__name__
        cause = exc.__cause__
        if isinstance(cause, OSError) and cause.strerror:
            detail = "%s: %s%s" % (detail, cause.strerror,
                                   " (%s)" % cause.filename
                                   if cause.filename else "")
        return CoordinationError(
            "coordination backend %s %s (%s); no keyring state was changed"
            % (redact(self.backend_url), what, detail))

    def _check_url(self):
        """One clear error for an unknown scheme or a backend host that does
        not accept connections."""
        from importlib import metadata
        try:
            parts = urllib.parse.urlsplit(self.backend_url)
            self._address()   # parses the port too
        except ValueError as exc:
            raise CoordinationError(
                "bad coordination backend URL %s: %s"
                % (redact(self.backend_url), exc)) from None
        known = sorted({ep.name for ep in metadata.entry_points(
            group="tooz.backends")})
        if parts.scheme not in known:
            raise CoordinationError(
                "coordination backend %s: unknown scheme %r (tooz knows: %s);"
                " no keyring state was changed"
                % (redact(self.backend_url), parts.scheme, ", ".join(known)))
        if parts.scheme == "redis" and importlib.util.find_spec("redis") is None:
            raise CoordinationError(
                "coordination backend %s needs the 'redis' Python package in"
                " this environment (in a clone of sealedmeta: pip install"
                " '.[redis]'); no keyring state was changed"
                % redact(self.backend_url))
        self._probe(PROBE_TIMEOUT)

    def _address(self):
        """(host, port) of a networked backend; None for file:// and the
        like. ValueError for a bad port."""
        parts = urllib.parse.urlsplit(self.backend_url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        return (parts.hostname, port) if parts.hostname and port else None

    def _probe(self, timeout):
        """CoordinationError unless a networked backend accepts a TCP
        connection within *timeout* seconds."""
        address = self._address()
        if address is None:
            return
        try:
            socket.create_connection(address, timeout=max(0.05, timeout)).close()
        except OSError as exc:
            raise CoordinationError(
                "coordination backend %s is unreachable (%s:%d: %s); no"
                " keyring state was changed"
                % (redact(self.backend_url), address[0], address[1],
                   exc.strerror or exc)) from None

    def _bounded(self, what, fn, seconds, late=None, probe=False,
                 before_change=True):
        """``fn()``'s outcome, waiting at most *seconds* for it.

        CoordinationError when it does not come in time (and, with *probe*,
        as soon as a probe finds the backend gone); *late* then gets the
        result if one still comes. Exceptions of ``fn`` are raised as they
        are. *before_change*: the error says no keyring state was changed.
        """
        deadline = time.monotonic() + seconds
        call = _Call(fn, what, late)
        while True:
            left = deadline - time.monotonic()
            if call.wait(min(left, PROBE_INTERVAL) if probe else left):
                break
            try:
                if time.monotonic() >= deadline:
                    raise CoordinationError(
                        "coordination backend %s did not answer within %gs"
                        " (%s)%s" % (redact(self.backend_url), seconds, what,
                                     "; no keyring state was changed"
                                     if before_change else ""))
                self._probe(min(PROBE_TIMEOUT, deadline - time.monotonic()))
            except CoordinationError:
                if call.abandon():
                    break   # it finished meanwhile: take its outcome
                raise
        if call.error is not None:
            raise call.error
        return call.result

    def _start(self):
        if self._driver is not None:
            return self._driver
        self._check_url()
        from tooz import coordination as tooz_coordination  # slow import
        import tooz
        quiet = logging.getLogger("stevedore")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)  # its "Could not load" is ours to say
        try:
            driver = tooz_coordination.get_coordinator(
                self.backend_url, self.member_id.encode("utf-8"))
        except Exception as exc:  # stevedore NoMatches, bad URL, import error
            raise self._fail("cannot be used", exc) from None
        finally:
            quiet.setLevel(level)
        try:
            self._bounded("connecting", lambda: driver.start(start_heart=False),
                          PROBE_TIMEOUT + ANSWER_MARGIN,
                          late=lambda _: self._stop_driver(driver))
        except (tooz.ToozError, OSError) as exc:
            raise self._fail("is unreachable", exc) from None
        self._driver = driver
        return driver

    def _stop_driver(self, driver):
        try:
            self._bounded("stopping", driver.stop, PROBE_TIMEOUT + ANSWER_MARGIN,
                          before_change=False)
        except Exception as exc:  # nothing left to protect; just say so
            LOG.warning("stopping coordination backend %s failed: %s",
                        redact(self.backend_url), exc)

    def stop(self):
        driver, self._driver = self._driver, None
        if driver is None:
            return
        try:
            self._check_url()
        except CoordinationError as exc:
            # tooz would retry for about a minute; its locks expire anyway.
            LOG.warning("not stopping coordination backend cleanly: %s", exc)
            return
        self._stop_driver(driver)

    @contextlib.contextmanager
    def lock(self, keyring):
        """Hold keyring *keyring*'s lock for the ``with`` body.

        Gives up with CoordinationError within about ``lock_timeout`` +
        :data:`ANSWER_MARGIN` seconds, also when the backend dies during the
        wait (see the module's documentation).
        """
        import tooz
        name = lock_name(keyring)
        if self._driver is not None:
            self._check_url()  # still there? (else tooz retries for a minute)
        driver = self._start()
        try:
            lock = driver.get_lock(name.encode("utf-8"))
            # The lock counts as held only if the acquisition said so before
            # it was given up; one that succeeds later is released at once.
            acquired = self._bounded(
                "waiting for the lock of keyring %r" % keyring,
                lambda: lock.acquire(blocking=True, timeout=self.lock_timeout),
                self.lock_timeout + ANSWER_MARGIN,
                late=lambda got: got and self._release(lock, name),
                probe=True)
        except (tooz.ToozError, OSError) as exc:
            raise self._fail("is unreachable", exc) from None
        if not acquired:
            raise CoordinationError(
                "timed out after %gs waiting for the lock of keyring %r on %s;"
                " no keyring state was changed"
                % (self.lock_timeout, keyring, redact(self.backend_url)))
        LOG.debug("acquired lock %s on %s", name, redact(self.backend_url))
        try:
            yield
        finally:
            self._release(lock, name)

    def _release(self, lock, name):
        import tooz
        try:
            self._bounded("releasing the lock", lock.release,
                          PROBE_TIMEOUT + ANSWER_MARGIN, before_change=False)
        except (tooz.ToozError, OSError, CoordinationError) as exc:
            # The change (if any) is done; a lock we failed to release
            # expires (redis) or dies with the process (file).
            LOG.warning("releasing lock %s on %s failed: %s", name,
                        redact(self.backend_url), exc)


class NoCoordination:
    """A stand-in that takes no lock: the key store's own serialisation only.

    For library callers that knowingly run without a coordination backend;
    racing rotations are then repaired by the keyring's deterministic rule.
    """

    backend_url = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def stop(self):
        return None

    @contextlib.contextmanager
    def lock(self, keyring):
        lock_name(keyring)
        yield
