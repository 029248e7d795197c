"""Another member of the keyring's project attacks it in a REAL Barbican.

``peer`` is a second user with the member role in the project the key store
uses (behind Keystone a real Keystone user; without Keystone its
``X-User-Id``). Through python-barbicanclient alone it tries to read the
version keys, to reinstate a retired version by rewriting its secret's
metadata, and to plant an active version with a key it chose. Barbican
refuses all three, because the store makes every secret and container
private to its own user; where Barbican lets the peer write (a keyring's
objects still open to the project, as keyrings made before ACLs were), the
store refuses what the peer made, by name, and never seals under it.
"""

import os

import pytest
from barbicanclient import exceptions as bc_exc

from sealedmeta import Sealer
from sealedmeta import crypto
from sealedmeta import exceptions
from sealedmeta import keyring as kr

CTX = {"backup_id": "acl-backup", "volume_id": "acl-volume"}
META = {"glance": {"image_id": "img-1", "billing_code_licence": "PAID"}}


def uuid_of(ref):
    return ref.rstrip("/").rsplit("/", 1)[-1]


def status_of(call, *args, **kwargs):
    """The HTTP status Barbican answers *call* with."""
    try:
        call(*args, **kwargs)
    except bc_exc.HTTPClientError as exc:
        return exc.status_code
    return 200


def peer_view(peer, name):
    """(container uuid, {entry name: secret uuid}) as the peer lists them:
    a project's container list shows every container of the project."""
    page = peer.client.get("containers", params={"name": "sealedmeta:" + name,
                                                 "limit": 100})
    docs = [c for c in page["containers"] if c["name"] == "sealedmeta:" + name]
    assert len(docs) == 1, docs
    entries = {r["name"]: uuid_of(r["secret_ref"]) for r in docs[0]["secret_refs"]}
    return uuid_of(docs[0]["container_ref"]), entries


def open_to_project(client, kind, uuid):
    """What a keyring made before ACLs looks like: readable and writable by
    the whole project (done as the store's own user)."""
    client.client.put("%s/%s/acl" % (kind, uuid),
                      json={"read": {"project-access": True}})


def plant(peer, name, number, key, state="active"):
    """A secret the peer made, with its key and a version's metadata; its
    (uuid, ref, container entry name)."""
    created = kr.now()
    key_id = crypto.key_id(key)
    ref = peer.secrets.create(name="sealedmeta:%s:v%d" % (name, number),
                              payload=key, algorithm="AES", bit_length=256,
                              secret_type="symmetric").store()
    uuid = uuid_of(ref)
    peer.client.put("secrets/%s/metadata" % uuid, json={"metadata": {
        "keyring": name, "version": str(number), "key_id": key_id.hex(),
        "created": str(created), "state": state}})
    return uuid, ref, "v%d.%s.%d" % (number, key_id.hex(), created)


def test_peer_cannot_read_any_key(barbican, open_store, ring_name):
    store = open_store(barbican.conf_path)
    store.create_keyring(ring_name, signing=True)
    store.rotate(ring_name)
    store.set_state(ring_name, 1, kr.KeyState.RETIRED)
    store.set_state(ring_name, 1, kr.KeyState.DESTROYED)   # a tombstone too
    peer = barbican.barbican_client("peer")
    container, entries = peer_view(peer, ring_name)
    assert len(entries) == 2, entries        # v1's tombstone, v2
    own = barbican.barbican_client()
    signing_key = own.client.get("secrets/%s/metadata" % store.reader.secrets[
        (ring_name, 2)])["metadata"]["signing_key"]
    objects = list(entries.values()) + [signing_key]
    for uuid in objects:
        assert status_of(peer.client._get_raw, "secrets/%s/payload" % uuid,
                         headers={"Accept": "application/octet-stream"}) == 403
        assert status_of(peer.client.get, "secrets/%s/metadata" % uuid) == 403
        assert status_of(peer.client.get, "secrets/%s/acl" % uuid) == 403
    assert status_of(peer.client.get, "containers/%s" % container) == 403
    # The store's own user still reads its keys.
    assert len(store.get_key(ring_name, 2)) == crypto.KEY_SIZE
    assert len(store.get_signing_key(ring_name, 2)) == 32


def test_peer_cannot_reinstate_a_retired_version(barbican, open_store,
                                                 ring_name):
    store = open_store(barbican.conf_path)
    store.create_keyring(ring_name)
    old = Sealer(store, keyring=ring_name, cache_ttl=0).seal(META, CTX)
    store.rotate(ring_name)
    store.set_state(ring_name, 1, kr.KeyState.RETIRED)
    peer = barbican.barbican_client("peer")
    _, entries = peer_view(peer, ring_name)
    (v1,) = [u for e, u in entries.items() if e.startswith("v1.")]
    meta = {"metadata": {"state": "decrypt-only"}}
    assert status_of(peer.client.put, "secrets/%s/metadata" % v1, json=meta) == 403
    assert status_of(peer.client.post, "secrets/%s/metadata" % v1,
                     json={"key": "state", "value": "decrypt-only"}) == 403
    assert status_of(peer.client.put, "secrets/%s/metadata/state" % v1,
                     json={"key": "state", "value": "decrypt-only"}) == 403
    assert status_of(peer.client.put, "secrets/%s/acl" % v1,
                     json={"read": {"project-access": True}}) == 403
    fresh = open_store(barbican.conf_path)
    assert fresh.get_keyring(ring_name).version(1).state is kr.KeyState.RETIRED
    with pytest.raises(exceptions.KeyUnavailable):
        Sealer(fresh, keyring=ring_name, cache_ttl=0).open(old, CTX)


def test_peer_cannot_plant_an_active_version(barbican, open_store, ring_name):
    store = open_store(barbican.conf_path)
    store.create_keyring(ring_name)
    peer = barbican.barbican_client("peer")
    container, _ = peer_view(peer, ring_name)
    chosen = os.urandom(crypto.KEY_SIZE)
    planted, ref, entry = plant(peer, ring_name, 2, chosen)
    assert status_of(peer.client.post, "containers/%s/secrets" % container,
                     json={"name": entry, "secret_ref": ref}) == 403
    assert status_of(peer.client.put, "containers/%s/acl" % container,
                     json={"read": {"project-access": True}}) == 403
    # A container of the keyring's name made by the peer is not the keyring.
    peer.client.post("containers", json={
        "type": "generic", "name": "sealedmeta:" + ring_name,
        "secret_refs": [{"name": entry, "secret_ref": ref}]})
    fresh = open_store(barbican.conf_path)
    ring = fresh.get_keyring(ring_name)
    assert [v.number for v in ring.versions] == [1]
    assert ring.active.key_id != crypto.key_id(chosen)
    envelope = Sealer(fresh, keyring=ring_name, cache_ttl=0).seal(META, CTX)
    assert Sealer(fresh, keyring=ring_name).open(envelope, CTX) == META
    assert fresh.list_keyrings().count(ring_name) == 1


def test_what_a_peer_writes_into_an_open_keyring_is_refused(
        barbican, open_store, ring_name):
    """A keyring whose container is still open to the project: Barbican
    lets the peer list a version of its own; the store names it and refuses
    to use the keyring, and seals nothing under it."""
    store = open_store(barbican.conf_path)
    store.create_keyring(ring_name)
    own = barbican.barbican_client()
    peer = barbican.barbican_client("peer")
    container, _ = peer_view(peer, ring_name)
    open_to_project(own, "containers", container)
    chosen = os.urandom(crypto.KEY_SIZE)
    planted, ref, entry = plant(peer, ring_name, 2, chosen)
    peer.client.post("containers/%s/secrets" % container, json={
        "name": entry, "secret_ref": ref})
    fresh = open_store(barbican.conf_path)
    sealer = Sealer(fresh, keyring=ring_name, cache_ttl=0)
    with pytest.raises(exceptions.UntrustedKeyObject) as info:
        sealer.seal(META, CTX)
    message = str(info.value)
    assert planted in message and "version 2" in message and ring_name in message
    assert chosen.hex() not in message
    with pytest.raises(exceptions.UntrustedKeyObject):
        fresh.rotate(ring_name)


def test_a_keyring_made_before_acls_is_closed_at_its_next_load(
        barbican, open_store, ring_name):
    store = open_store(barbican.conf_path)
    store.create_keyring(ring_name, signing=True)
    store.rotate(ring_name)
    own = barbican.barbican_client()
    peer = barbican.barbican_client("peer")
    container, entries = peer_view(peer, ring_name)
    signing_key = own.client.get("secrets/%s/metadata" % store.reader.secrets[
        (ring_name, 2)])["metadata"]["signing_key"]
    secrets = list(entries.values()) + [signing_key]
    open_to_project(own, "containers", container)
    for uuid in secrets:
        open_to_project(own, "secrets", uuid)
    assert status_of(peer.client.get, "secrets/%s/metadata" % secrets[0]) == 200
    fresh = open_store(barbican.conf_path)
    ring = fresh.get_keyring(ring_name)
    assert [v.state for v in ring.versions] == [kr.KeyState.DECRYPT_ONLY,
                                                kr.KeyState.ACTIVE]
    fresh.get_signing_key(ring_name, 2)
    for uuid in secrets:
        assert status_of(peer.client.get, "secrets/%s/metadata" % uuid) == 403
    assert status_of(peer.client.get, "containers/%s" % container) == 403
