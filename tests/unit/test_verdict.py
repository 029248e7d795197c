"""The one verdict (sealedmeta.verdict): every reader gets its answer from
judge(), so a key holder (the Sealer, the keyed auditor, rewrap) and an
auditor with public keys only agree on every envelope."""

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import audit
from sealedmeta import crypto
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import public
from sealedmeta import rewrap
from sealedmeta import verdict

from tests.unit.helpers import forge
from tests.unit.helpers import seal_raw

RING = "signed"
CTX = {"backup_id": "b-1"}
META = {"image_id": "42"}

# What a key holder's exception says, as a status.
_STATUS_OF = [(exceptions.UnsupportedFormat, verdict.MALFORMED),
              (exceptions.UnknownKey, verdict.UNKNOWN_KEY),
              (exceptions.KeyUnavailable, None),   # from its message
              (exceptions.InvalidEnvelope, verdict.INVALID)]


def key_holder_status(sealer, raw):
    try:
        sealer.verify(raw)
    except exceptions.SealedMetaError as exc:
        for kind, status in _STATUS_OF:
            if isinstance(exc, kind):
                return status or ("retired-key" if "retired" in str(exc)
                                  else "destroyed-key")
        raise
    return verdict.VALID


@pytest.fixture
def world(tmp_path):
    """A signing keyring: version 1 retired (then destroyed by some tests),
    version 2 decrypt-only, version 3 active; genuine envelopes under each
    and forgeries made with each version's symmetric key alone."""
    store = FileKeyStore(str(tmp_path / "keys"))
    store.create_keyring(RING, signing=True)
    sealer = Sealer(store, keyring=RING)
    made = {}
    keys = {}
    for number in (1, 2, 3):
        if number > 1:
            store.rotate(RING)
            sealer.refresh()
        keys[number] = store.get_key(RING, number)
        made["genuine v%d" % number] = sealer.seal(META, CTX)
    for number, key in keys.items():
        payload = envelope.encode_payload({"forged": True})
        body = seal_raw(key, RING, number, payload, context=CTX, suite=2)
        made["suite 1 v%d" % number] = seal_raw(key, RING, number, payload,
                                                 context=CTX)
        made["other signature v%d" % number] = (
            body + ed25519.Ed25519PrivateKey.generate().sign(body))
    made["number swapped"] = forge(made["genuine v3"], key_version=2)
    made["unknown suite"] = forge(made["genuine v3"], suite=7)
    made["unknown key id"] = forge(made["genuine v3"], key_id=b"\x01" * 16)
    made["unknown keyring"] = forge(made["genuine v3"], keyring="elsewhere")
    store.set_state(RING, 1, "retired")
    return store, made


def statuses(store, made, tmp_path):
    """{name: (key holder, keyed audit, public audit, rewrap reason)}."""
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    for name, raw in made.items():
        (tree / (name.replace(" ", "_") + ".env")).write_bytes(raw)
    keyed = {f.path: f.status for f in audit.audit(store, [str(tree)]).findings}
    rings = public.parse(public.dumps([store.get_keyring(RING)]))
    public_ = {f.path: f.status
               for f in audit.public_audit(rings, [str(tree)]).findings}
    sealer = Sealer(store, keyring=RING)
    result = {}
    for name, raw in made.items():
        path = str(tree / (name.replace(" ", "_") + ".env"))
        result[name] = (key_holder_status(sealer, raw), keyed[path],
                        public_[path])
    return result


@pytest.mark.parametrize("destroyed", [False, True])
def test_key_holders_and_public_auditors_give_one_answer(world, tmp_path,
                                                          destroyed):
    store, made = world
    if destroyed:
        store.set_state(RING, 1, "destroyed")
    refused = "destroyed-key" if destroyed else "retired-key"
    expected = {
        # Under a version that opens nothing, a forgery is refused for its
        # version, by everyone, before any signature is looked at.
        "genuine v1": refused, "suite 1 v1": refused,
        "other signature v1": refused,
        "genuine v2": "valid", "suite 1 v2": "invalid",
        "other signature v2": "invalid",
        "genuine v3": "valid", "suite 1 v3": "invalid",
        "other signature v3": "invalid",
        "number swapped": "invalid", "unknown suite": "malformed",
        "unknown key id": "unknown-key", "unknown keyring": "unknown-key",
    }
    got = statuses(store, made, tmp_path)
    assert got == {name: (status,) * 3 for name, status in expected.items()}


def test_rewrap_refuses_what_the_verdict_refuses(world, tmp_path):
    store, made = world
    tree = tmp_path / "tree"
    tree.mkdir()
    for name, raw in made.items():
        (tree / (name.replace(" ", "_") + ".env")).write_bytes(raw)
    summary = rewrap.rewrap(store, [str(tree)], keyring=RING)
    reasons = {o.path.rsplit("/", 1)[-1][:-4].replace("_", " "): o.reason
               for o in summary.outcomes if o.status == rewrap.FAILED}
    assert reasons == {
        "genuine v1": "version 1 of keyring 'signed' is retired",
        "suite 1 v1": "version 1 of keyring 'signed' is retired",
        "other signature v1": "version 1 of keyring 'signed' is retired",
        "suite 1 v2": crypto.AUTH_FAILED,
        "other signature v2": crypto.AUTH_FAILED,
        "suite 1 v3": crypto.AUTH_FAILED,
        "other signature v3": crypto.AUTH_FAILED,
        "number swapped": crypto.AUTH_FAILED,
        "unknown suite": "unsupported algorithm suite 7 (this library knows"
                         " 1 and 2)",
        "unknown key id": "keyring 'signed' has no version with key id"
                          " 01010101010101010101010101010101 (the envelope"
                          " names version 3)",
    }


# -- the function itself --------------------------------------------------------

def _ring(*versions):
    return kr.KeyRing("r", tuple(versions))


def _version(number, state="active", key_id=None, public_key=None):
    return kr.KeyVersion(number, key_id or bytes([number]) * 16,
                         kr.KeyState(state), 0, public_key)


def _header(**fields):
    values = dict(format_version=1, suite=1, keyring="r", key_version=1,
                  key_id=b"\x01" * 16, context={}, created=0,
                  salt=b"s" * 32, nonce=b"n" * 12)
    values.update(fields)
    return envelope.Header(**values)


@pytest.mark.parametrize("ring, header, public, status", [
    (None, _header(), False, verdict.UNKNOWN_KEY),
    (None, _header(), True, verdict.UNSIGNED),
    (None, _header(suite=2), True, verdict.UNKNOWN_KEY),
    (None, _header(suite=0), False, verdict.MALFORMED),
    (_ring(_version(1)), _header(keyring="s"), False, verdict.UNKNOWN_KEY),
    (_ring(_version(1)), _header(key_id=b"\x02" * 16), False,
     verdict.UNKNOWN_KEY),
    (_ring(_version(1, "decrypt-only"), _version(2)),
     _header(key_version=2), False, verdict.INVALID),
    (_ring(_version(1, "retired"), _version(2)), _header(), False,
     verdict.RETIRED_KEY),
    (_ring(_version(1, "destroyed"), _version(2)), _header(), True,
     verdict.UNSIGNED),
    (_ring(_version(1, "decrypt-only"), _version(2)), _header(), False,
     verdict.VALID),
    (_ring(_version(1, public_key=b"\x07" * 32)), _header(), False,
     verdict.INVALID),
    (_ring(_version(1)), _header(suite=2), True, verdict.UNSIGNED),
], ids=["no keyring", "no keyring, public, suite 1",
        "no keyring, public, suite 2", "unknown suite", "another keyring",
        "unknown key id", "number swapped", "retired",
        "public, suite 1, no key pair", "decrypt-only",
        "key pair, suite 1", "public, suite 2, no key pair"])
def test_judge(ring, header, public, status):
    got = verdict.judge(ring, header, None, None, public=public)
    assert got.status == status
    assert (got.reason is None) == (status == verdict.VALID)


def test_of_version_and_the_errors_it_makes():
    ring = _ring(_version(1, "retired"), _version(2, "decrypt-only"),
                 _version(3))
    assert verdict.of_version(ring, 2) == (verdict.VALID, None,
                                           ring.version(2))
    retired = verdict.of_version(ring, 1)
    assert retired[:2] == (verdict.RETIRED_KEY,
                           "version 1 of keyring 'r' is retired")
    error = retired.error(refused="claims")
    assert type(error) is exceptions.KeyUnavailable
    assert str(error) == ("version 1 of keyring 'r' is retired; claims under"
                          " it are refused")
    unknown = verdict.of_version(ring, 9)
    assert unknown[:2] == (verdict.UNKNOWN_KEY, "keyring 'r' has no version 9")
    assert type(unknown.error(hint="; later")) is exceptions.UnknownKey
    assert str(unknown.error(hint="; later")) == (
        "keyring 'r' has no version 9; later")
    forged = verdict.Verdict(verdict.INVALID, "anything")
    assert type(forged.error()) is exceptions.InvalidEnvelope
    assert str(forged.error()) == crypto.AUTH_FAILED
    assert type(verdict.judge(None, _header(suite=9)).error()) is \
        exceptions.UnsupportedFormat
