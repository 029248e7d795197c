"""Barbican going away: clear errors, warm caches keep sealing, recovery
without restarting the agent, and failed rotations that leave nothing
half-done.
"""

import http.client
import http.server
import socket
import threading
import time
import urllib.parse

import pytest

from sealedmeta import exceptions
from sealedmeta.sealer import Sealer
from tests import tries

CTX = {"backup_id": "b-outage"}
META = {"k": "v"}


def _assert_clean(message, bk, token=None):
    for secret in bk.secrets():
        assert secret not in message
    if token:
        assert token not in message
    assert "X-Auth-Token" not in message and "Traceback" not in message


# Agent X's cache_ttl: Barbican must stop and X seal 20 times inside it; a
# try where that took longer is run again with a longer one.
X_TTLS = (10, 40, 160)


def test_agent_survives_a_barbican_restart(barbican_keystone, agents, open_store,
                                           ring_name):
    tries.until_conclusive(
        lambda ttl, attempt: _survives_a_restart(
            barbican_keystone, agents, open_store,
            "%s-%d" % (ring_name, attempt), ttl, attempt),
        X_TTLS)


def _survives_a_restart(bk, agents, open_store, ring_name, ttl, attempt):
    url = bk.barbican_url
    store = open_store(bk.conf_path)
    store.create_keyring(ring_name)
    x = agents.start("X%d" % attempt, bk.conf_path, ring_name, cache_ttl=ttl,
                     refresh_interval=0.5)
    y = agents.start("Y%d" % attempt, bk.conf_path, ring_name)
    e1 = x.ok("seal", metadata=META, context=CTX)
    token = x.ok("token")["token"]
    assert token

    x.ok("refresh")
    assert store.rotate(ring_name).number == 2
    e2 = y.ok("seal", metadata=META, context=CTX)   # Y's first read: sees v2
    assert e2["version"] == 2

    bk.stop(only="barbican")
    try:
        assert bk.status()[0] != 0
        # A warm cache seals with no request at all: Barbican is not needed.
        for _ in range(20):
            r = x.call("seal", metadata=META, context=CTX)
            if r["age"] >= ttl:
                raise tries.Inconclusive(
                    "stopping Barbican and sealing took longer than X's"
                    " cache_ttl of %ss: %r" % (ttl, r))
            assert (r.get("error"), r["version"], r["loads"]) == (None, 1, 0), r
        r = x.call("open", envelope=e1["envelope"], context=CTX)
        if r["age"] >= ttl:
            raise tries.Inconclusive("X's cache_ttl of %ss passed: %r" % (ttl, r))
        assert (r.get("error"), r.get("metadata")) == (None, META), r

        # An envelope under a version X has not seen needs Barbican.
        r = x.call("open", envelope=e2["envelope"], context=CTX)
        print("\n%s (%.2fs)" % (r.get("message"), r["seconds"]))
        assert r["error"] == "KeyStoreError", r
        message = r["message"]
        assert message.startswith("Barbican at %s, " % url), message
        assert "cannot connect" in message and "barbican_endpoint" in message
        assert ring_name in message
        _assert_clean(message, bk, token)
        assert r["seconds"] < 5, r

        # Once the cache has expired, sealing needs Barbican too.
        time.sleep(max(0, x.cache_ttl - r["age"] - r["seconds"]) + 0.5)
        r = x.call("seal", metadata=META, context=CTX)
        assert r["error"] == "KeyStoreError" and url in r["message"], r
        _assert_clean(r["message"], bk, token)
    finally:
        bk.start()
    assert bk.barbican_url == url

    # The same process, not restarted, works again.
    time.sleep(0.6)     # past refresh_interval
    assert x.ok("open", envelope=e2["envelope"], context=CTX)["metadata"] == META
    r = x.ok("seal", metadata=META, context=CTX)
    assert r["version"] == 2
    assert y.ok("open", envelope=r["envelope"], context=CTX)["metadata"] == META
    assert x.ready["pid"] == x.pid


def test_rotation_while_barbican_is_down(barbican, open_store, sealedmeta_cli,
                                         ring_name):
    url = barbican.barbican_url
    store = open_store(barbican.conf_path)
    store.create_keyring(ring_name)
    assert store.rotate(ring_name).number == 2
    sealer = Sealer(store, keyring=ring_name)
    env = sealer.seal(META, CTX)

    barbican.stop(only="barbican")
    try:
        with pytest.raises(exceptions.KeyStoreError) as info:
            store.rotate(ring_name)
        message = str(info.value)
        print("\n" + message)
        assert url in message and "cannot connect" in message
        _assert_clean(message, barbican)
        proc = sealedmeta_cli.run("--config-file", barbican.conf_path, "rekey",
                                  ring_name, check=False)
        print(proc.stderr.strip())
        assert proc.returncode != 0
        assert url in proc.stderr and "cannot connect" in proc.stderr
        assert "Traceback" not in proc.stderr
        _assert_clean(proc.stderr, barbican)
        # Sealing with the warm cache still works.
        assert sealer.open(sealer.seal(META, CTX), CTX) == META
    finally:
        barbican.start()

    ring = open_store(barbican.conf_path).get_keyring(ring_name)
    assert [(v.number, v.state.value) for v in ring.versions] == [
        (1, "decrypt-only"), (2, "active")]
    assert store.rotate(ring_name).number == 3
    assert Sealer(open_store(barbican.conf_path), keyring=ring_name).open(env, CTX) == META


# ---------------------------------------------------------------------------
# A rotation cut at every one of its requests

class FaultProxy:
    """HTTP proxy to Barbican on 127.0.0.1 that "goes down" at request N.

    mode "drop": request N and all later ones never reach Barbican (the
    connection is closed without an answer). mode "lost": request N reaches
    Barbican and is carried out, but its answer is lost; later ones are
    dropped. Barbican itself keeps running, so the state can be checked.
    """

    def __init__(self, target):
        parts = urllib.parse.urlsplit(target)
        self.target = (parts.hostname, parts.port)
        self.lock = threading.Lock()
        self.count = 0
        self.fail_from = None
        self.mode = "drop"
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                # Headers and body go out in two writes: without this, Nagle
                # and delayed ACKs add 40 ms to every answer.
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, *args):
                pass

            def handle_one(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.count += 1
                    number = proxy.count
                fail = proxy.fail_from is not None and number >= proxy.fail_from
                if fail and not (proxy.mode == "lost" and number == proxy.fail_from):
                    self.close_connection = True
                    return
                conn = http.client.HTTPConnection(*proxy.target, timeout=30)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "connection",
                                                "content-length")}
                conn.request(self.command, self.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                conn.close()
                if fail:
                    self.close_connection = True
                    return
                self.send_response(resp.status)
                for key, value in resp.getheaders():
                    if key.lower() not in ("connection", "content-length",
                                           "transfer-encoding", "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = handle_one

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    def arm(self, fail_from, mode):
        with self.lock:
            self.count = 0
            self.fail_from = fail_from
            self.mode = mode

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(barbican_noauth):
    proxy = FaultProxy(barbican_noauth.barbican_url)
    yield proxy
    proxy.close()


def test_rotation_cut_at_every_request_leaves_a_usable_keyring(
        barbican_noauth, fault_proxy, open_store, tmp_path, ring_name):
    bk = barbican_noauth
    direct = open_store(bk.conf_path)
    proxied_conf = bk.write_conf(tmp_path / "proxied.conf", {
        ("barbican", "barbican_endpoint"): fault_proxy.url,
        ("barbican_store", "read_retries"): 0})

    def prepared(name):
        """Keyring *name*: v1 decrypt-only, v2 active, an envelope under each."""
        direct.create_keyring(name)
        sealer = Sealer(direct, keyring=name)
        first = sealer.seal(META, dict(CTX, v="1"))
        direct.rotate(name)
        sealer.refresh()
        return [(first, dict(CTX, v="1")), (sealer.seal(META, dict(CTX, v="2")),
                                            dict(CTX, v="2"))]

    # How many requests a whole rotation (by a fresh process) makes.
    name = ring_name + "-dry"
    prepared(name)
    fault_proxy.arm(None, "drop")
    assert open_store(proxied_conf).rotate(name).number == 3
    total = fault_proxy.count
    print("\na rotation by a fresh store makes %d requests" % total)
    assert total > 5

    outcomes = []
    for mode in ("drop", "lost"):
        for cut in range(1, total + 1):
            name = "%s-%s%d" % (ring_name[:50], mode[0], cut)
            envelopes = prepared(name)
            fault_proxy.arm(cut, mode)
            try:
                open_store(proxied_conf).rotate(name)
                outcome = "done"
            except exceptions.KeyStoreError as exc:
                assert fault_proxy.url in str(exc), str(exc)
                outcome = "failed"
            fault_proxy.arm(None, "drop")

            fresh = open_store(bk.conf_path)
            ring = fresh.get_keyring(name)      # consistent: one active
            states = [(v.number, v.state.value) for v in ring.versions]
            if states == [(1, "decrypt-only"), (2, "active")]:
                result = "unchanged"
            else:
                # Cut after the new version was made active: it won, the
                # previous one is decrypt-only.
                assert states == [(1, "decrypt-only"), (2, "decrypt-only"),
                                  (3, "active")], (mode, cut, states)
                result = "rotated"
            if outcome == "done":
                assert result == "rotated", (mode, cut, states)
            outcomes.append((mode, cut, outcome, result))
            for env, ctx in envelopes:
                assert Sealer(fresh, keyring=name).open(env, ctx) == META, (mode, cut)
            # The next rotation works and leaves exactly one active version.
            new = fresh.rotate(name)
            ring = fresh.get_keyring(name)
            assert ring.active == new and new.number == ring.versions[-1].number
            sealer = Sealer(fresh, keyring=name)
            for env, ctx in envelopes + [(sealer.seal(META, CTX), CTX)]:
                assert sealer.open(env, ctx) == META, (mode, cut)
    print("cut outcomes (mode, request, rotate(), keyring):")
    for item in outcomes:
        print("  %s %2d %-6s %s" % item)
