"""Rotations racing without a lock (no [coordination] backend in the way).

Four processes call store.rotate on the same keyring at the same moment,
while two more keep sealing with a 0.2 s cache.
The store's pending-then-active protocol must leave exactly one active
version, unique version numbers, and every envelope sealed meanwhile
openable.
"""

import collections

from barbicanclient import exceptions as bc_exc

ROUNDS = 2
RACERS = 4
SEALS = 20


def _stored_states(bk, name):
    """{secret uuid: state} straight from Barbican's secret metadata."""
    client = bk.barbican_client()
    container = [c for c in client.containers.list(name="sealedmeta:" + name,
                                                   limit=100)
                 if c.name == "sealedmeta:" + name]
    assert len(container) == 1
    states = {}
    for entry, ref in container[0].secret_refs.items():
        try:
            meta = client.secrets.get_secret_metadata(ref).get("metadata", {})
        except bc_exc.HTTPClientError as exc:
            assert exc.status_code == 404
            meta = {"state": "(secret deleted)"}
        states[entry] = meta.get("state")
    return states


def test_racing_rotations_without_a_lock(barbican, agents, open_store,
                                         ring_name):
    conf = barbican.conf_path
    store = open_store(conf)
    store.create_keyring(ring_name)
    racers = agents.start_many(["racer%d" % i for i in range(RACERS)], conf,
                               ring_name, cache_ttl=0)
    # Sealers reading the keyring at most every 0.2 s, sealing all along.
    sealers = agents.start_many(["sealer%d" % i for i in range(2)], conf,
                                ring_name, cache_ttl=0.2, refresh_interval=0)
    for agent in racers + sealers:
        agent.ok("ring")            # warm: token, client, container id

    sealed = []
    created = {}                    # version number -> key id, by the winners
    report = []
    for round_ in range(ROUNDS):
        for sealer in sealers:
            sealer.send("seal_many", n=SEALS, keep=True, tolerate=True,
                        interval=0.05,
                        context={"round": str(round_), "agent": sealer.name})
        for racer in racers:
            racer.send("rotate")
        rotations = [racer.receive() for racer in racers]
        seals = [sealer.receive() for sealer in sealers]

        failed = [r for r in rotations if "error" in r]
        won = [r["version"] for r in rotations if "error" not in r]
        for r in failed:
            # The only acceptable failure: the store gave up retrying.
            assert r["error"] == "KeyStoreError" and "racing" in r["message"], r
        numbers = [v["version"] for v in won]
        assert len(numbers) == len(set(numbers)), "two rotations got one number: %r" % won
        for v in won:
            assert v["version"] not in created
            created[v["version"]] = v["key_id"]
        versions_sealed = collections.Counter()
        for s in seals:
            assert "error" not in s, s
            assert s["errors"] == [], "sealing failed during the race: %r" % s["errors"]
            sealed.extend(s["envelopes"])
            versions_sealed.update(s["versions"])

        ring = open_store(conf).get_keyring(ring_name)
        listed = {v.number: v for v in ring.versions}
        assert sum(v.state.value == "active" for v in ring.versions) == 1
        assert ring.active.number == max(listed)
        for number, key_id in created.items():
            assert listed[number].key_id.hex() == key_id
            assert listed[number].state.value in ("active", "decrypt-only")
        stored = _stored_states(barbican, ring_name)
        report.append("round %d: rotations %s (%s s), failed %d; keyring %s;"
                      " sealed under %s; stored states %s" % (
                          round_, sorted(numbers),
                          "/".join("%.1f" % r["seconds"] for r in rotations),
                          len(failed),
                          [(v.number, v.state.value) for v in ring.versions],
                          dict(sorted(versions_sealed.items())),
                          dict(collections.Counter(stored.values()))))

    print("\n" + "\n".join(report))
    # Every envelope sealed during the races opens, in a new process.
    checker = agents.start("checker", conf, ring_name)
    result = checker.ok("open_many", items=sealed)
    assert result["failures"] == []
    assert len(sealed) == ROUNDS * 2 * SEALS
    # One more (unraced) rotation writes the resolution down: exactly one
    # version is stored as active.
    store.rotate(ring_name)
    stored = _stored_states(barbican, ring_name)
    assert list(stored.values()).count("active") == 1, stored


def test_racing_creates_make_one_keyring(barbican, agents, open_store,
                                         ring_name):
    conf = barbican.conf_path
    racers = agents.start_many(["creator%d" % i for i in range(RACERS)], conf,
                               ring_name)
    for racer in racers:
        assert racer.call("ring")["error"] == "NoSuchKeyring"   # warm
    for racer in racers:
        racer.send("create")
    answers = [racer.receive() for racer in racers]
    made = [a for a in answers if "error" not in a]
    print("\ncreates: %s" % [a.get("error", "created") for a in answers])
    assert len(made) == 1, answers
    for a in answers:
        if "error" in a:
            assert a["error"] == "KeyringExists", a
    ring = open_store(conf).get_keyring(ring_name)
    assert [v.as_dict() for v in ring.versions] == made[0]["ring"]
    client = barbican.barbican_client()
    containers = [c for c in client.containers.list(
        name="sealedmeta:" + ring_name, limit=100)
        if c.name == "sealedmeta:" + ring_name]
    assert len(containers) == 1
    sealed = racers[0].ok("seal", metadata={"a": 1}, context={"b": "c"})
    assert racers[3].ok("open", envelope=sealed["envelope"],
                        context={"b": "c"})["metadata"] == {"a": 1}


def test_rotation_that_read_the_keyring_before_another_rotation_completed(
        barbican_noauth, open_store, ring_name):
    """The narrow window of a race, made wide: rotation B reads the keyring,
    then rotation A runs from start to end, then B goes on with its stale
    number. B must not make a second version of A's number (which a rule
    like "the lower key id wins" did, half of the time: a keyring whose
    readers all failed with "lists version N twice")."""
    conf = barbican_noauth.conf_path
    store_a, store_b = open_store(conf), open_store(conf)
    store_a.create_keyring(ring_name)
    from sealedmeta.sealer import Sealer
    sealer_a = Sealer(store_a, keyring=ring_name, cache_ttl=0)
    envelopes = []
    real_load = store_b.reader.load
    for round_ in range(4):
        state = {"first": True}

        def load_then_let_a_rotate(name):
            result = real_load(name)
            if state.pop("first", False):
                store_a.rotate(name)
                envelopes.append(sealer_a.seal({"r": round_}, {"r": str(round_)}))
            return result

        store_b.reader.load = load_then_let_a_rotate
        try:
            new = store_b.rotate(ring_name)
        finally:
            store_b.reader.load = real_load
        ring = open_store(conf).get_keyring(ring_name)
        assert ring.active == new and new.number == 1 + 2 * (round_ + 1), ring
    sealer = Sealer(open_store(conf), keyring=ring_name)
    for round_, env in enumerate(envelopes):
        assert sealer.open(env, {"r": str(round_)}) == {"r": round_}
