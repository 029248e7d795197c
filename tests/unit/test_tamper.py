"""Requirements 3 and 4: any change, wrong context, wrong key, spliced parts."""

import collections
import string

import pytest

import sealedmeta
from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import crypto
from sealedmeta import envelope
from sealedmeta import exceptions

from tests.unit.helpers import forge
from tests.unit.helpers import header_end
from tests.unit.helpers import split

CONTEXT = {"backup_id": "8a3c1e0e-6d3b-4c52-9b8f-0d7c5e1b2a90",
           "volume_id": "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"}
METADATA = {"volume_id": CONTEXT["volume_id"], "size": 10, "container": "backups",
            "objects": ["volume_f1e2-00001", "volume_f1e2-00002"],
            "sha256": bytes(range(64)), "digest": bytes(range(32)), "parent_id": None,
            "incremental": False,
            "compression": "zlib", "ratio": 0.73}
# UnknownKey: a flip in the keyring name or key id names a key nobody has.
AUTH_ERROR_TYPES = (exceptions.InvalidEnvelope, exceptions.MalformedEnvelope,
                    exceptions.UnsupportedFormat, exceptions.UnknownKey)


@pytest.fixture
def strict_sealer(store, ring):
    # refresh_interval=0: every unknown key id is looked up again, so the
    # result never depends on the rate limit (tested in test_sealer_cache)
    return Sealer(store, keyring=ring.name, refresh_interval=0)


@pytest.fixture
def big(strict_sealer):
    raw = strict_sealer.seal(METADATA, CONTEXT)
    assert len(raw) >= 500
    return raw


def assert_auth_failure(exc):
    assert type(exc) is exceptions.InvalidEnvelope
    assert str(exc) == crypto.AUTH_FAILED


def assert_unknown_key(exc):
    """A key nobody in this store has: refused as an envelope AND a key problem."""
    assert type(exc) is exceptions.UnknownKey
    assert isinstance(exc, exceptions.InvalidEnvelope)
    assert isinstance(exc, exceptions.KeyUnavailable)


OPENERS = {
    "open": lambda s, data: s.open(data, CONTEXT),
    "verify": lambda s, data: s.verify(data, CONTEXT),
    "rewrap": lambda s, data: s.rewrap(data),
}


@pytest.mark.parametrize("how", sorted(OPENERS))
def test_every_single_bit_flip_is_rejected(strict_sealer, big, how):
    opener = OPENERS[how]
    assert opener(strict_sealer, big) is not None  # the original is fine
    body_start = header_end(big)
    seen = collections.Counter()
    cases = 0
    for index in range(len(big)):
        for bit in range(8):
            flipped = bytearray(big)
            flipped[index] ^= 1 << bit
            with pytest.raises(exceptions.InvalidEnvelope) as info:
                opener(strict_sealer, bytes(flipped))
            exc = info.value
            # authentication comes before the context check: a flip never
            # reaches "authentic but another context"
            assert type(exc) in AUTH_ERROR_TYPES, (index, bit, type(exc))
            if index >= body_start:  # ciphertext or MAC: the one auth error
                assert_auth_failure(exc)
            seen[type(exc).__name__] += 1
            cases += 1
    assert cases == 8 * len(big)
    assert sum(seen.values()) == 8 * len(big)
    # the header region produced structural errors too, not only auth failures
    assert seen["MalformedEnvelope"] > 0
    assert seen["UnsupportedFormat"] > 0
    assert seen["InvalidEnvelope"] >= 8 * (len(big) - body_start)


def test_every_truncation_is_rejected(strict_sealer, big):
    body_start = header_end(big)
    full_header = sealedmeta.inspect(big)
    cases = 0
    for length in range(len(big)):
        cut = big[:length]
        with pytest.raises(exceptions.InvalidEnvelope) as info:
            strict_sealer.open(cut, CONTEXT)
        if length >= body_start + 16 + 32 + 1:
            # structurally complete: only authentication can tell
            assert_auth_failure(info.value)
            assert sealedmeta.inspect(cut) == full_header  # inspect never verifies
        else:
            assert isinstance(info.value, exceptions.MalformedEnvelope)
            with pytest.raises(exceptions.MalformedEnvelope):
                sealedmeta.inspect(cut)
            with pytest.raises(exceptions.MalformedEnvelope):
                envelope.parse(cut)
        cases += 1
    assert cases == len(big)


def test_every_one_byte_extension_is_rejected(strict_sealer, big):
    cases = 0
    for value in range(256):
        with pytest.raises(exceptions.InvalidEnvelope) as info:
            strict_sealer.open(big + bytes((value,)), CONTEXT)
        assert_auth_failure(info.value)
        cases += 1
    text = sealedmeta.armor(big)
    for char in string.ascii_letters + string.digits + "-_":
        with pytest.raises(exceptions.InvalidEnvelope):
            strict_sealer.open(text + char, CONTEXT)
        cases += 1
    assert cases == 256 + 64


def test_prefix_and_suffix_junk_rejected(strict_sealer, big):
    for junk in (b"\x00", b"SMETA", big):
        with pytest.raises(exceptions.InvalidEnvelope):
            strict_sealer.open(junk + big, CONTEXT)
        with pytest.raises(exceptions.InvalidEnvelope):
            strict_sealer.open(big + junk, CONTEXT)


# -- requirement 4 ------------------------------------------------------------

@pytest.mark.parametrize("wrong", [
    pytest.param({**CONTEXT, "backup_id": "another"}, id="other-value"),
    pytest.param({"backup_id": CONTEXT["backup_id"]}, id="missing-key"),
    pytest.param({**CONTEXT, "project_id": "p"}, id="extra-key"),
    pytest.param({}, id="empty"),
    pytest.param({"Backup_id": CONTEXT["backup_id"],
                  "volume_id": CONTEXT["volume_id"]}, id="key-case"),
    pytest.param({**CONTEXT, "backup_id": CONTEXT["backup_id"] + " "}, id="trailing-space"),
])
def test_wrong_context_is_context_mismatch(strict_sealer, big, wrong):
    assert issubclass(exceptions.ContextMismatch, exceptions.InvalidEnvelope)
    with pytest.raises(exceptions.ContextMismatch):
        strict_sealer.open(big, wrong)
    with pytest.raises(exceptions.ContextMismatch):
        strict_sealer.verify(big, wrong)
    assert strict_sealer.open(big, CONTEXT) == METADATA


def test_envelope_with_empty_context_needs_empty_context(strict_sealer):
    raw = strict_sealer.seal({"a": 1}, {})
    assert strict_sealer.open(raw, {}) == {"a": 1}
    with pytest.raises(exceptions.ContextMismatch):
        strict_sealer.open(raw, {"backup_id": "x"})


def test_wrong_key_same_keyring_name_in_another_store(tmp_path, strict_sealer, big):
    other_store = FileKeyStore(str(tmp_path / "other"))
    other_store.create_keyring(strict_sealer.keyring)
    other = Sealer(other_store, keyring=strict_sealer.keyring)
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        other.open(big, CONTEXT)
    assert_unknown_key(info.value)
    # and the other way round
    theirs = other.seal(METADATA, CONTEXT)
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        strict_sealer.open(theirs, CONTEXT)
    assert_unknown_key(info.value)


def test_wrong_key_with_header_naming_our_key(tmp_path, store, strict_sealer):
    """The other store's envelope relabelled with our key id and version:
    only the key commitment (the MAC) stands in the way."""
    other_store = FileKeyStore(str(tmp_path / "other"))
    other_store.create_keyring(strict_sealer.keyring)
    theirs = Sealer(other_store, keyring=strict_sealer.keyring).seal(METADATA, CONTEXT)
    ours = store.get_keyring(strict_sealer.keyring).active
    relabelled = forge(theirs, key_id=ours.key_id, key_version=ours.number)
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        strict_sealer.open(relabelled, CONTEXT)
    assert_auth_failure(info.value)


def test_envelope_of_another_keyring_of_the_same_store(store, strict_sealer):
    store.create_keyring("other-ring")
    theirs = Sealer(store, keyring="other-ring").seal(METADATA, CONTEXT)
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        strict_sealer.open(theirs, CONTEXT)
    assert_unknown_key(info.value)
    # relabelled as ours: same failure
    ours = store.get_keyring(strict_sealer.keyring).active
    relabelled = forge(theirs, keyring=strict_sealer.keyring,
                       key_id=ours.key_id, key_version=ours.number)
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        strict_sealer.open(relabelled, CONTEXT)
    assert_auth_failure(info.value)


def test_known_key_id_under_another_version_number(store, strict_sealer, big):
    store.rotate(strict_sealer.keyring)
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        strict_sealer.open(forge(big, key_version=2), CONTEXT)
    assert_auth_failure(info.value)


@pytest.mark.parametrize("field,value", [
    ("context", {"backup_id": "other", "volume_id": CONTEXT["volume_id"]}),
    ("created", 0),
    ("salt", bytes(32)),
    ("nonce", bytes(12)),
])
def test_forged_header_field_fails_authentication(strict_sealer, big, field, value):
    forged = forge(big, **{field: value})
    assert envelope.parse(forged)  # well-formed, only the MAC disagrees
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        # even with the forged context as the expected one
        strict_sealer.open(forged, value if field == "context" else CONTEXT)
    assert_auth_failure(info.value)


def test_header_of_a_body_of_b(strict_sealer):
    a = strict_sealer.seal({"who": "a"}, {"backup_id": "a"})
    b = strict_sealer.seal({"who": "b"}, {"backup_id": "b"})
    same_ctx = strict_sealer.seal({"who": "a"}, {"backup_id": "a"})
    for head, body in ((a, b), (b, a), (a, same_ctx)):
        prefix = split(head)[0]
        _, ciphertext, mac = split(body)
        spliced = prefix + ciphertext + mac
        for context in ({"backup_id": "a"}, {"backup_id": "b"}):
            with pytest.raises(exceptions.InvalidEnvelope) as info:
                strict_sealer.open(spliced, context)
            assert_auth_failure(info.value)
    # MAC of one, rest of the other
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        strict_sealer.open(a[:-32] + same_ctx[-32:], {"backup_id": "a"})
    assert_auth_failure(info.value)
