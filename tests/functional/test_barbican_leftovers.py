"""What interrupted rotations and destroys leave in a REAL Barbican, and the
signing keys' consumers.

* every signing key (castellan ``private`` secret) has a consumer like its
  version secret, so Barbican's clients refuse to delete it; destroy removes
  both, and running destroy again on a destroyed version is harmless;
* secrets no version uses -- what a rotation killed at each of its steps
  leaves -- are made here with python-barbicanclient alone, then reported
  by ``keyring show --leftovers`` and by the store, and removed by the next
  ``rekey`` only when unlisted and older than the safe age: nothing the
  container lists, nothing unlisted that is not pending, and nothing young
  (a rotation in flight may still claim it) is ever removed.
"""

import dataclasses
import json
import os
import time

import pytest
from barbicanclient import exceptions as bc_exc

from sealedmeta import Sealer
from sealedmeta import admin
from sealedmeta import coordination
from sealedmeta import exceptions
from sealedmeta.keystores import barbican as barbican_store
from tests import tries

CTX = {"backup_id": "leftover-backup", "volume_id": "leftover-volume"}
META = {"glance": {"image_id": "img-1", "billing": "x"}}
OURS = {"service": "sealedmeta", "resource_type": "keyring"}


def uuid_of(ref):
    return ref.rstrip("/").rsplit("/", 1)[-1]


def exists(client, uuid):
    try:
        client.client.get("secrets/%s" % uuid)
        return True
    except bc_exc.HTTPClientError as exc:
        assert exc.status_code == 404
        return False


def container_uuid(client, name):
    page = client.client.get("containers", params={"name": "sealedmeta:" + name})
    docs = [c for c in page["containers"] if c["name"] == "sealedmeta:" + name]
    assert len(docs) == 1, docs
    return uuid_of(docs[0]["container_ref"])


def signing_uuid(client, store, name, number):
    secret = store.reader.secrets[(name, number)]
    meta = client.client.get("secrets/%s/metadata" % secret)["metadata"]
    return secret, meta["signing_key"]


def test_signing_keys_have_consumers_and_destroy_removes_them(
        barbican, open_store, ring_name):
    client = barbican.barbican_client()
    store = open_store(barbican.conf_path)
    store.create_keyring(ring_name, signing=True)
    store.rotate(ring_name)
    # A copy made with import_keyring stores its signing keys the same way.
    copy = ring_name + "-copy"
    ring, keys = store.export_keyring(ring_name)
    store.import_keyring(dataclasses.replace(ring, name=copy), keys,
                         store.export_signing_keys(ring))
    for name in (ring_name, copy):
        for number in (1, 2):
            secret, signing_key = signing_uuid(client, store, name, number)
            for uuid in (secret, signing_key):
                consumers = client.secrets.get(store.session.secret_ref(uuid)).consumers
                assert consumers == [dict(OURS, resource_id=name)], (
                    name, number, uuid, consumers)
    # Barbican's client refuses to delete a signing key in use.
    _, signing_key = signing_uuid(client, store, ring_name, 1)
    with pytest.raises(bc_exc.SecretHasConsumers):
        client.secrets.delete(store.session.secret_ref(signing_key))
    assert exists(client, signing_key)

    sealer = Sealer(store, keyring=ring_name, cache_ttl=0)
    envelope = sealer.seal(META, CTX)
    secret, signing_key = signing_uuid(client, store, ring_name, 2)
    store.rotate(ring_name)
    admin.retire(store, ring_name, 2, coordination.NoCoordination(), settle=0)
    result = admin.destroy(store, ring_name, 2, coordination.NoCoordination(),
                           force=True, settle=0)
    assert result.version.state.value == "destroyed" and result.finished is None
    assert not exists(client, secret) and not exists(client, signing_key)
    # Destroying it again is harmless: nothing was left.
    again = admin.destroy(store, ring_name, 2, coordination.NoCoordination(), settle=0)
    assert (again.version, again.finished) == (result.version, False)
    with pytest.raises(exceptions.KeyUnavailable):
        Sealer(store, keyring=ring_name).open(envelope, CTX)
    assert store.leftovers(ring_name) == []


def make(client, name, secret_type="symmetric", meta=None, consumer=None):
    """A secret as a rotation makes it (python-barbicanclient only)."""
    ref = client.secrets.create(name=name, payload=os.urandom(32),
                                secret_type=secret_type).store()
    if meta is not None:
        client.secrets.set_secret_metadata(ref, meta)
    if consumer is not None:
        client.secrets.register_consumer(ref, "sealedmeta", "keyring", consumer)
    return uuid_of(ref)


# (seconds waited, safe age): the secrets made before the wait are older
# than the safe age (Barbican's times are whole seconds), the one made after
# it must still be younger when the rekey lists it; a try where the rekey
# came too late for that is run again with longer ones.
AGES = ((6.0, 5.0), (16.0, 15.0), (46.0, 45.0))


def test_leftovers_are_reported_and_rekey_removes_only_stale_unlisted_ones(
        barbican_noauth, open_store, sealedmeta_cli, tmp_path, monkeypatch,
        caplog, ring_name):
    tries.until_conclusive(
        lambda ages, attempt: _leftovers(
            barbican_noauth, open_store, sealedmeta_cli,
            tmp_path, monkeypatch, caplog,
            "%s-%d" % (ring_name, attempt), *ages),
        AGES)


def _leftovers(bk, open_store, sealedmeta_cli, tmp_path, monkeypatch, caplog,
               name, wait, stale):
    client = bk.barbican_client()
    store = open_store(bk.conf_path)
    store.create_keyring(name, signing=True)
    envelopes = [Sealer(store, keyring=name, cache_ttl=0).seal(META, CTX)]
    store.rotate(name)
    envelopes.append(Sealer(store, keyring=name, cache_ttl=0).seal(META, CTX))
    live = {s for pair in (signing_uuid(client, store, name, n) for n in (1, 2))
            for s in pair}
    prefix = "sealedmeta:%s:" % name
    key_id = os.urandom(16).hex()

    def meta(number, state, **extra):
        data = {"keyring": name, "version": str(number), "key_id": key_id,
                "created": str(int(time.time())), **extra}
        if state is not None:
            data["state"] = state
        return data

    # What rotations killed at each step leave (all for number 3):
    # killed before listing: version secret (pending, consumer) + signing key
    sign_a = make(client, prefix + "v3:sign", "private", consumer=name)
    pending_a = make(client, prefix + "v3", meta=meta(3, "pending",
                                                      signing_key=sign_a),
                     consumer=name)
    # killed right after creating the version secret (no metadata yet)
    bare_b = make(client, prefix + "v3")
    # killed after storing the signing key only
    sign_c = make(client, prefix + "v3:sign", "private")
    # a destroy killed before listing its tombstone
    tomb_e = make(client, prefix + "v1:destroyed", "opaque",
                  meta=meta(1, "destroyed", tombstone="1"))
    # killed after claiming (listed in the container): never removed
    listed_d = make(client, prefix + "v3", meta=meta(3, "pending"), consumer=name)
    client.client.post("containers/%s/secrets" % container_uuid(client, name),
                       json={"name": "v3.%s.%d" % (key_id, int(time.time())),
                             "secret_ref": "%s/v1/secrets/%s" % (bk.barbican_url,
                                                                 listed_d)})
    # unlisted but not pending (taken out by hand?): never removed
    other_f = make(client, prefix + "v9", meta=meta(9, "decrypt-only"))
    made = {pending_a: "pending version", sign_a: "signing key",
            bare_b: "pending version", sign_c: "signing key",
            tomb_e: "tombstone", listed_d: "pending version",
            other_f: "unlisted version"}
    young = "kept: younger than 3600s (a rotation in flight may still claim it)"
    expected = {pending_a: young, bare_b: young, sign_c: young, tomb_e: young,
                sign_a: "kept: named by the kept version secret %s" % pending_a,
                listed_d: "kept: listed in the keyring (a rotation cut after"
                          " claiming it)",
                other_f: "kept: decrypt-only, not pending, and not listed in the"
                         " keyring: check it by hand"}

    found = store.leftovers(name)
    assert {f.ref: f.action for f in found} == expected
    assert {f.ref: f.kind for f in found} == made
    for f in found:
        assert f.name.startswith(prefix) and 0 <= f.age < 600, f

    # The CLI lists the same, changing nothing.
    proc = sealedmeta_cli.run("--config-file", bk.conf_path, "keyring", "show",
                              name, "--leftovers", "-f", "json")
    rows = json.loads(proc.stdout)
    assert {r["ref"]: r["action"] for r in rows} == expected
    assert all(exists(client, uuid) for uuid in made)

    # A rekey now removes nothing: everything is younger than the safe age.
    coord = coordination.Coordinator("file://%s" % (tmp_path / "locks"))
    result = admin.rekey(store, name, coord)
    assert result.version.number == 4          # 3 is claimed (listed_d)
    assert {f.ref: f.action for f in result.leftovers} == expected
    assert all(exists(client, uuid) for uuid in made)

    # Once they are older than the safe age, the next rekey removes the
    # unlisted pending ones, their signing keys and the stray tombstone --
    # but not a pending secret made just before it (a rotation in flight).
    time.sleep(wait)
    made_at = time.monotonic()
    in_flight = make(client, prefix + "v5", meta=meta(5, "pending"),
                     consumer=name)
    monkeypatch.setattr(barbican_store.cleanup, "STALE_AGE", stale)
    caplog.set_level("INFO", logger="sealedmeta.admin")
    result = admin.rekey(store, name, coord)
    took = time.monotonic() - made_at
    if took + 1 >= stale:
        monkeypatch.undo()      # the next try starts from the default age
        raise tries.Inconclusive(
            "the rekey listed the secret made %.1fs before, not surely younger"
            " than the safe age of %gs" % (took, stale))
    assert result.version.number == 5
    actions = {f.ref: f.action for f in result.leftovers}
    removed = {pending_a, sign_a, bare_b, sign_c, tomb_e}
    assert actions == dict(
        {uuid: "removed" for uuid in removed},
        **{listed_d: expected[listed_d], other_f: expected[other_f],
           in_flight: "kept: younger than %gs (a rotation in flight may still"
                      " claim it)" % stale})
    for uuid in made:
        assert exists(client, uuid) == (uuid not in removed), made[uuid]
    assert exists(client, in_flight)
    assert all(exists(client, uuid) for uuid in live)
    assert "keyring %s: removed 5 secrets left by interrupted rotations" % name \
        in caplog.text
    # The keyring is whole: every envelope opens, new ones seal.
    ring = store.get_keyring(name)
    assert [(v.number, v.state.value) for v in ring.versions] == [
        (1, "decrypt-only"), (2, "decrypt-only"), (4, "decrypt-only"),
        (5, "active")]
    sealer = Sealer(store, keyring=name, cache_ttl=0)
    for envelope in envelopes + [sealer.seal(META, CTX)]:
        assert sealer.open(envelope, CTX) == META
    coord.stop()
