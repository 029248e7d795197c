"""A keyring's whole life in a real Barbican behind a real Keystone.

Several OS processes, each with its own cache: agent A and agent B (long
running, driven over pipes), a third process that rotates, and this test
process, which retires and destroys and checks Barbican directly with
python-barbicanclient.
"""

import base64
import json
import time

import pytest
from barbicanclient import exceptions as bc_exc

from sealedmeta import inspect
from tests import tries

CTX = {"backup_id": "5f3e-backup", "volume_id": "9a1c-volume"}
META = {"volume-base-metadata": {"size": 1, "name": "vol"},
        "glance": {"image_id": "img-1"}, "version": 2}
# Agent A seals the old version inside its cache_ttl and opens on a miss;
# each inconclusive try (see tests/tries.py) gets a longer one.
A_TTLS = (8, 32, 128)
B_TTL = 3       # agent B


def _versions_by_number(client, name, prefix="sealedmeta"):
    """{number: secret ref} of the version secrets listed in the container."""
    containers = [c for c in client.containers.list(name="%s:%s" % (prefix, name),
                                                    limit=100)
                  if c.name == "%s:%s" % (prefix, name)]
    assert len(containers) == 1, containers
    refs = {}
    for entry, secret in containers[0].secret_refs.items():  # name -> ref
        number = int(entry.split(".")[0][1:])
        refs.setdefault(number, []).append(secret)
    return refs


def _consumers(client, ref):
    return {(c.service, c.resource_type, c.resource_id)
            for c in client.secrets.list_consumers(ref, limit=100)}


def _wait_past_ttl(answer, ttl):
    age = answer["age"]
    if age is not None and age < ttl:
        time.sleep(ttl - age + 0.3)


def test_keyring_lifecycle_across_processes(barbican_keystone, agents,
                                            sealedmeta_cli, open_store,
                                            rotate_in_new_process, ring_name):
    tries.until_conclusive(
        lambda a_ttl, attempt: _lifecycle(
            barbican_keystone, agents, sealedmeta_cli, open_store,
            rotate_in_new_process, "%s-%d" % (ring_name, attempt), a_ttl,
            attempt),
        A_TTLS)


def _lifecycle(barbican_keystone, agents, sealedmeta_cli, open_store,
               rotate_in_new_process, ring_name, a_ttl, attempt):
    bk = barbican_keystone
    conf = bk.conf_path
    cli = sealedmeta_cli

    created = json.loads(cli.run("--config-file", conf, "keyring", "create",
                                 ring_name, "-f", "json").stdout)
    assert created["active_version"] == 1

    a = agents.start("A%d" % attempt, conf, ring_name, cache_ttl=a_ttl,
                     refresh_interval=1)
    b = agents.start("B%d" % attempt, conf, ring_name, cache_ttl=B_TTL,
                     refresh_interval=1)

    # Seal in one process, open in the other, both ways.
    e1 = a.ok("seal", metadata=META, context=CTX)
    assert e1["version"] == 1
    assert b.ok("open", envelope=e1["envelope"], context=CTX)["metadata"] == META
    e1b = b.ok("seal", metadata=META, context=CTX)
    assert a.ok("open", envelope=e1b["envelope"], context=CTX)["metadata"] == META
    wrong = b.call("open", envelope=e1["envelope"], context=dict(CTX, backup_id="x"))
    assert wrong["error"] == "ContextMismatch"

    # Both caches fresh, then a third process rotates: version 2.
    a.ok("refresh")
    b.ok("refresh")
    how, number = rotate_in_new_process(conf, ring_name)
    assert number == 2
    print("\nrotated by: %s" % how)

    # A is inside its TTL: it still seals under version 1, with no request.
    r = a.ok("seal", metadata=META, context=CTX)
    if r["age"] >= a_ttl:
        raise tries.Inconclusive("the rotation took longer than A's"
                                 " cache_ttl of %ss: %r" % (a_ttl, r))
    assert (r["version"], r["loads"]) == (1, 0)
    # Once its cache_ttl has passed, A seals under version 2 (one read).
    _wait_past_ttl(r, a_ttl)
    r = a.ok("seal", metadata=META, context=CTX)
    assert (r["version"], r["loads"]) == (2, 1)
    e2 = r
    assert b.ok("open", envelope=e2["envelope"], context=CTX)["metadata"] == META

    # Another rotation (version 3), made while A's cache is fresh.
    a.ok("refresh")
    how, number = rotate_in_new_process(conf, ring_name)
    assert number == 3
    # B seals under version 3 once its own cache_ttl has passed.
    r = b.ok("seal", metadata=META, context=CTX)
    if r["version"] != 3:
        assert (r["version"], r["loads"]) == (2, 0) and r["age"] < B_TTL
        _wait_past_ttl(r, B_TTL)
        r = b.ok("seal", metadata=META, context=CTX)
    assert (r["version"], r["loads"]) == (3, 1)
    e3 = r
    # A opens it without a restart: one refresh, caused by the unknown key
    # id while A's cache was still fresh (not by the TTL) ...
    r = a.ok("open", envelope=e3["envelope"], context=CTX)
    assert r["metadata"] == META
    if r["age"] >= a_ttl:
        raise tries.Inconclusive("the rotation and B's wait took longer than"
                                 " A's cache_ttl of %ss: %r" % (a_ttl, r))
    assert r["loads"] == 1, r
    # ... after which A seals under version 3 at once, with no request.
    r = a.ok("seal", metadata=META, context=CTX)
    assert (r["version"], r["loads"]) == (3, 0)
    # Versions 1 and 2 stay openable (decrypt-only) for both.
    for agent in (a, b):
        for env in (e1, e1b, e2):
            assert agent.ok("open", envelope=env["envelope"],
                            context=CTX)["metadata"] == META

    # Consumers on every version secret, checked with barbicanclient itself.
    client = bk.barbican_client()
    refs = _versions_by_number(client, ring_name)
    assert sorted(refs) == [1, 2, 3]
    expected = ("sealedmeta", "keyring", ring_name)
    for number, secret_refs in refs.items():
        assert len(secret_refs) == 1, refs
        assert expected in _consumers(client, secret_refs[0]), number
    v1_ref = refs[1][0]
    v1_uuid = v1_ref.rstrip("/").rsplit("/", 1)[-1]
    # ... so Barbican's clients refuse to delete a version in use.
    with pytest.raises(bc_exc.SecretHasConsumers):
        client.secrets.delete(v1_ref)

    # Retire version 1 (this process): refused once a cache is refreshed.
    store = open_store(conf)
    assert store.set_state(ring_name, 1, "retired").state.value == "retired"
    time.sleep(B_TTL + 0.3)     # B learns it through its TTL
    r = b.call("open", envelope=e1["envelope"], context=CTX)
    assert r["error"] == "KeyUnavailable", r
    assert "retired" in r["message"] and ring_name in r["message"]
    a.ok("refresh")
    r = a.call("open", envelope=e1b["envelope"], context=CTX)
    assert r["error"] == "KeyUnavailable" and "retired" in r["message"], r
    # Later versions' envelopes are untouched.
    for env in (e2, e3):
        assert a.ok("open", envelope=env["envelope"], context=CTX)["metadata"] == META

    # Destroy version 1: its secret is gone from Barbican (404), the version
    # is still listed, as destroyed.
    assert client.client.get("secrets/%s" % v1_uuid)["secret_ref"]
    assert store.set_state(ring_name, 1, "destroyed").state.value == "destroyed"
    for path in ("secrets/%s" % v1_uuid, "secrets/%s/payload" % v1_uuid):
        try:
            client.client.get(path)
        except bc_exc.HTTPClientError as exc:
            assert exc.status_code == 404, (path, exc.status_code)
        else:
            raise AssertionError("%s still answers after destroy" % path)
    shown = json.loads(cli.run("--config-file", conf, "keyring", "show",
                               ring_name, "-f", "json").stdout)
    assert [(v["version"], v["state"]) for v in shown] == [
        (1, "destroyed"), (2, "decrypt-only"), (3, "active")]
    ring = store.get_keyring(ring_name)
    assert ring.version(1).key_id == inspect(base64.b64decode(e1["envelope"])).key_id
    a.ok("refresh")
    r = a.call("open", envelope=e1["envelope"], context=CTX)
    assert r["error"] == "KeyUnavailable" and "destroyed" in r["message"], r
    for env in (e2, e3):
        assert b.ok("open", envelope=env["envelope"], context=CTX)["metadata"] == META
    # The remaining versions keep their consumers.
    refs = _versions_by_number(client, ring_name)
    for number in (2, 3):
        assert expected in _consumers(client, refs[number][0])
