"""Destroys and rotations interrupted at each of their writes, against the
REAL Barbican (through :mod:`tests.reliability.proxy`, the loopback fault
proxy): reads always pass; the N-th write is dropped (never reaches
Barbican) or lost (Barbican acts, the answer never comes back), and every
later write is dropped too -- so the store's own best-effort cleanup fails
as it would after a cut connection or a kill.

* destroy of a signing keyring's version: whatever the cut, readers refuse
  the version, the error says whether it took effect, and running the same
  destroy again finishes the job: the version secret and its signing key
  are gone, the version stays known (tombstone, public key);
* rotation: the keyring stays usable; what the cut leaves is reported by
  the store's leftovers; removing them deletes exactly the secrets the
  container neither lists nor names, never one it does;
* a rotation that cannot activate within the claim window withdraws;
* a rotation in flight without a lock while ``rekey`` (under the lock)
  cleans up: its young, unlisted secrets are kept, and it completes.
"""

import threading
import time

import pytest

from sealedmeta import Sealer
from sealedmeta import admin
from sealedmeta import coordination
from sealedmeta import exceptions
from sealedmeta.keystores import barbican as barbican_store

from tests.reliability import crashkit
from tests.reliability import figures
from tests.reliability.conftest import unique_name
from tests.reliability.proxy import FaultProxy
from tests.reliability.test_barbican_faults import load

CTX = {"backup_id": "b-interrupted", "volume_id": "v-interrupted"}
META = {"glance": {"billing": "B-7"}}
UNLOCKED = coordination.NoCoordination()


@pytest.fixture
def rig(fast_barbican, tmp_path):
    """(Barbican, direct store, proxy, config of a store through the proxy)."""
    bk = fast_barbican
    direct = load(bk.conf_path)
    proxy = FaultProxy(bk.barbican_url)
    conf = bk.write_conf(tmp_path / "proxied.conf", {
        ("barbican", "barbican_endpoint"): proxy.url,
        ("barbican_store", "read_retries"): 0})
    yield bk, direct, proxy, conf
    proxy.close()
    direct.close()


def cut_writes(proxy, at, action):
    """Reads pass; writes 1..at-1 pass, write *at* gets *action*, later
    writes are dropped."""
    proxy.clear()
    proxy.add("pass", "GET")
    if at > 1:
        proxy.add("pass", times=at - 1)
    proxy.add(action, times=1)
    proxy.add("drop")


def writes_of(proxy, since):
    return ["%s %s" % (e.method, e.path) for e in proxy.entries(since=since)
            if e.method != "GET"]


def one_line(exc, proxy_url):
    message = str(exc)
    assert isinstance(exc, exceptions.KeyStoreError), type(exc)
    assert "\n" not in message and proxy_url in message, message
    return message


def named_secrets(client, name):
    """{uuid} of every secret named like the store names keyring *name*'s."""
    prefix = "sealedmeta:%s:v" % name
    page = client.client.get("secrets", params={"name": prefix + "%",
                                                "limit": 100})
    assert page["total"] <= 100
    return {s["secret_ref"].rsplit("/", 1)[-1] for s in page["secrets"]
            if s["name"].startswith(prefix)}


def container_view(client, name):
    """({uuids listed}, {signing key uuids the listed secrets name})."""
    page = client.client.get("containers", params={"name": "sealedmeta:" + name})
    doc = [c for c in page["containers"] if c["name"] == "sealedmeta:" + name][0]
    listed = {r["secret_ref"].rsplit("/", 1)[-1] for r in doc["secret_refs"]}
    named = set()
    for uuid in listed:
        meta = client.client.get("secrets/%s/metadata" % uuid)["metadata"]
        if meta.get("signing_key"):
            named.add(meta["signing_key"])
    return listed, named


def signing_keyring(direct, name, versions):
    """A signing keyring with *versions* versions; {number: envelope}."""
    direct.create_keyring(name, signing=True)
    envelopes = {}
    for number in range(1, versions + 1):
        if number > 1:
            direct.rotate(name)
        envelopes[number] = Sealer(direct, name, cache_ttl=0).seal(META, CTX)
    return envelopes


def material(client, direct, name, number):
    """{version secret uuid, signing key uuid} of version *number*."""
    direct.get_keyring(name)
    secret = direct.reader.secrets[(name, number)]
    meta = client.client.get("secrets/%s/metadata" % secret)["metadata"]
    return {secret, meta["signing_key"]}


def test_destroy_cut_at_every_write_is_finished_by_running_it_again(rig):
    bk, direct, proxy, conf = rig
    client = bk.barbican_client()
    base = unique_name("destroy")

    def prepared(name):
        envelopes = signing_keyring(direct, name, 3)
        direct.set_state(name, 1, "retired")
        return envelopes, material(client, direct, name, 1)

    # The writes of one destroy.
    prepared(base + "-dry")
    proxied = load(conf)
    since = time.monotonic()
    admin.destroy(proxied, base + "-dry", 1, UNLOCKED, force=True, settle=0)
    writes = writes_of(proxy, since)
    proxied.close()
    assert len(writes) >= 8, writes   # state, tombstone (3), consumers, deletes

    outcomes = []
    for action in ("drop", "lose"):
        for at in range(1, len(writes) + 1):
            name = "%s-%s%d" % (base, action[0], at)
            envelopes, left = prepared(name)
            proxied = load(conf)
            cut_writes(proxy, at, action)
            try:
                admin.destroy(proxied, name, 1, UNLOCKED, force=True, settle=0)
                first = "done"
            except admin.DestroyFailed as exc:
                message = one_line(exc, proxy.url)
                first = {True: "destroyed", False: "unchanged"}[exc.destroyed]
                if exc.destroyed:
                    assert "run 'sealedmeta key destroy %s 1' again to finish" \
                        % name in message, message
                else:
                    assert "still retired: nothing changed" in message, message
            finally:
                proxy.clear()
                proxied.close()
            state = direct.get_keyring(name).version(1).state.value
            assert state == {"done": "destroyed", "destroyed": "destroyed",
                             "unchanged": "retired"}[first], (action, at, first)
            # Meanwhile no envelope opens under version 1; the others do.
            sealer = Sealer(direct, name, cache_ttl=0)
            with pytest.raises(exceptions.KeyUnavailable):
                sealer.open(envelopes[1], CTX)
            for number in (2, 3):
                assert sealer.open(envelopes[number], CTX) == META

            # The same destroy again finishes the job.
            result = admin.destroy(direct, name, 1, UNLOCKED, force=True, settle=0)
            ring = direct.get_keyring(name)
            assert result.version == ring.version(1)
            assert ring.version(1).state.value == "destroyed"
            assert ring.version(1).public_key is not None
            assert not left & named_secrets(client, name), (action, at)
            # At most a tombstone whose creation was cut stays behind: no
            # key material. It is removable.
            stray = direct.leftovers(name)
            assert {f.kind for f in stray} <= {"tombstone"}, stray
            direct.leftovers(name, remove=True, min_age=0)
            assert direct.leftovers(name) == []
            for number in (2, 3):
                assert sealer.open(envelopes[number], CTX) == META
            assert set(direct.export_signing_keys(ring)) == {2, 3}
            outcomes.append("%s@%d(%s):%s/%s" % (
                action, at, writes[at - 1].split()[0], first,
                "finished" if result.finished else "rerun"
                if result.finished is None else "nothing-left"))
    figures.record("destroy cut at every write, then run again",
                   writes=len(writes), cases=len(outcomes),
                   outcomes=" ".join(outcomes))


def test_rotation_cut_at_every_write_leaves_only_removable_leftovers(rig):
    bk, direct, proxy, conf = rig
    client = bk.barbican_client()
    base = unique_name("rotcut")
    signing_keyring(direct, base + "-dry", 1)
    proxied = load(conf)
    since = time.monotonic()
    proxied.rotate(base + "-dry")
    writes = writes_of(proxy, since)
    proxied.close()
    assert len(writes) >= 8, writes

    totals = {"removed": 0, "kept_listed": 0}
    for action in ("drop", "lose"):
        for at in range(1, len(writes) + 1):
            name = "%s-%s%d" % (base, action[0], at)
            envelopes = signing_keyring(direct, name, 1)
            proxied = load(conf)
            cut_writes(proxy, at, action)
            try:
                proxied.rotate(name)
            except exceptions.KeyStoreError as exc:
                one_line(exc, proxy.url)
            finally:
                proxy.clear()
                proxied.close()
            ring = crashkit.check_ring(direct.get_keyring(name))
            assert ring.active.number in (1, 2), (action, at)
            before = named_secrets(client, name)
            # Reported, nothing removed without asking.
            found = direct.leftovers(name)
            assert all(f.action.startswith("kept: ") for f in found), found
            assert named_secrets(client, name) == before
            # Removing: exactly what the container neither lists nor names.
            done = direct.leftovers(name, remove=True, min_age=0)
            removed = {f.ref for f in done if f.action == "removed"}
            listed, named = container_view(client, name)
            after = named_secrets(client, name)
            assert after == (listed | named) & before, (action, at)
            assert before - after == removed, (action, at)
            totals["removed"] += len(removed)
            totals["kept_listed"] += sum(1 for f in done
                                         if f.action.startswith("kept: listed"))
            assert all(f.action.startswith("kept: listed") for f in
                       direct.leftovers(name)), (action, at)
            # The keyring is as it was, and works.
            assert direct.get_keyring(name) == ring
            new = direct.rotate(name)
            sealer = Sealer(direct, name, cache_ttl=0)
            assert sealer.open(envelopes[1], CTX) == META
            assert sealer.open(sealer.seal(META, CTX), CTX) == META
            assert direct.get_keyring(name).active == new
    figures.record("rotation cut at every write, leftovers removed",
                   writes=len(writes), cases=2 * len(writes),
                   secrets_removed=totals["removed"],
                   listed_pending_kept=totals["kept_listed"])


def test_rotation_past_the_claim_window_withdraws(rig, monkeypatch):
    bk, direct, proxy, conf = rig
    client = bk.barbican_client()
    name = unique_name("window")
    envelopes = signing_keyring(direct, name, 1)
    before = direct.get_keyring(name)
    secrets_before = named_secrets(client, name)
    monkeypatch.setattr(barbican_store.rotation, "CLAIM_WINDOW", 1.0)
    proxied = load(conf)
    proxied.get_keyring(name)    # warm: the rotation reads the container by id
    container = r"^/v1/containers/[^/]+/?$"
    # The rotation's own read passes; its claim re-read answers late.
    proxy.add("pass", "GET", container, times=1)
    proxy.add("delay", "GET", container, delay=1.5, times=1)
    with pytest.raises(exceptions.KeyStoreError) as info:
        proxied.rotate(name)
    proxy.clear()
    message = str(info.value)
    assert "was withdrawn" in message and "nothing changed" in message, message
    assert direct.get_keyring(name) == before
    assert named_secrets(client, name) == secrets_before
    assert direct.leftovers(name) == []
    monkeypatch.undo()
    assert proxied.rotate(name).number == 2
    assert Sealer(direct, name, cache_ttl=0).open(envelopes[1], CTX) == META
    proxied.close()


def test_cleanup_keeps_the_secrets_of_a_rotation_in_flight(rig, tmp_path):
    """A rotation without a lock is held between creating its secrets and
    listing them (the proxy answers its consumer registration late) while
    ``rekey`` rotates and cleans up under the lock: the in-flight secrets
    are young, so they are kept; the held rotation then loses the number to
    rekey's, withdraws, and completes with the next one."""
    bk, direct, proxy, conf = rig
    client = bk.barbican_client()
    name = unique_name("inflight")
    envelopes = signing_keyring(direct, name, 1)
    proxied = load(conf)
    proxied.get_keyring(name)
    proxy.add("delay", "POST", r"^/v1/secrets/[^/]+/consumers/?$", delay=4.0,
              times=1)
    outcome = {}

    def rotate():
        try:
            outcome["version"] = proxied.rotate(name).number
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=rotate, daemon=True)
    thread.start()
    deadline = time.monotonic() + 600    # a hang guard, not a speed limit
    while not proxy.count(action="delay"):
        assert time.monotonic() < deadline and thread.is_alive(), (
            "the rotation never reached Barbican", outcome)
        time.sleep(0.02)
    in_flight = named_secrets(client, name) - set().union(*container_view(client, name))
    assert len(in_flight) == 2          # its version secret and signing key
    coord = coordination.Coordinator("file://%s" % (tmp_path / "locks"))
    result = admin.rekey(direct, name, coord)
    coord.stop()
    assert result.version.number == 2
    kept = {f.ref: f.action for f in result.leftovers}
    assert set(kept) == in_flight, kept
    assert all(a.startswith("kept: ") for a in kept.values()), kept
    thread.join(60)
    proxy.clear()
    assert outcome == {"version": 3}, outcome
    ring = crashkit.check_ring(direct.get_keyring(name))
    assert [(v.number, v.state.value) for v in ring.versions] == [
        (1, "decrypt-only"), (2, "decrypt-only"), (3, "active")]
    assert direct.leftovers(name) == []
    sealer = Sealer(direct, name, cache_ttl=0)
    assert sealer.open(envelopes[1], CTX) == META
    assert sealer.open(sealer.seal(META, CTX), CTX) == META
    proxied.close()
