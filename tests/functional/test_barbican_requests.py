"""Requests counted in the servers' access logs, not guessed.

Every request Barbican or Keystone receives adds one line to
DIR/<service>-access.log before its answer is sent.
"""

import re

CTX = {"backup_id": "count"}
META = {"volume": {"size": 1}}


def _delta(before, after):
    return {k: after[k] - before[k] for k in after}


def _paths(bk, service, start):
    lines = bk.access_lines(service)[start:]
    return [re.search(r'"(\S+ \S+)', line).group(1) for line in lines]


def test_sealing_makes_no_requests_after_warm_up(barbican_keystone, agents,
                                                 open_store, ring_name):
    bk = barbican_keystone
    store = open_store(bk.conf_path)
    store.create_keyring(ring_name)
    store.rotate(ring_name)          # two versions: a realistic keyring

    # Cold start: a new process, its first seal.
    before = bk.counts(settle=0)
    agent = agents.start("counted", bk.conf_path, ring_name, cache_ttl=300)
    started = bk.counts(settle=0.3)
    r = agent.ok("seal", metadata=META, context=CTX)
    assert r["version"] == 2
    cold = bk.counts()
    print("\ncold start of an agent process: building the store %s;"
          " first seal %s" % (_delta(before, started), _delta(started, cold)))
    print("  barbican: %s" % _paths(bk, "barbican", before["barbican"]))
    print("  keystone: %s" % _paths(bk, "keystone", before["keystone"]))
    assert _delta(before, started) == {"barbican": 0, "keystone": 0}, \
        "building the store must not need the servers"
    assert _delta(started, cold)["barbican"] > 0

    # Warm: 1,000 envelopes, not one request to either server.
    warm = bk.counts(settle=0)
    r = agent.ok("seal_many", n=1000, context=CTX)
    assert r["versions"] == {"2": 1000}
    assert r["loads"] == 0
    after = bk.counts()
    print("1000 seals after warm-up: %s (%.2fs)" % (_delta(warm, after),
                                                     r["seconds"]))
    assert _delta(warm, after) == {"barbican": 0, "keystone": 0}, (
        _paths(bk, "barbican", warm["barbican"]),
        _paths(bk, "keystone", warm["keystone"]))

    # Opening what it sealed: no requests either.
    envelope = agent.ok("seal", metadata=META, context=CTX)["envelope"]
    for _ in range(100):
        agent.ok("open", envelope=envelope, context=CTX)
    assert _delta(after, bk.counts()) == {"barbican": 0, "keystone": 0}
