"""Requirement 6: known-answer vectors, byte for byte, and an independent
re-derivation of the construction from the layout in envelope.py's docstring
using only `cryptography` primitives (and plain msgpack for the header)."""

import base64
import importlib.util
import json
import os
import struct
import types

import msgpack
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import sealedmeta
from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import crypto
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import keyring as kr

from tests.unit.helpers import assert_same

VECTORS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "vectors")
with open(os.path.join(VECTORS_DIR, "v1.json"), encoding="utf-8") as _handle:
    VECTORS = json.load(_handle)["vectors"]
IDS = [v["name"] for v in VECTORS]


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "sealedmeta_vector_generator", os.path.join(VECTORS_DIR, "generate.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _load_generator()
from_json_value = GENERATOR.from_json_value


def _inputs(v):
    return dict(key=bytes.fromhex(v["key"]), keyring=v["keyring"],
                key_version=v["key_version"], created=v["created"],
                salt=bytes.fromhex(v["salt"]), nonce=bytes.fromhex(v["nonce"]),
                context=v["context"], metadata=from_json_value(v["metadata"]))


def test_there_are_enough_vectors():
    assert len(VECTORS) >= 3
    assert len({v["envelope"] for v in VECTORS}) == len(VECTORS)
    for v in VECTORS:
        assert len(bytes.fromhex(v["key"])) == 32
        assert v["format_version"] == 1 and v["suite"] == 1


def test_committed_file_matches_the_generator():
    with open(os.path.join(VECTORS_DIR, "v1.json"), encoding="utf-8") as handle:
        assert handle.read() == GENERATOR.render()


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_reencoding_reproduces_the_bytes(v):
    i = _inputs(v)
    header = envelope.Header(1, 1, i["keyring"], i["key_version"],
                             crypto.key_id(i["key"]),
                             types.MappingProxyType(dict(sorted(i["context"].items()))),
                             i["created"], i["salt"], i["nonce"])
    header_bytes = envelope.encode_header(header)
    assert header_bytes.hex() == v["header"]
    prefix = envelope.encode_prefix(header_bytes)
    info = crypto.info(1, 1, i["keyring"], i["key_version"])
    payload = envelope.encode_payload(i["metadata"])
    assert payload.hex() == v["payload"]
    ciphertext, mac = crypto.encrypt(i["key"], i["salt"], i["nonce"], info, prefix, payload)
    raw = envelope.assemble(prefix, ciphertext, mac)
    assert raw.hex() == v["envelope"]
    assert sealedmeta.armor(raw) == v["armor"]
    assert sealedmeta.dearmor(v["armor"]) == raw
    # and through the generator's compose(), which the file was written with
    assert GENERATOR.compose(**i)[0] == raw


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_key_id_of_the_fixed_key(v):
    assert crypto.key_id(bytes.fromhex(v["key"])).hex() == v["key_id"]


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_a_sealer_opens_the_vector(tmp_path, v):
    i = _inputs(v)
    store = FileKeyStore(str(tmp_path / "keys"))
    ring = kr.KeyRing(i["keyring"], (kr.KeyVersion(
        i["key_version"], bytes.fromhex(v["key_id"]), kr.KeyState.ACTIVE, i["created"]),))
    store.import_keyring(ring, {i["key_version"]: i["key"]})
    sealer = Sealer(store, keyring=i["keyring"])
    raw = bytes.fromhex(v["envelope"])
    assert_same(sealer.open(raw, i["context"]), i["metadata"])
    assert_same(sealer.open(v["armor"], i["context"]), i["metadata"])
    header = sealer.verify(raw, i["context"])
    assert header.as_dict() == {
        "format_version": 1, "suite": 1, "keyring": i["keyring"],
        "key_version": i["key_version"], "key_id": v["key_id"],
        "context": i["context"], "created": i["created"],
        "salt": v["salt"], "nonce": v["nonce"]}
    assert sealedmeta.inspect(v["armor"]) == header
    with pytest.raises(exceptions.ContextMismatch):
        sealer.open(raw, {**i["context"], "extra": "x"})
    # already under the active version: rewrap is the identity
    assert sealer.rewrap(raw) == raw


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_construction_from_scratch(v):
    """Rebuild and open each vector with nothing from sealedmeta."""
    key = bytes.fromhex(v["key"])
    salt = bytes.fromhex(v["salt"])
    nonce = bytes.fromhex(v["nonce"])
    metadata = from_json_value(v["metadata"])
    name = v["keyring"].encode("utf-8")
    raw = bytes.fromhex(v["envelope"])

    # key id = HMAC-SHA256(key, "sealedmeta key id v1")[:16]
    h = hmac.HMAC(key, hashes.SHA256())
    h.update(b"sealedmeta key id v1")
    key_id = h.finalize()[:16]
    assert key_id.hex() == v["key_id"]

    # header: canonical msgpack array of the nine fields, context sorted
    header = msgpack.packb(
        [1, 1, v["keyring"], v["key_version"], key_id,
         dict(sorted(v["context"].items())), v["created"], salt, nonce],
        use_bin_type=True)
    prefix = b"SMETA" + b"\x01" + struct.pack(">H", len(header)) + header

    # HKDF-SHA256(key, salt, info) -> 64 bytes: encryption key, then MAC key
    info = (b"sealedmeta envelope\x00" + bytes([1, 1, len(name)]) + name
            + struct.pack(">I", v["key_version"]))
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=salt, info=info).derive(key)
    enc_key, mac_key = okm[:32], okm[32:]

    payload = msgpack.packb(metadata, use_bin_type=True)
    ciphertext = AESGCM(enc_key).encrypt(nonce, payload, prefix)  # AAD = prefix
    h = hmac.HMAC(mac_key, hashes.SHA256())
    h.update(prefix + ciphertext)
    mac = h.finalize()

    assert prefix + ciphertext + mac == raw
    assert "sealedmeta:" + base64.urlsafe_b64encode(raw).decode().rstrip("=") == v["armor"]

    # and the other direction: split by the layout and open
    assert raw[:5] == b"SMETA" and raw[5] == 1
    length = struct.unpack(">H", raw[6:8])[0]
    got_prefix, body = raw[:8 + length], raw[8 + length:]
    got_ct, got_mac = body[:-32], body[-32:]
    assert msgpack.unpackb(raw[8:8 + length], raw=False)[4] == key_id
    h = hmac.HMAC(mac_key, hashes.SHA256())
    h.update(raw[:-32])
    h.verify(got_mac)
    plain = AESGCM(enc_key).decrypt(nonce, got_ct, got_prefix)
    assert_same(msgpack.unpackb(plain, raw=False), metadata)


def test_library_primitives_agree_with_scratch():
    """The pieces, not only the whole: a change in any of them is named."""
    v = VECTORS[0]
    key = bytes.fromhex(v["key"])
    name = v["keyring"].encode()
    assert crypto.info(1, 1, v["keyring"], v["key_version"]) == (
        b"sealedmeta envelope\x00\x01\x01" + bytes([len(name)]) + name
        + v["key_version"].to_bytes(4, "big"))
    okm = HKDF(algorithm=hashes.SHA256(), length=64, salt=bytes.fromhex(v["salt"]),
               info=crypto.info(1, 1, v["keyring"], v["key_version"])).derive(key)
    # encrypt: AES-256-GCM under the first 32 bytes, HMAC under the last 32.
    nonce = bytes.fromhex(v["nonce"])
    ciphertext, mac = crypto.encrypt(
        key, bytes.fromhex(v["salt"]), nonce,
        crypto.info(1, 1, v["keyring"], v["key_version"]), b"A", b"plain")
    assert AESGCM(okm[:32]).decrypt(nonce, ciphertext, b"A") == b"plain"
    check = hmac.HMAC(okm[32:], hashes.SHA256())
    check.update(b"A" + ciphertext)
    check.verify(mac)
    assert envelope.MAGIC == b"SMETA" and envelope.FORMAT_VERSION == 1
    assert envelope.ARMOR_PREFIX == "sealedmeta:"


@pytest.mark.parametrize("v", VECTORS, ids=IDS)
def test_vector_does_not_open_under_another_key(tmp_path, v):
    i = _inputs(v)
    other = bytes(b ^ 1 for b in i["key"])
    store = FileKeyStore(str(tmp_path / "keys"))
    ring = kr.KeyRing(i["keyring"], (kr.KeyVersion(
        i["key_version"], crypto.key_id(other), kr.KeyState.ACTIVE, 0),))
    store.import_keyring(ring, {i["key_version"]: other})
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        Sealer(store, keyring=i["keyring"]).open(bytes.fromhex(v["envelope"]), i["context"])
    # the other key has another key id: nobody here holds the vector's key
    assert type(info.value) is exceptions.UnknownKey
