"""A signing keyring in a real Barbican: Ed25519 private keys stored through
castellan, public keys in the version secrets' metadata, rotation, rewrap,
destroy, copy from the file store, and public verification with no store."""

import json
import os

import pytest
from cryptography.hazmat.primitives import serialization

from sealedmeta import FileKeyStore
from sealedmeta import audit
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import public
from sealedmeta import signing
from sealedmeta.sealer import Sealer

CTX = {"backup_id": "signed-backup", "volume_id": "signed-volume"}
META = {"glance": {"image_id": "img-1", "billing": "x"}, "size": 1}


def _public(store, name, raw):
    rings = public.parse(public.dumps([store.get_keyring(name)]))
    finding = audit.PublicAuditor(rings, carriers=[]).check_bytes("e", raw)
    return finding.status


def _signing_uuid(client, store, name, number):
    secret = store.reader.secrets[(name, number)]
    meta = client.secrets.get_secret_metadata(store.session.secret_ref(secret))
    meta = meta.get("metadata", meta)
    return meta.get("signing_key"), meta


def test_signing_keyring_lifecycle_in_barbican(barbican, open_store, ring_name):
    store = open_store(barbican.conf_path)
    ring = store.create_keyring(ring_name, signing=True)
    assert ring.signing and len(ring.active.public_key) == 32
    client = barbican.barbican_client()

    # The private key is a Barbican private secret, named by the version
    # secret's metadata next to the public key.
    uuid1, meta = _signing_uuid(client, store, ring_name, 1)
    assert meta["public_key"] == ring.active.public_key.hex()
    assert meta["state"] == "active" and uuid1
    stored = client.secrets.get(store.session.secret_ref(uuid1))
    assert stored.secret_type == "private"
    # Barbican keeps private keys as PEM (castellan hands back DER).
    pem = serialization.load_pem_private_key(stored.payload, password=None)
    assert signing.public_key_of(signing.seed_from_pkcs8(pem.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))) == ring.active.public_key

    # A fresh store object (another agent) reads the same keyring.
    other = open_store(barbican.conf_path)
    assert other.get_keyring(ring_name) == ring

    sealer = Sealer(store, keyring=ring_name, cache_ttl=0)
    old = sealer.seal(META, CTX)
    assert envelope.parse(old).header.suite == 2
    assert Sealer(other, keyring=ring_name).open(old, CTX) == META
    assert _public(store, ring_name, old) == "valid"

    # Rotation: version 2 gets its own key pair; version 1's metadata keeps
    # its signing key and public key through the state change.
    v2 = store.rotate(ring_name)
    assert v2.public_key is not None and v2.public_key != ring.active.public_key
    uuid1_after, meta1 = _signing_uuid(client, store, ring_name, 1)
    assert (uuid1_after, meta1["state"]) == (uuid1, "decrypt-only")
    uuid2, _ = _signing_uuid(client, store, ring_name, 2)
    assert uuid2 and uuid2 != uuid1
    sealer = Sealer(store, keyring=ring_name, cache_ttl=0)
    new = sealer.seal(META, CTX)
    assert envelope.parse(new).header.key_version == 2
    rewrapped = sealer.rewrap(old)
    assert envelope.parse(rewrapped).header.suite == 2
    assert envelope.parse(rewrapped).header.key_version == 2
    for raw in (old, new, rewrapped):
        assert _public(store, ring_name, raw) == "valid"

    # Copy into a file store: the signing keys travel, strictly.
    exported, keys = store.export_keyring(ring_name)
    seeds = store.export_signing_keys(exported)
    assert set(seeds) == {1, 2}

    # Destroy version 1: its private key is deleted with the version secret;
    # its public key stays published (tombstone), so auditors still see it.
    store.set_state(ring_name, 1, "retired")
    store.set_state(ring_name, 1, "destroyed")
    with pytest.raises(Exception):
        client.secrets.get(store.session.secret_ref(uuid1)).payload
    ring = store.get_keyring(ring_name)
    assert ring.version(1).state.value == "destroyed"
    assert ring.version(1).public_key == exported.version(1).public_key
    assert _public(store, ring_name, old) == "destroyed-key"
    assert _public(store, ring_name, rewrapped) == "valid"
    with pytest.raises(exceptions.KeyUnavailable):
        store.get_signing_key(ring_name, 1)
    assert set(store.export_signing_keys(ring)) == {2}
    # Version 2's private key is still there and still signs.
    assert Sealer(other, keyring=ring_name).seal(META, CTX)


def test_copy_signing_keyring_file_store_to_barbican(barbican, open_store,
                                                     sealedmeta_cli, tmp_path,
                                                     ring_name):
    repo = str(tmp_path / "keys")
    source = FileKeyStore(repo)
    source.create_keyring(ring_name, signing=True)
    source.rotate(ring_name)
    raw = Sealer(source, keyring=ring_name).seal(META, CTX)
    proc = sealedmeta_cli.run("--key-repository", repo, "keyring", "copy",
                              ring_name, "--to-config", barbican.conf_path,
                              "-f", "json")
    assert json.loads(proc.stdout)["versions_copied"] == 2
    target = open_store(barbican.conf_path)
    ring = target.get_keyring(ring_name)
    assert ring == source.get_keyring(ring_name)
    barbican_sealer = Sealer(target, keyring=ring_name)
    assert barbican_sealer.open(raw, CTX) == META
    sealed_there = barbican_sealer.seal(META, CTX)
    # Signed in Barbican with the same private key the file store had.
    assert _public(source, ring_name, sealed_there) == "valid"

    # The auditor: export-public from Barbican, verify with no store at all.
    pub = tmp_path / "pub.json"
    sealedmeta_cli.run("--config-file", barbican.conf_path, "keyring",
                       "export-public", ring_name, "-o", str(pub))
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "a").write_bytes(raw)
    (tmp_path / "envs" / "b").write_bytes(sealed_there)
    nowhere = tmp_path / "nowhere"
    proc = sealedmeta_cli.run("--key-repository", str(nowhere), "verify",
                              "--public-keys", str(pub), "-f", "json",
                              str(tmp_path / "envs"))
    report = json.loads(proc.stdout)
    assert report["format"] == 2 and report["summary"]["all_valid"]
    assert not os.path.exists(nowhere)


def test_rekey_signing_turns_a_barbican_keyring_into_a_signing_one(
        barbican, open_store, ring_name):
    store = open_store(barbican.conf_path)
    store.create_keyring(ring_name)
    old = Sealer(store, keyring=ring_name, cache_ttl=0).seal(META, CTX)
    version = store.rotate(ring_name, signing=True)
    assert version.number == 2 and len(version.public_key) == 32
    client = barbican.barbican_client()
    uuid2, meta = _signing_uuid(client, store, ring_name, 2)
    assert uuid2 and meta["public_key"] == version.public_key.hex()
    assert _signing_uuid(client, store, ring_name, 1)[0] is None
    # Another agent reads it as a signing keyring and seals suite 2.
    sealer = Sealer(open_store(barbican.conf_path), keyring=ring_name,
                    cache_ttl=0)
    new = sealer.seal(META, CTX)
    assert envelope.parse(new).header.suite == 2
    assert _public(store, ring_name, new) == "valid"
    assert sealer.open(old, CTX) == META
    assert _public(store, ring_name, old) == "unsigned"
    # The symmetric key of version 2 alone makes nothing a key holder takes.
    from tests.unit.helpers import seal_raw
    forged = seal_raw(store.get_key(ring_name, 2), ring_name, 2,
                      envelope.encode_payload({"forged": True}), context=CTX)
    with pytest.raises(exceptions.InvalidEnvelope):
        sealer.open(forged, CTX)
    assert _public(store, ring_name, forged) == "invalid"
    # It stays a signing keyring.
    assert store.rotate(ring_name).public_key is not None
