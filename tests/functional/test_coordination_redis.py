"""Coordination over a REAL redis-server on 127.0.0.1 (started by
tools/dev-redis; a server that cannot start FAILS the tests with the tool's
output, nothing is skipped)."""

import json
import os
import signal
import sys
import threading
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if TOP not in sys.path:  # tests/functional is not a package: reach tests.sm_cli
    sys.path.insert(0, TOP)

from sealedmeta import FileKeyStore  # noqa: E402
from sealedmeta import admin  # noqa: E402
from sealedmeta import coordination  # noqa: E402
from sealedmeta import keyring as kr  # noqa: E402

from tests import sm_cli  # noqa: E402
from tests.dev_servers import RedisServer  # noqa: E402

RING = "kr"


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_config(tmp_path, redis_server):
    return sm_cli.write_config(tmp_path / "redis.conf", coordination={
        "backend_url": redis_server.url, "lock_timeout": "60"})


def one_line(err):
    lines = err.splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_rekey_race_on_redis(tmp_path, redis_config):
    """8 concurrent `sealedmeta rekey` processes locking through redis while
    two processes seal: one active version, contiguous numbers, everything
    sealed meanwhile opens."""
    result = sm_cli.rekey_race(tmp_path, config=redis_config, processes=8)
    assert result["versions"] == list(range(2, 10))
    print("\nrekey race (%s): %r" % ("redis", result))


def test_the_cli_locks_in_redis(tmp_path, redis_server):
    """A lock held in redis blocks the CLI's state changes (configured for
    redis); the same commands configured for another backend pass: the lock
    really lives in redis."""
    repo = tmp_path / "keys"
    store = FileKeyStore(str(repo))
    store.create_keyring(RING)
    store.rotate(RING)
    config = sm_cli.write_config(tmp_path / "c.conf", coordination={
        "backend_url": redis_server.url, "lock_timeout": "0.5"})
    before = store.get_keyring(RING)
    # A lock taken for each command: tooz's redis lock lapses after its own
    # 30 s without a heartbeat, which three commands on a loaded machine
    # can outlast.
    for argv in (["rekey", RING], ["key", "retire", RING, "1"],
                 ["keyring", "create", RING]):
        with coordination.Coordinator(redis_server.url) as held, held.lock(RING):
            code, out, err = sm_cli.run(argv, tmp_path, repo, config)
        assert code == 2, err
        assert "timed out after 0.5s waiting for the lock of keyring 'kr'" \
            in one_line(err)
    assert store.get_keyring(RING) == before
    with coordination.Coordinator(redis_server.url) as held, held.lock(RING):
        code, out, err = sm_cli.run(["rekey", RING, "-f", "json"], tmp_path, repo)
        assert code == 0, err  # default file:// backend: not blocked
    code, out, err = sm_cli.run(["rekey", RING, "-f", "json"], tmp_path, repo, config)
    assert code == 0, err
    assert json.loads(out)["version"] == 4


def test_redis_down_refuses_state_changes(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    repo = tmp_path / "keys"
    store = FileKeyStore(str(repo))
    store.create_keyring(RING)
    store.rotate(RING)
    config = sm_cli.write_config(tmp_path / "c.conf", coordination={
        "backend_url": server.url})
    t0 = time.monotonic()
    code, out, err = sm_cli.run(["rekey", RING], tmp_path, repo, config)
    assert code == 0, err
    # A refused command must not wait for the backend the way tooz's redis
    # driver alone would (about a minute of retries): it may take what a
    # rekey with the backend up took on this machine just now, three times
    # over, plus the probe's timeout.
    bound = 3 * (time.monotonic() - t0) + coordination.PROBE_TIMEOUT
    # A coordinator connected before the server goes away.
    live = coordination.Coordinator(server.url, lock_timeout=2)
    with live.lock(RING):
        pass
    server.stop()
    before = store.get_keyring(RING)
    with pytest.raises(coordination.CoordinationError, match="unreachable"):
        with live.lock(RING):
            pass
    live.stop()
    for argv in (["rekey", RING], ["key", "retire", RING, "1"],
                 ["keyring", "create", "another"]):
        t0 = time.monotonic()
        code, out, err = sm_cli.run(argv, tmp_path, repo, config)
        line = one_line(err)
        assert code == 2 and out == ""
        assert "coordination backend %s is unreachable" % server.url in line
        assert "no keyring state was changed" in line
        assert time.monotonic() - t0 < bound, (argv, bound)
    assert store.get_keyring(RING) == before
    assert store.list_keyrings() == [RING]
    assert before.active.number == 3
    assert before.version(1).state is kr.KeyState.DECRYPT_ONLY


@pytest.mark.parametrize("how", ["SIGKILL", "SIGSTOP"])
def test_lock_wait_gives_up_when_redis_dies(tmp_path, how):
    """redis-server is SIGKILLed (gone: connections refused) or SIGSTOPped
    (hung: connections accepted, never answered) while rekey waits for a
    lock another member holds. The wait ends with one clear error within
    lock_timeout plus a generous margin (tooz's redis driver alone retries
    for about a minute), and the keyring is unchanged. A hung redis that
    comes back does not leave the given-up acquisition holding the lock."""
    lock_timeout = 10
    bound = lock_timeout + 15   # "gives up instead of hanging", not a speed test
    server = RedisServer(tmp_path / "redis").start()
    with open(os.path.join(server.dir, "redis.pid")) as handle:
        pid = int(handle.read())
    repo = tmp_path / "keys"
    store = FileKeyStore(str(repo))
    store.create_keyring(RING)
    before = store.get_keyring(RING)
    holder = coordination.Coordinator(server.url, lock_timeout=5)
    waiter = coordination.Coordinator(server.url, lock_timeout=lock_timeout)
    outcome = {}

    def rekey():
        try:
            outcome["result"] = admin.rekey(store, RING, waiter)
        except coordination.CoordinationError as exc:
            outcome["error"] = str(exc)
        outcome["at"] = time.monotonic()

    try:
        with holder.lock(RING):
            thread = threading.Thread(target=rekey, daemon=True)
            thread.start()
            time.sleep(2.0)           # connected, waiting for the lock
            assert thread.is_alive(), outcome
            os.kill(pid, getattr(signal, how))
            killed = time.monotonic()
            thread.join(bound + 60)   # never hang the suite
            hanging = thread.is_alive()
            if how == "SIGSTOP":
                os.kill(pid, signal.SIGCONT)
        if how == "SIGSTOP" and not hanging:
            # Back: the lock is free for another member (the given-up
            # acquisition, if it got it, let it go).
            other = coordination.Coordinator(server.url, lock_timeout=lock_timeout)
            with other.lock(RING):
                pass
            other.stop()
    finally:
        if how == "SIGSTOP":
            os.kill(pid, signal.SIGCONT)
        server.stop()                 # the tool's own cleanup
        holder.stop()
    assert not hanging, "still waiting %ds after redis died" % (bound + 60)
    gave_up = outcome["at"] - killed
    print("\nredis %s during the wait: refused after %.2fs (lock_timeout"
          " %ds): %s" % (how, gave_up, lock_timeout, outcome.get("error")))
    assert "result" not in outcome
    message = outcome["error"]
    assert "\n" not in message
    assert message.startswith("coordination backend %s " % server.url), message
    assert message.endswith("; no keyring state was changed"), message
    assert gave_up < bound, gave_up
    assert store.get_keyring(RING) == before
    waiter.stop()
