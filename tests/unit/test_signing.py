"""Audit signatures: suite 2 (Ed25519 over a suite-1-style envelope), signing
keyrings in the file store, the public keys file and public verification."""

import base64
import dataclasses
import json
import os
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import audit
from sealedmeta import crypto
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import public
from sealedmeta import signing

from tests.unit.helpers import seal_raw

RING = "signed"
CTX = {"backup_id": "b-1", "volume_id": "v-1"}
META = {"volume_id": "v-1", "glance": {"image_id": "42"}, "size": 3}
VECTORS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "vectors", "v1-suite2.json")
SCRIPT = os.path.join(os.path.dirname(sys.executable), "sealedmeta")


@pytest.fixture
def sstore(tmp_path):
    store = FileKeyStore(str(tmp_path / "keys"))
    store.create_keyring(RING, signing=True)
    return store


@pytest.fixture
def ssealer(sstore):
    return Sealer(sstore, keyring=RING)


def public_check(rings, raw, expect=None):
    """(status, reason) of *raw* in public mode."""
    auditor = audit.PublicAuditor(rings, expect=expect, carriers=[])
    finding = auditor.check_bytes("x", raw)
    return finding.status, finding.reason


def rings_of(store, *names):
    return public.parse(public.dumps([store.get_keyring(n) for n in names]))


# -- format and known answer -------------------------------------------------

def test_suite2_vector_byte_for_byte_and_independently():
    with open(VECTORS, encoding="utf-8") as handle:
        doc = json.load(handle)
    assert len(doc["vectors"]) == 1
    v = doc["vectors"][0]
    assert v["format_version"] == 1 and v["suite"] == 2
    key = bytes.fromhex(v["key"])
    seed = bytes.fromhex(v["signing_seed"])
    raw = bytes.fromhex(v["envelope"])
    # The library's own building blocks give the same bytes.
    from tests.unit.test_vectors import GENERATOR
    assert GENERATOR.render_suite2() == open(VECTORS, encoding="utf-8").read()
    # Independent re-derivation from the spec with cryptography's primitives.
    header_bytes = bytes.fromhex(v["header"])
    prefix = b"SMETA\x01" + len(header_bytes).to_bytes(2, "big") + header_bytes
    assert raw.startswith(prefix)
    name = v["keyring"].encode()
    info = (b"sealedmeta envelope\x00" + bytes((1, 2, len(name))) + name
            + v["key_version"].to_bytes(4, "big"))
    okm = HKDF(hashes.SHA256(), 64, bytes.fromhex(v["salt"]), info).derive(key)
    ct = AESGCM(okm[:32]).encrypt(bytes.fromhex(v["nonce"]),
                                  bytes.fromhex(v["payload"]), prefix)
    mac = hmac.HMAC(okm[32:], hashes.SHA256())
    mac.update(prefix + ct)
    body = prefix + ct + mac.finalize()
    sig = ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(body)
    assert body + sig == raw
    assert sig.hex() == v["signature"]
    public_key = bytes.fromhex(v["public_key"])
    ed25519.Ed25519PublicKey.from_public_bytes(public_key).verify(sig, body)
    assert signing.public_key_id(public_key).hex() == v["public_key_id"]
    assert signing.public_key_id(public_key) == __import__("hashlib").sha256(
        b"sealedmeta signing key id v1" + public_key).digest()[:16]
    parsed = envelope.parse(raw)
    assert parsed.signature == sig and parsed.mac == body[-32:]
    assert parsed.authenticated + parsed.ciphertext + parsed.mac + sig == raw
    assert envelope.armor(raw) == v["armor"]


def test_suite2_vector_opens_and_verifies_publicly(tmp_path):
    v = json.load(open(VECTORS, encoding="utf-8"))["vectors"][0]
    key, seed = bytes.fromhex(v["key"]), bytes.fromhex(v["signing_seed"])
    versions = tuple(
        kr.KeyVersion(n, crypto.key_id(os.urandom(32)), kr.KeyState.DECRYPT_ONLY,
                      1, signing.public_key_of(signing.new_seed()))
        for n in (1, 2))
    ring = kr.KeyRing(v["keyring"], versions + (kr.KeyVersion(
        3, crypto.key_id(key), kr.KeyState.ACTIVE, 5,
        signing.public_key_of(seed)),))
    store = FileKeyStore(str(tmp_path / "k"))
    # Versions 1 and 2 are destroyed in this copy (no keys to carry).
    ring = kr.KeyRing(ring.name, tuple(
        dataclasses.replace(x, state=kr.KeyState.DESTROYED) if x.number < 3 else x
        for x in ring.versions))
    store.import_keyring(ring, {3: key}, {3: seed})
    raw = bytes.fromhex(v["envelope"])
    sealer = Sealer(store, keyring=v["keyring"])
    from tests.unit.test_vectors import from_json_value
    assert sealer.open(raw, v["context"]) == from_json_value(v["metadata"])
    assert public_check(rings_of(store, v["keyring"]), raw) == ("valid", None)


def test_parse_of_suite1_and_suite2(ssealer, sealer):
    one = sealer.seal(META, CTX)
    two = ssealer.seal(META, CTX)
    assert envelope.parse(one).signature is None
    parsed = envelope.parse(two)
    a, ct, mac, sig = (parsed.authenticated, parsed.ciphertext, parsed.mac,
                       parsed.signature)
    assert parsed.header.suite == 2 and len(sig) == 64 and len(mac) == 32
    assert a + ct + mac + sig == two
    # A suite-2 envelope too short for mac + signature is malformed.
    with pytest.raises(exceptions.MalformedEnvelope):
        envelope.parse(two[:len(a) + 16 + 32 + 64])
    assert envelope.parse(two[:len(a) + 17 + 32 + 64])


# -- sealing -----------------------------------------------------------------

def test_signing_keyring_seals_suite2_and_plain_one_stays_suite1(
        sstore, ssealer, store, sealer, tmp_path):
    two = ssealer.seal(META, CTX)
    assert envelope.parse(two).header.suite == 2
    assert ssealer.open(two, CTX) == META
    assert ssealer.verify(two, CTX).suite == 2
    assert envelope.parse(sealer.seal(META, CTX)).header.suite == 1
    # The plain keyring's description and files are as before.
    desc = json.load(open(os.path.join(store.path, "cinder-backup", "keyring.json")))
    assert "public_key" not in desc["versions"][0]
    assert sorted(os.listdir(os.path.join(store.path, "cinder-backup"))) == [
        "keyring.json", "v1.key"]
    sdir = os.path.join(sstore.path, RING)
    assert sorted(os.listdir(sdir)) == ["keyring.json", "v1.key", "v1.sign"]
    assert os.stat(os.path.join(sdir, "v1.sign")).st_mode & 0o777 == 0o600
    ring = sstore.get_keyring(RING)
    assert ring.signing and len(ring.active.public_key) == 32
    assert json.load(open(os.path.join(sdir, "keyring.json")))["versions"][0][
        "public_key"] == ring.active.public_key.hex()
    assert signing.public_key_of(sstore.get_signing_key(RING, 1)) == \
        ring.active.public_key


def test_one_signature_per_seal_and_key_cached(sstore):
    calls = []
    real = sstore.get_signing_key
    sstore.get_signing_key = lambda *a: calls.append(a) or real(*a)
    sealer = Sealer(sstore, keyring=RING)
    for i in range(5):
        sealer.seal({"i": i}, CTX)
    assert calls == [(RING, 1)]


def test_signatures_verify_offline_and_context_is_checked(sstore, ssealer):
    rings = rings_of(sstore, RING)
    raw = ssealer.seal(META, CTX)
    assert public_check(rings, raw) == ("valid", None)
    assert public_check(rings, raw, expect={"backup_id": "b-1"})[0] == "valid"
    assert public_check(rings, raw, expect={"backup_id": "b-2"})[0] == \
        "context-mismatch"


def test_every_bit_flip_fails_public_verification(sstore, ssealer):
    rings = rings_of(sstore, RING)
    raw = ssealer.seal({"a": "b"}, CTX)
    for position in range(len(raw)):
        for bit in (0, 3, 7):
            flipped = bytearray(raw)
            flipped[position] ^= 1 << bit
            status, _ = public_check(rings, bytes(flipped))
            assert status != "valid", (position, bit)
    # Truncated or extended: never valid either.
    for cut in (1, 32, 64, 96):
        assert public_check(rings, raw[:-cut])[0] != "valid"
    assert public_check(rings, raw + b"\x00")[0] != "valid"


def test_header_swap_fails_public_verification(sstore, ssealer):
    rings = rings_of(sstore, RING)
    one = ssealer.seal(META, CTX)
    two = ssealer.seal(META, {"backup_id": "b-2", "volume_id": "v-1"})
    end1 = 8 + int.from_bytes(one[6:8], "big")
    end2 = 8 + int.from_bytes(two[6:8], "big")
    # Header of two, body (ciphertext, mac, signature) of one, and back.
    assert public_check(rings, two[:end2] + one[end1:])[0] == "invalid"
    assert public_check(rings, one[:end1] + two[end2:])[0] == "invalid"
    # Signature of another envelope.
    assert public_check(rings, one[:-64] + two[-64:])[0] == "invalid"


def _symmetric_key_forgeries(sstore, ssealer):
    """What a holder of a signing version's symmetric key alone can make:
    {name: envelope bytes}, each with a correct MAC."""
    key = sstore.get_key(RING, 1)
    payload = envelope.encode_payload({"forged": True})
    body = seal_raw(key, RING, 1, payload, context=CTX, suite=2)
    genuine = ssealer.seal(META, CTX)
    return {
        "suite 1": seal_raw(key, RING, 1, payload, context=CTX),
        "suite 2, another key's signature":
            body + ed25519.Ed25519PrivateKey.generate().sign(body),
        "suite 2, a genuine envelope's signature": body + genuine[-64:],
        "suite 2, flipped signature bit":
            genuine[:-1] + bytes((genuine[-1] ^ 1,)),
    }


def test_symmetric_key_holder_cannot_forge(sstore, ssealer, tmp_path):
    # Key holders (open, verify, rewrap, the keyed audit) and the public
    # audit give one answer: every forgery is refused, with the one error.
    rings = rings_of(sstore, RING)
    assert sstore.get_keyring(RING).active.public_key is not None
    forgeries = _symmetric_key_forgeries(sstore, ssealer)
    sealer = Sealer(sstore, keyring=RING)
    for name, raw in forgeries.items():
        for call in (lambda: sealer.open(raw, CTX), lambda: sealer.verify(raw),
                     lambda: sealer.rewrap(raw)):
            with pytest.raises(exceptions.InvalidEnvelope) as info:
                call()
            assert type(info.value) is exceptions.InvalidEnvelope, name
            assert str(info.value) == crypto.AUTH_FAILED, name
        assert public_check(rings, raw)[0] == "invalid", name
        path = tmp_path / "audit" / (name.replace(" ", "_").replace(",", "")
                                     + ".env")
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(raw)
    report = audit.audit(sstore, [str(tmp_path / "audit")])
    assert [f.status for f in report.findings] == ["invalid"] * len(forgeries)
    public_report = audit.public_audit(rings, [str(tmp_path / "audit")])
    assert [f.status for f in public_report.findings] == (
        ["invalid"] * len(forgeries))
    # The genuine envelope passes both.
    genuine = ssealer.seal(META, CTX)
    assert sealer.open(genuine, CTX) == META
    assert public_check(rings, genuine)[0] == "valid"


def test_rewrap_tree_leaves_forgeries_untouched(sstore, ssealer, tmp_path):
    from sealedmeta import rewrap
    tree = tmp_path / "tree"
    tree.mkdir()
    forgeries = _symmetric_key_forgeries(sstore, ssealer)
    for i, raw in enumerate(forgeries.values()):
        (tree / ("f%d.env" % i)).write_bytes(raw)
    sstore.rotate(RING)
    summary = rewrap.rewrap(sstore, [str(tree)], keyring=RING)
    assert summary.count(rewrap.FAILED) == len(forgeries)
    for i, raw in enumerate(forgeries.values()):
        assert (tree / ("f%d.env" % i)).read_bytes() == raw


def test_rekey_signing_makes_a_plain_keyring_sign(store, ring, sealer):
    from sealedmeta import admin, coordination
    old = sealer.seal(META, CTX)
    assert envelope.parse(old).header.suite == 1
    result = admin.rekey(store, ring.name, coordination.NoCoordination(),
                         signing=True)
    assert result.version.public_key is not None
    assert store.get_keyring(ring.name).version(1).public_key is None
    fresh = Sealer(store, keyring=ring.name)
    new = fresh.seal(META, CTX)
    assert envelope.parse(new).header.suite == 2
    rings = rings_of(store, ring.name)
    assert public_check(rings, new)[0] == "valid"
    # The old version has no key pair: its envelopes open as before and
    # stay "unsigned" for the public audit.
    assert fresh.open(old, CTX) == META
    assert public_check(rings, old)[0] == "unsigned"
    # A signing keyring stays one: the next rotation signs without asking.
    assert store.rotate(ring.name).public_key is not None
    # The way back is refused.
    with pytest.raises(exceptions.KeyStoreError):
        kr.rotated(store.get_keyring(ring.name), b"\x01" * 16)


def test_downgrade_by_stripping_the_signature_fails(sstore, ssealer):
    rings = rings_of(sstore, RING)
    raw = ssealer.seal(META, CTX)
    stripped = raw[:-64]
    # Still labelled suite 2: too short / mac+sig misplaced.
    assert public_check(rings, stripped)[0] != "valid"
    with pytest.raises(exceptions.InvalidEnvelope):
        ssealer.open(stripped, CTX)
    # Relabelled suite 1: the MAC (over the header with the suite) fails for
    # key holders, and public verification calls it invalid: its version
    # has a key pair, so it signs everything it seals.
    h = envelope.parse(raw).header
    relabel = envelope.encode_prefix(envelope.encode_header(
        dataclasses.replace(h, suite=1))) + stripped[8 + int.from_bytes(
            raw[6:8], "big"):]
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        ssealer.open(relabel, CTX)
    assert type(info.value) is exceptions.InvalidEnvelope
    assert public_check(rings, relabel)[0] == "invalid"


def test_unknown_keyring_and_key_and_version(sstore, ssealer, tmp_path):
    raw = ssealer.seal(META, CTX)
    other = FileKeyStore(str(tmp_path / "other"))
    other.create_keyring("elsewhere", signing=True)
    assert public_check(rings_of(other, "elsewhere"), raw)[0] == "unknown-key"
    other.create_keyring(RING, signing=True)
    assert public_check(rings_of(other, RING), raw)[0] == "unknown-key"
    # The right key id under another version number: a forged header.
    rings = rings_of(sstore, RING)
    h = envelope.parse(raw).header
    forged = envelope.encode_prefix(envelope.encode_header(
        dataclasses.replace(h, key_version=2))) + raw[8 + int.from_bytes(
            raw[6:8], "big"):]
    assert public_check(rings, forged)[0] == "invalid"


# -- lifecycle -----------------------------------------------------------------

def test_rotation_rewrap_destroy_with_signing_keys(sstore, ssealer):
    old = ssealer.seal(META, CTX)
    v2 = sstore.rotate(RING)
    assert v2.public_key is not None and v2.public_key != \
        sstore.get_keyring(RING).version(1).public_key
    sdir = os.path.join(sstore.path, RING)
    assert {"v1.sign", "v2.sign"} <= set(os.listdir(sdir))
    sealer = Sealer(sstore, keyring=RING)
    new = sealer.seal(META, CTX)
    assert envelope.parse(new).header.key_version == 2
    rings = rings_of(sstore, RING)
    assert public_check(rings, old)[0] == "valid"
    assert public_check(rings, new)[0] == "valid"
    # Rewrap: suite 2 under version 2, signed with version 2's key.
    rewrapped = sealer.rewrap(old)
    h = envelope.parse(rewrapped).header
    assert (h.suite, h.key_version) == (2, 2)
    assert public_check(rings, rewrapped)[0] == "valid"
    assert sealer.open(rewrapped, CTX) == META
    # Only the active version signs.
    with pytest.raises(exceptions.KeyUnavailable):
        sstore.get_signing_key(RING, 1)
    # Retire, destroy: the private key goes with the symmetric key.
    sstore.set_state(RING, 1, "retired")
    assert public_check(rings_of(sstore, RING), old)[0] == "retired-key"
    # Pending destruction: published as retired, refused the same way.
    sstore.set_state(RING, 1, "pending-destruction", destroy_after=2**31)
    assert public.document([sstore.get_keyring(RING)])["keyrings"][0][
        "versions"][0]["state"] == "retired"
    assert public_check(rings_of(sstore, RING), old)[0] == "retired-key"
    with pytest.raises(exceptions.KeyUnavailable,
                       match="is pending-destruction"):
        Sealer(sstore, keyring=RING).open(old, CTX)
    assert "v1.sign" in os.listdir(sdir)         # kept until destroyed
    sstore.set_state(RING, 1, "destroyed")
    assert not {"v1.key", "v1.sign"} & set(os.listdir(sdir))
    assert {"v2.key", "v2.sign"} <= set(os.listdir(sdir))
    ring = sstore.get_keyring(RING)
    assert ring.version(1).public_key is not None  # still published
    assert public_check(rings_of(sstore, RING), old)[0] == "destroyed-key"
    assert sstore.export_signing_keys(ring).keys() == {2}


def test_copy_carries_signing_keys_and_import_is_strict(sstore, ssealer, tmp_path):
    sstore.rotate(RING)
    raw = Sealer(sstore, keyring=RING).seal(META, CTX)
    ring, keys = sstore.export_keyring(RING)
    seeds = sstore.export_signing_keys(ring)
    assert set(seeds) == {1, 2}
    bad = [
        ({1: seeds[1]}, "no signing key given for version 2"),
        ({1: seeds[1], 2: seeds[1]}, "does not match its public key"),
        ({**seeds, 3: seeds[1]}, "versions the keyring does not have"),
        ({1: seeds[1], 2: b"short"}, "must be 32 bytes"),
        ({}, "no signing key given"),
    ]
    for n, (given, message) in enumerate(bad):
        target = FileKeyStore(str(tmp_path / ("bad%d" % n)))
        with pytest.raises(exceptions.KeyStoreError, match=message):
            target.import_keyring(ring, keys, given)
        assert target.list_keyrings() == []
    target = FileKeyStore(str(tmp_path / "copy"))
    target.import_keyring(ring, keys, seeds)
    copied = Sealer(target, keyring=RING)
    assert copied.open(raw, CTX) == META
    again = copied.seal(META, CTX)
    assert public_check(rings_of(sstore, RING), again)[0] == "valid"
    # A plain keyring refuses signing keys.
    plain = FileKeyStore(str(tmp_path / "plain"))
    plain.create_keyring("p")
    pring, pkeys = plain.export_keyring("p")
    with pytest.raises(exceptions.KeyStoreError, match="has no public key"):
        FileKeyStore(str(tmp_path / "p2")).import_keyring(
            pring, pkeys, {1: signing.new_seed()})


def test_tampered_signing_key_file_is_refused(sstore):
    path = os.path.join(sstore.path, RING, "v1.sign")
    os.chmod(path, 0o600)
    with open(path, "wb") as handle:
        handle.write(signing.new_seed())
    with pytest.raises(exceptions.KeyStoreError, match="does not match"):
        Sealer(sstore, keyring=RING).seal(META, CTX)


def test_keyring_description_public_key_is_checked(sstore):
    path = os.path.join(sstore.path, RING, "keyring.json")
    desc = json.load(open(path))
    for bad in ("zz", "00" * 31, 5):
        desc["versions"][0]["public_key"] = bad
        os.chmod(path, 0o600)
        with open(path, "w") as handle:
            json.dump(desc, handle)
        with pytest.raises(exceptions.KeyStoreError, match="malformed"):
            sstore.get_keyring(RING)


# -- public keys file ----------------------------------------------------------

def _doc(sstore):
    return json.loads(public.dumps([sstore.get_keyring(RING)]))


def test_public_keys_document_shape(sstore):
    ring = sstore.get_keyring(RING)
    doc = _doc(sstore)
    assert doc == {"format": "sealedmeta-public-keys", "version": 1, "keyrings": [
        {"name": RING, "versions": [{
            "version": 1, "key_id": ring.active.key_id.hex(), "state": "active",
            "created": ring.active.created,
            "public_key": base64.urlsafe_b64encode(ring.active.public_key)
            .rstrip(b"=").decode(),
            "public_key_id": signing.public_key_id(ring.active.public_key).hex()}]}]}
    assert public.parse(public.dumps([ring])) == {RING: ring}


def test_export_of_a_plain_keyring_is_refused(store, ring):
    with pytest.raises(public.PublicKeysError, match="not a signing keyring"):
        public.dumps([ring])


def _mutations(doc):
    v = lambda d: d["keyrings"][0]["versions"][0]  # noqa: E731
    pk = v(doc)["public_key"]
    yield "format", lambda d: d.update(format="other")
    yield "version", lambda d: d.update(version=2)
    yield "version", lambda d: d.update(version=True)
    yield "version", lambda d: d.update(version="1")
    yield "unexpected", lambda d: d.update(extra=1)
    yield "missing", lambda d: d.pop("keyrings")
    yield "keyrings must be a list", lambda d: d.update(keyrings={})
    yield "keyrings must be a list", lambda d: d.update(keyrings=[])
    yield "name is not a valid", lambda d: d["keyrings"][0].update(name="../x")
    yield "name is not a valid", lambda d: d["keyrings"][0].update(name=7)
    yield "versions must be a list", lambda d: d["keyrings"][0].update(versions=None)
    yield "must be a JSON object", lambda d: d["keyrings"][0].update(versions=[1])
    yield "listed twice", lambda d: d["keyrings"].append(d["keyrings"][0])
    yield "version must be an integer", lambda d: v(d).update(version=1.0)
    yield "version must be an integer", lambda d: v(d).update(version=0)
    yield "key_id must be", lambda d: v(d).update(key_id="AB" * 16)
    yield "key_id must be", lambda d: v(d).update(key_id=None)
    yield "state must be", lambda d: v(d).update(state="pending")
    yield "created must be", lambda d: v(d).update(created=-1)
    yield "created must be", lambda d: v(d).update(created="1")
    yield "public_key is not", lambda d: v(d).update(public_key=pk + "=")
    yield "public_key is not", lambda d: v(d).update(public_key=pk[:-1] + "+")
    yield "public_key is not", lambda d: v(d).update(public_key=pk[:-1] + "B")
    yield "public_key is not", lambda d: v(d).update(public_key=pk + "AA")
    yield "must be 32 bytes, not 33", lambda d: v(d).update(public_key=pk + "A")
    yield "public_key is not", lambda d: v(d).update(public_key=["x"])
    yield "must be 32 bytes", lambda d: v(d).update(public_key=pk[:-3])
    yield "public_key_id does not match", lambda d: v(d).update(
        public_key_id="0" * 32)
    yield "public_key_id must be", lambda d: v(d).update(public_key_id=1)
    yield "active versions", lambda d: v(d).update(state="retired")


def test_hostile_public_keys_documents(sstore):
    good = _doc(sstore)
    for message, mutate in _mutations(good):
        doc = json.loads(json.dumps(good))
        mutate(doc)
        with pytest.raises(public.PublicKeysError, match=message):
            public.parse(json.dumps(doc).encode())


@pytest.mark.parametrize("data,message", [
    (b"", "not valid JSON"),
    (b"[]", "must be a JSON object"),
    (b"null", "must be a JSON object"),
    (b'{"format": 1', "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b'{"a": NaN}', "not valid JSON"),
    (b'{"a": 1, "a": 2}', "duplicate key"),
    (b"[" * 100000, "not valid JSON"),
    (b" " * (public.MAX_SIZE + 1), "over the"),
])
def test_hostile_public_keys_bytes(data, message):
    with pytest.raises(public.PublicKeysError, match=message):
        public.parse(data)


def test_truncated_public_keys_file(sstore):
    data = public.dumps([sstore.get_keyring(RING)])
    for cut in range(0, len(data) - 2, 7):
        with pytest.raises(public.PublicKeysError):
            public.parse(data[:cut])


def test_public_keys_file_unreadable(tmp_path):
    with pytest.raises(public.PublicKeysError, match="cannot read"):
        public.load(str(tmp_path / "missing.json"))
    with pytest.raises(public.PublicKeysError, match="directory"):
        public.load(str(tmp_path))


# -- the command line ------------------------------------------------------------

def _run(tmp_path, *args):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "HOME": str(tmp_path / "home"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([SCRIPT, *args], capture_output=True, env=env,
                          cwd=str(tmp_path), timeout=120)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


def test_cli_keyring_show_gives_the_public_key_ids(tmp_path):
    """keyring show lists each signing version's public key id, the same id
    keyring create --signing prints and the public keys file carries."""
    repo = str(tmp_path / "keys")
    rc, out, err = _run(tmp_path, "--key-repository", repo, "keyring", "create",
                        "sr", "--signing", "-f", "json")
    assert rc == 0, err
    created = json.loads(out)["public_key_id"]
    store = FileKeyStore(repo)
    store.rotate("sr")
    store.set_state("sr", 1, "retired")
    store.set_state("sr", 1, "destroyed")
    rc, out, err = _run(tmp_path, "--key-repository", repo, "keyring", "show",
                        "sr", "-f", "json")
    assert rc == 0, err
    shown = json.loads(out)
    rc, _, err = _run(tmp_path, "--key-repository", repo, "keyring",
                      "export-public", "sr", "-o", "pub.json")
    assert rc == 0, err
    exported = json.loads((tmp_path / "pub.json").read_text())
    assert [(r["version"], r["state"], r["public_key_id"]) for r in shown] == [
        (v["version"], v["state"], v["public_key_id"])
        for v in exported["keyrings"][0]["versions"]]
    assert shown[0]["public_key_id"] == created
    assert shown[0]["public_key_id"] != shown[1]["public_key_id"]
    rc, out, err = _run(tmp_path, "--key-repository", repo, "keyring", "show",
                        "sr")
    assert rc == 0 and "public_key_id" in out and created in out, err
    # A keyring without signatures keeps its columns.
    rc, _, err = _run(tmp_path, "--key-repository", repo, "keyring", "create",
                      "pl")
    rc, out, err = _run(tmp_path, "--key-repository", repo, "keyring", "show",
                        "pl", "-f", "json")
    assert rc == 0, err
    assert sorted(json.loads(out)[0]) == ["created", "key_id", "state",
                                          "version"]


def test_cli_public_verification_needs_no_key_store(tmp_path):
    repo = str(tmp_path / "keys")
    rc, out, err = _run(tmp_path, "--key-repository", repo, "keyring", "create",
                        "sr", "--signing", "-f", "json")
    assert rc == 0, err
    assert json.loads(out)["public_key_id"]
    (tmp_path / "m.json").write_text('{"a": 1}')
    envs = tmp_path / "envs"
    envs.mkdir()
    rc, _, err = _run(tmp_path, "--key-repository", repo, "seal", "--keyring", "sr",
                      "--context", "backup_id=b1", "m.json", "-o", str(envs / "e1"))
    assert rc == 0, err
    rc, _, err = _run(tmp_path, "--key-repository", repo, "keyring",
                      "export-public", "sr", "-o", "pub.json")
    assert rc == 0, err
    assert os.stat(tmp_path / "pub.json").st_mode & 0o777 == 0o644
    # No key store: a repository that does not exist, no config, no data dir.
    nowhere = tmp_path / "nowhere"
    args = ("--key-repository", str(nowhere), "verify", "--public-keys",
            "pub.json")
    rc, out, err = _run(tmp_path, *args, "--expect", "backup_id=b1", "-f", "json",
                        str(envs))
    assert rc == 0, err
    report = json.loads(out)
    assert report["format"] == 2 and report["mode"] == "public"
    assert report["summary"]["counts"]["valid"] == 1
    assert set(report["summary"]["counts"]) == set(audit.PUBLIC_STATUSES)
    assert not nowhere.exists() and not (tmp_path / "xdg").exists()
    # Wrong expectation, a suite-1 envelope, a flipped bit: exit 1.
    rc, out, _ = _run(tmp_path, *args, "--expect", "backup_id=b2", str(envs))
    assert rc == 1 and "context-mismatch" in out
    rc, _, err = _run(tmp_path, "--key-repository", repo, "keyring", "create", "pl")
    rc, _, err = _run(tmp_path, "--key-repository", repo, "seal", "--keyring", "pl",
                      "--context", "backup_id=b1", "m.json", "-o",
                      str(envs / "e2"))
    assert rc == 0, err
    raw = bytearray((envs / "e1").read_bytes())
    raw[-70] ^= 1
    (envs / "e3").write_bytes(bytes(raw))
    rc, out, _ = _run(tmp_path, *args, "-f", "json", str(envs))
    assert rc == 1
    statuses = {e["path"].rsplit("/", 1)[-1]: e["status"]
                for e in json.loads(out)["envelopes"]}
    assert statuses == {"e1": "valid", "e2": "unsigned", "e3": "invalid"}
    assert not nowhere.exists()
    # The default mode's report keeps format 1 and its statuses.
    rc, out, _ = _run(tmp_path, "--key-repository", repo, "verify", "-f", "json",
                      str(envs))
    report = json.loads(out)
    assert report["format"] == 1 and "mode" not in report
    assert set(report["summary"]["counts"]) == set(audit.STATUSES)
    assert {e["path"].rsplit("/", 1)[-1]: e["status"]
            for e in report["envelopes"]} == {
        "e1": "valid", "e2": "valid", "e3": "invalid"}
    # Unusable public keys files: exit 2, one clear line, no report.
    (tmp_path / "bad.json").write_text('{"format": "sealedmeta-public-keys"')
    (tmp_path / "big.json").write_bytes(b" " * (public.MAX_SIZE + 1))
    doc = json.loads((tmp_path / "pub.json").read_text())
    doc["keyrings"][0]["versions"][0]["public_key"] += "="
    (tmp_path / "b64.json").write_text(json.dumps(doc))
    for name, message in (("bad.json", "not valid JSON"),
                          ("big.json", "over the"),
                          ("b64.json", "not unpadded base64url"),
                          ("missing.json", "cannot read")):
        rc, out, err = _run(tmp_path, "--key-repository", str(nowhere), "verify",
                            "--public-keys", name, str(envs))
        assert rc == 2 and out == "" and message in err, (name, err)
    assert not nowhere.exists()
    # export-public of a plain keyring: refused.
    rc, _, err = _run(tmp_path, "--key-repository", repo, "keyring",
                      "export-public", "pl", "-o", "x.json")
    assert rc != 0 and "not a signing keyring" in err
    assert not (tmp_path / "x.json").exists()


def test_public_mode_builds_no_store(tmp_path, monkeypatch, sstore, ssealer):
    from sealedmeta import keystores
    from sealedmeta.cmd import main

    def refuse(*args, **kwargs):
        raise AssertionError("the public mode must not build a key store")
    monkeypatch.setattr(keystores, "load", refuse)
    (tmp_path / "e").write_bytes(ssealer.seal(META, CTX))
    (tmp_path / "pub.json").write_bytes(public.dumps([sstore.get_keyring(RING)]))
    rc = main.main(["--key-repository", str(tmp_path / "none"), "verify",
                    "--public-keys", str(tmp_path / "pub.json"),
                    str(tmp_path / "e")])
    assert rc == 0


def test_public_auditor_over_cinder_carrier(tmp_path, sstore, ssealer):
    raw = ssealer.seal(META, CTX)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "x").write_bytes(raw)
    (tmp_path / "d" / "notes.txt").write_text("hello")
    report = audit.public_audit(rings_of(sstore, RING), [str(tmp_path / "d")])
    data = report.as_dict()
    assert data["summary"]["counts"]["valid"] == 1 and data["summary"]["skipped"] == 1
    assert data["versions"][0]["state"] == "active"
