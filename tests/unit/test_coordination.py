"""sealedmeta.coordination and sealedmeta.admin over the file:// backend."""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

import pytest
from oslo_config import cfg

from sealedmeta import FileKeyStore
from sealedmeta import admin
from sealedmeta import conf as sm_conf
from sealedmeta import coordination
from sealedmeta import exceptions
from sealedmeta import keyring as kr

RING = "cinder-backup"


@pytest.fixture
def coord(tmp_path):
    with coordination.Coordinator("file://%s" % (tmp_path / "locks"),
                                  lock_timeout=5) as c:
        yield c


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Recorder:
    """Store proxy and coordinator in one, recording the order of events."""

    def __init__(self, store):
        self.store = store
        self.events = []

    def __getattr__(self, name):
        attr = getattr(self.store, name)

        def call(*args, **kwargs):
            self.events.append(name)
            return attr(*args, **kwargs)
        return call

    @contextlib.contextmanager
    def lock(self, keyring):
        self.events.append("lock")
        yield
        self.events.append("unlock")


class FailingCoordinator:
    @contextlib.contextmanager
    def lock(self, keyring):
        raise coordination.CoordinationError("backend down")
        yield  # pragma: no cover


# -- the lock itself -----------------------------------------------------------

def test_lock_excludes_other_members(tmp_path, coord):
    other = coordination.Coordinator(coord.backend_url, lock_timeout=0.3)
    try:
        with coord.lock(RING):
            t0 = time.monotonic()
            with pytest.raises(coordination.CoordinationError,
                               match="timed out after 0.3s waiting for the lock"
                                     " of keyring 'cinder-backup'"):
                with other.lock(RING):
                    pass
            assert time.monotonic() - t0 >= 0.29
            with other.lock("another-ring"):  # one lock per keyring
                pass
        with other.lock(RING):  # released
            pass
    finally:
        other.stop()


def test_lock_serialises_threads_of_two_coordinators(tmp_path, coord):
    other = coordination.Coordinator(coord.backend_url, lock_timeout=10)
    inside = []
    overlaps = []

    def work(c):
        for _ in range(20):
            with c.lock(RING):
                inside.append(1)
                if len(inside) > 1:
                    overlaps.append(1)
                time.sleep(0.001)
                inside.pop()

    threads = [threading.Thread(target=work, args=(c,)) for c in (coord, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.stop()
    assert overlaps == []


def test_unknown_scheme_is_one_clear_error():
    with pytest.raises(coordination.CoordinationError,
                       match="unknown scheme 'nosuch'.*no keyring state was changed"):
        with coordination.Coordinator("nosuch://x").lock(RING):
            pass


def test_unreachable_redis_fails_fast():
    c = coordination.Coordinator("redis://127.0.0.1:%d" % closed_port())
    t0 = time.monotonic()
    with pytest.raises(coordination.CoordinationError, match="is unreachable"):
        with c.lock(RING):
            pass
    assert time.monotonic() - t0 < coordination.PROBE_TIMEOUT


def test_file_backend_that_cannot_be_created(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    c = coordination.Coordinator("file://%s/locks" % blocker)
    with pytest.raises(coordination.CoordinationError,
                       match="is unreachable.*Not a directory"):
        with c.lock(RING):
            pass


# Generous: the point is "gives up instead of hanging", not its speed.
GIVE_UP_BOUND = 15.0

HOLD_SRC = """
import sys
from sealedmeta import coordination
c = coordination.Coordinator(sys.argv[1], lock_timeout=5)
with c.lock(sys.argv[2]):
    print("held")
c.stop()
"""


def _coordination_threads():
    return [t for t in threading.enumerate()
            if t.name.startswith("sealedmeta-coordination")]


def test_file_backend_that_stops_answering_is_given_up(tmp_path, store, ring):
    """A file lock on a hung file system blocks in the kernel: here the lock
    file is a FIFO, whose open() blocks until a reader comes. rekey gives up
    with one clear error within lock_timeout (plus a margin) and changes
    nothing. When the acquisition it gave up finally gets the lock, the lock
    is released at once (it counts as not held): another process gets it."""
    locks = tmp_path / "locks"
    url = "file://%s" % locks
    coord = coordination.Coordinator(url, lock_timeout=1)
    with coord.lock(RING):      # the backend works
        pass
    fifo = str(locks / coordination.lock_name(RING))
    os.unlink(fifo)
    os.mkfifo(fifo)
    before = store.get_keyring(RING)
    outcome = {}

    def rekey():
        t0 = time.monotonic()
        try:
            admin.rekey(store, RING, coord)
            outcome["rotated"] = True
        except coordination.CoordinationError as exc:
            outcome["error"] = str(exc)
        outcome["seconds"] = time.monotonic() - t0

    waiter = threading.Thread(target=rekey, daemon=True)
    waiter.start()
    waiter.join(coord.lock_timeout + GIVE_UP_BOUND)
    hanging = waiter.is_alive()
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # unblocks the open()
    try:
        assert not hanging, "rekey still waiting %gs after lock_timeout" % (
            GIVE_UP_BOUND)
        print("\nfile backend not answering: rekey gave up after %.2fs"
              " (lock_timeout %gs)" % (outcome["seconds"], coord.lock_timeout))
        assert outcome == {"error": (
            "coordination backend %s did not answer within %gs (waiting for"
            " the lock of keyring %r); no keyring state was changed"
            % (url, coord.lock_timeout + coordination.ANSWER_MARGIN, RING)),
            "seconds": outcome["seconds"]}
        assert store.get_keyring(RING) == before
        # The given-up acquisition goes through now, and lets go at once.
        deadline = time.monotonic() + 300   # a hang guard
        while _coordination_threads() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _coordination_threads()
        proc = subprocess.run([sys.executable, "-c", HOLD_SRC, url, RING],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=60)
        assert (proc.returncode, proc.stdout) == (0, "held\n"), proc.stderr
    finally:
        os.close(reader)
    os.unlink(fifo)
    assert admin.rekey(store, RING, coord).version.number == 2
    coord.stop()


def test_redact_hides_the_password():
    assert coordination.redact("redis://u:secret@h:1?db=2") == "redis://u:***@h:1?db=2"
    assert coordination.redact("redis://h:1") == "redis://h:1"
    c = coordination.Coordinator("redis://:secret@127.0.0.1:%d" % closed_port())
    with pytest.raises(coordination.CoordinationError) as info:
        with c.lock(RING):
            pass
    assert "secret" not in str(info.value)


def test_bad_keyring_name_is_refused(coord):
    with pytest.raises(exceptions.InvalidMetadata):
        with coord.lock("../etc"):
            pass


def test_default_backend_url_is_next_to_the_key_repository(tmp_path):
    conf = cfg.ConfigOpts()
    sm_conf.register_opts(conf)
    conf(args=[])
    conf.set_override("key_repository", str(tmp_path / "state" / "keys"),
                      group="sealedmeta")
    assert sm_conf.backend_url(conf) == "file://%s" % (tmp_path / "state" / "locks")
    conf.set_override("backend_url", "redis://h:1", group="coordination")
    assert sm_conf.backend_url(conf) == "redis://h:1"
    c = coordination.Coordinator.from_config(conf)
    assert c.backend_url == "redis://h:1" and c.lock_timeout == 30.0


# -- admin: every change under the lock, on a fresh read ----------------------

def test_rekey_locks_then_rereads_then_rotates(store, ring):
    rec = Recorder(store)
    result = admin.rekey(rec, RING, rec)
    # What interrupted rotations left is removed under the same lock.
    assert rec.events == ["lock", "get_keyring", "rotate", "leftovers", "unlock"]
    assert (result.previous.number, result.version.number) == (1, 2)
    states = {v.number: v.state for v in store.get_keyring(RING).versions}
    assert states == {1: kr.KeyState.DECRYPT_ONLY, 2: kr.KeyState.ACTIVE}


class DroppingStore(FileKeyStore):
    """A real file store whose rotate() fails the way a lost connection
    does: *when* "after" -- once the rotation's activation write took
    effect (the answer is lost), "before" -- before it writes anything.
    With *unreadable_after*, reading the keyring fails too once it has."""

    def __init__(self, path, when, unreadable_after=False):
        super().__init__(path)
        self.when = when
        self.unreadable_after = unreadable_after
        self.dropped = False

    def rotate(self, name):
        if self.when == "after":
            super().rotate(name)
        self.dropped = True
        raise exceptions.KeyStoreError("connection to the key store lost")

    def get_keyring(self, name):
        if self.dropped and self.unreadable_after:
            raise exceptions.KeyStoreError("key store unreachable")
        return super().get_keyring(name)


def test_rekey_that_failed_after_taking_effect_says_so(store, ring, coord):
    store.rotate(RING)
    dropping = DroppingStore(store.path, "after")
    with pytest.raises(exceptions.KeyStoreError) as info:
        admin.rekey(dropping, RING, coord)
    ring_now = store.get_keyring(RING)
    assert ring_now.active.number == 3
    assert str(info.value) == (
        "rekey of keyring 'cinder-backup' failed (connection to the key store"
        " lost); read again, the keyring shows that the rotation to version 3"
        " did take effect: version 3 (key id %s) is active, version 2 is"
        " decrypt-only; do not run rekey again" % ring_now.active.key_id.hex())
    assert info.value.took_effect is True and info.value.ring == ring_now


def test_rekey_that_failed_before_writing_says_nothing_changed(store, ring,
                                                               coord):
    store.rotate(RING)
    before = store.get_keyring(RING)
    with pytest.raises(exceptions.KeyStoreError) as info:
        admin.rekey(DroppingStore(store.path, "before"), RING, coord)
    assert str(info.value) == (
        "rekey of keyring 'cinder-backup' failed (connection to the key store"
        " lost); read again, the keyring shows that nothing changed: version 2"
        " is still active")
    assert info.value.took_effect is False and info.value.ring == before
    assert store.get_keyring(RING) == before


def test_rekey_that_failed_and_cannot_reread_says_unknown(store, ring, coord):
    dropping = DroppingStore(store.path, "after", unreadable_after=True)
    with pytest.raises(exceptions.KeyStoreError) as info:
        admin.rekey(dropping, RING, coord)
    assert str(info.value) == (
        "rekey of keyring 'cinder-backup' failed (connection to the key store"
        " lost); reading the keyring again failed too (key store unreachable),"
        " so whether the rotation took effect is unknown (version 1 was active"
        " before): check with 'sealedmeta keyring show cinder-backup' before"
        " running rekey again")
    assert info.value.took_effect is None and info.value.ring is None


class HalfDestroyingStore(DroppingStore):
    """A DroppingStore whose destroy (not its rotation) fails the way a cut
    connection does: *when* "after" -- once the version reads destroyed
    (material left), "before" -- before anything changed. finish_destroy
    records its calls."""

    def __init__(self, path, when, unreadable_after=False):
        super().__init__(path, when, unreadable_after)
        self.finished = []

    def set_state(self, name, version, state):
        if state != "destroyed":
            return super().set_state(name, version, state)
        if self.when == "after":
            super().set_state(name, version, state)
        self.dropped = True
        raise exceptions.KeyStoreError("connection to the key store lost")

    def finish_destroy(self, name, version):
        self.finished.append(version)
        return self.get_keyring(name).version(version), True


@pytest.mark.parametrize("when,unreadable,destroyed,tail", [
    ("after", False, True,
     "read again, the keyring shows version 1 destroyed (no envelope opens"
     " under it) but its key material may be left in the key store: run"
     " 'sealedmeta key destroy cinder-backup 1' again to finish"),
    ("before", False, False,
     "read again, the keyring shows version 1 still retired: nothing changed"),
    ("after", True, None,
     "reading the keyring again failed too (key store unreachable): check"
     " with 'sealedmeta keyring show cinder-backup', then run 'sealedmeta key"
     " destroy cinder-backup 1' again"),
])
def test_destroy_that_failed_says_in_which_state_it_left_the_version(
        store, ring, coord, when, unreadable, destroyed, tail):
    store.rotate(RING)
    store.set_state(RING, 1, "retired")
    before = store.get_keyring(RING)
    failing = HalfDestroyingStore(store.path, when, unreadable)
    with pytest.raises(admin.DestroyFailed) as info:
        admin.destroy(failing, RING, 1, coord, force=True, settle=0)
    assert str(info.value) == (
        "destroy of version 1 of keyring 'cinder-backup' failed (connection to"
        " the key store lost); " + tail)
    assert info.value.destroyed is destroyed
    assert isinstance(info.value, exceptions.KeyStoreError)
    if when == "before":
        assert store.get_keyring(RING) == before
        return
    # Again: no scan needed, the store is asked to finish, under the lock.
    rec = Recorder(HalfDestroyingStore(store.path, when))
    result = admin.destroy(rec, RING, 1, rec, settle=0)
    assert rec.events == ["get_keyring", "lock", "finish_destroy", "unlock"]
    assert rec.store.finished == [1]
    assert (result.version.state, result.finished, result.scanned) == (
        kr.KeyState.DESTROYED, True, None)


def test_destroy_of_a_destroyed_version_finishes_and_is_idempotent(store, ring,
                                                                   coord):
    store.rotate(RING)
    store.set_state(RING, 1, "retired")
    first = admin.destroy(store, RING, 1, coord, force=True, settle=0)
    assert first.finished is None
    for _ in range(2):
        again = admin.destroy(store, RING, 1, coord, settle=0)   # no scan, no force
        assert (again.version, again.finished) == (first.version, False)
    with pytest.raises(exceptions.InvalidTransition, match="is not destroyed"):
        store.finish_destroy(RING, 2)


def test_rekey_removes_leftovers_under_the_lock_and_never_fails_for_them(
        store, ring, coord, caplog):
    from sealedmeta.keystores import base

    class Leaving(FileKeyStore):
        def __init__(self, path, result):
            super().__init__(path)
            self.result = result
            self.calls = []

        def leftovers(self, name, remove=False, min_age=None):
            self.calls.append((name, remove, min_age))
            if isinstance(self.result, Exception):
                raise self.result
            return self.result

    found = [base.Leftover("u1", "p:cinder-backup:v3", "pending version", 3,
                           7200.0, "removed"),
             base.Leftover("u2", "p:cinder-backup:v3:sign", "signing key", 3,
                           7200.0, "removed"),
             base.Leftover("u3", "p:cinder-backup:v4", "pending version", 4,
                           5.0, "kept: younger than 3600s")]
    caplog.set_level("INFO", logger="sealedmeta.admin")
    leaving = Leaving(store.path, found)
    result = admin.rekey(leaving, RING, coord)
    assert leaving.calls == [(RING, True, None)]
    assert result.leftovers == tuple(found) and result.version.number == 2
    assert ("keyring cinder-backup: removed 2 secrets left by interrupted"
            " rotations: p:cinder-backup:v3 (pending version, u1),"
            " p:cinder-backup:v3:sign (signing key, u2)") in caplog.text
    assert ("keyring cinder-backup: 1 more secret no version uses; see"
            " 'sealedmeta keyring show cinder-backup --leftovers'") in caplog.text
    # Looking for leftovers fails: the rotation stands, a warning says so.
    failing = Leaving(store.path, exceptions.KeyStoreError("Barbican is down"))
    result = admin.rekey(failing, RING, coord)
    assert result.version.number == 3 and result.leftovers == ()
    assert store.get_keyring(RING).active.number == 3
    assert ("keyring cinder-backup: could not look for secrets left by"
            " interrupted rotations (Barbican is down); the next rekey tries"
            " again") in caplog.text


def test_state_changes_lock_then_reread(store, ring):
    store.rotate(RING)
    for func, state in ((admin.retire, "retired"),
                        (admin.reinstate, "decrypt-only"),
                        (admin.retire, "retired")):
        rec = Recorder(store)
        kwargs = {"settle": 0} if func is admin.retire else {}
        assert func(rec, RING, 1, rec, **kwargs).state.value == state
        assert rec.events == ["lock", "get_keyring", "set_state", "unlock"]
    rec = Recorder(store)
    admin.destroy(rec, RING, 1, rec, force=True, settle=0)
    assert rec.events == ["get_keyring", "lock", "get_keyring", "set_state",
                          "unlock"]
    assert store.get_keyring(RING).version(1).state is kr.KeyState.DESTROYED


def test_create_keyring_under_the_lock(store):
    rec = Recorder(store)
    ring = admin.create_keyring(rec, "new-ring", rec)
    assert rec.events == ["lock", "get_keyring", "create_keyring", "unlock"]
    assert ring.active.number == 1
    with pytest.raises(exceptions.KeyringExists):
        admin.create_keyring(store, "new-ring", coordination.NoCoordination())


def test_unreachable_coordinator_changes_nothing(store, ring):
    store.rotate(RING)
    before = store.get_keyring(RING)
    for call in (lambda: admin.rekey(store, RING, FailingCoordinator()),
                 lambda: admin.retire(store, RING, 1, FailingCoordinator(), settle=0),
                 lambda: admin.create_keyring(store, "other", FailingCoordinator())):
        with pytest.raises(coordination.CoordinationError):
            call()
    assert store.get_keyring(RING) == before
    assert store.list_keyrings() == [RING]


def test_transition_decided_on_the_state_read_under_the_lock(store, ring):
    """Another admin reinstates the version between the scan and the lock:
    the destruction is refused on the fresh state."""
    store.rotate(RING)
    store.set_state(RING, 1, "retired")

    class Meddling:
        @contextlib.contextmanager
        def lock(self, keyring):
            store.set_state(RING, 1, "decrypt-only")
            yield

    with pytest.raises(exceptions.InvalidTransition,
                       match="cannot go from decrypt-only to destroyed"):
        admin.destroy(store, RING, 1, Meddling(), force=True, settle=0)
    assert store.get_keyring(RING).version(1).state is kr.KeyState.DECRYPT_ONLY


def test_invalid_transitions(store, ring, coord):
    store.rotate(RING)
    cases = [
        (lambda: admin.retire(store, RING, 2, coord, settle=0), "active version; rekey first"),
        (lambda: admin.retire(store, RING, 7, coord, settle=0), "has no version 7"),
        (lambda: admin.reinstate(store, RING, 1, coord),
         "already decrypt-only"),
        (lambda: admin.destroy(store, RING, 1, coord, force=True, settle=0),
         "cannot go from decrypt-only to destroyed"),
        (lambda: admin.destroy(store, RING, 2, coord, force=True, settle=0),
         "active version"),
        (lambda: admin.retire(store, RING, 0, coord, settle=0), "bad version 0"),
        (lambda: admin.retire(store, RING, "1", coord, settle=0), "bad version '1'"),
    ]
    before = store.get_keyring(RING)
    for call, message in cases:
        with pytest.raises(exceptions.InvalidTransition, match=message):
            call()
    assert store.get_keyring(RING) == before
    with pytest.raises(exceptions.NoSuchKeyring):
        admin.rekey(store, "missing", coord)


def test_destroy_needs_a_scan_or_force(store, ring, coord, tmp_path):
    store.rotate(RING)
    store.set_state(RING, 1, "retired")
    with pytest.raises(admin.DestroyRefused):
        admin.destroy(store, RING, 1, coord, settle=0)
    assert store.get_keyring(RING).version(1).state is kr.KeyState.RETIRED
    empty = tmp_path / "empty"
    empty.mkdir()
    result = admin.destroy(store, RING, 1, coord, scan=[str(empty)], settle=0)
    assert (result.version.state, result.scanned, result.in_use) == (
        kr.KeyState.DESTROYED, 0, 0)


def test_destroy_refused_while_envelopes_are_under_the_version(
        store, ring, coord, tmp_path):
    from sealedmeta import Sealer
    sealer = Sealer(store, keyring=RING, cache_ttl=0)
    backups = tmp_path / "backups"
    backups.mkdir()
    for i in range(12):
        (backups / ("old-%02d" % i)).write_bytes(
            sealer.seal({"i": i}, {"backup_id": str(i)}))
    store.rotate(RING)
    (backups / "new").write_bytes(sealer.seal({}, {"backup_id": "new"}))
    store.set_state(RING, 1, "retired")
    with pytest.raises(admin.VersionInUse) as info:
        admin.destroy(store, RING, 1, coord, scan=[str(backups)], settle=0)
    message = str(info.value)
    assert "found 12 envelopes under it" in message
    assert message.count(str(backups)) == admin.MAX_PATHS_SHOWN
    assert message.endswith(", ...; rewrap them first")
    assert len(info.value.paths) == 12
    assert store.get_keyring(RING).version(1).state is kr.KeyState.RETIRED
    # Forced: destroyed all the same, and the count is reported.
    result = admin.destroy(store, RING, 1, coord, scan=[str(backups)], force=True, settle=0)
    assert (result.in_use, result.scanned, result.forced) == (12, 13, True)
    assert store.get_keyring(RING).version(1).state is kr.KeyState.DESTROYED


def test_destroy_refused_when_the_scan_cannot_read_a_file(store, ring, coord):
    store.rotate(RING)
    store.set_state(RING, 1, "retired")
    # Tests run as root, so no chmod makes a file unreadable; reading
    # /proc/self/mem at offset 0 fails with EIO for every user.
    with pytest.raises(admin.VersionInUse,
                       match="could not read 1 file.*/proc/self/mem"):
        admin.destroy(store, RING, 1, coord, scan=["/proc/self/mem"], settle=0)
    assert store.get_keyring(RING).version(1).state is kr.KeyState.RETIRED
