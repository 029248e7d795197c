"""Requirement 1: whatever can be sealed opens to exactly itself."""

import math
import re
import string
import types

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import sealedmeta
from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import envelope
from sealedmeta import exceptions

from tests.unit.helpers import MSGPACK_INT_MAX
from tests.unit.helpers import MSGPACK_INT_MIN
from tests.unit.helpers import assert_same

SETTINGS = settings(max_examples=150, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])

scalars = st.one_of(
    st.text(max_size=24),
    st.binary(max_size=24),
    st.integers(min_value=MSGPACK_INT_MIN, max_value=MSGPACK_INT_MAX),
    st.floats(),  # includes nan, +-inf and -0.0; compared with assert_same
    st.booleans(),
    st.none(),
)


def trees(depth):
    if depth == 0:
        return scalars
    child = trees(depth - 1)
    return st.one_of(scalars,
                     st.lists(child, max_size=3),
                     st.dictionaries(st.text(max_size=8), child, max_size=3))


metadata_st = st.dictionaries(st.text(max_size=16), trees(5), max_size=6)

CONTEXT_KEY_CHARS = string.ascii_letters + string.digits + "_.:-"
context_key_st = st.text(alphabet=CONTEXT_KEY_CHARS, min_size=1, max_size=64)
contexts_st = st.dictionaries(context_key_st, st.text(max_size=48), max_size=32)
keyring_st = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)


@pytest.fixture(scope="module")
def rt_sealer(tmp_path_factory):
    store = FileKeyStore(str(tmp_path_factory.mktemp("rt") / "keys"))
    store.create_keyring("cinder-backup")
    return Sealer(store, keyring="cinder-backup")


@SETTINGS
@given(metadata=metadata_st, context=contexts_st)
def test_open_of_seal_is_identity(rt_sealer, metadata, context):
    sealed = rt_sealer.seal(metadata, context)
    assert isinstance(sealed, bytes)
    assert_same(rt_sealer.open(sealed, context), metadata)
    # the same through the armour, and with the context in another order
    reordered = dict(reversed(list(context.items())))
    assert_same(rt_sealer.open(sealedmeta.armor(sealed), reordered), metadata)
    header = sealedmeta.inspect(sealed)
    assert dict(header.context) == context
    assert header.keyring == "cinder-backup"
    assert header.key_version == 1


def test_nan_inf_and_negative_zero(sealer):
    metadata = {"nan": math.nan, "list": [math.nan, -0.0, math.inf, -math.inf],
                "zero": 0.0}
    got = sealer.open(sealer.seal(metadata, {}), {})
    assert math.isnan(got["nan"])
    assert math.isnan(got["list"][0])
    assert got["list"][1] == 0.0 and math.copysign(1.0, got["list"][1]) == -1.0
    assert got["list"][2:] == [math.inf, -math.inf]
    assert math.copysign(1.0, got["zero"]) == 1.0


def test_integer_range_edges_and_exact_types(sealer):
    metadata = {"max": MSGPACK_INT_MAX, "min": MSGPACK_INT_MIN, "t": True,
                "f": False, "one": 1, "onef": 1.0, "none": None, "b": b"",
                "s": "", "l": [], "d": {}}
    got = sealer.open(sealer.seal(metadata, {"a": "b"}), {"a": "b"})
    assert_same(got, metadata)


def test_context_as_mappingproxy(sealer):
    sealed = sealer.seal({"x": 1}, types.MappingProxyType({"b": "2", "a": "1"}))
    assert sealer.open(sealed, types.MappingProxyType({"a": "1", "b": "2"})) == {"x": 1}
    assert list(sealedmeta.inspect(sealed).context) == ["a", "b"]


@SETTINGS
@given(st.binary(max_size=3000))
def test_armor_round_trip(data):
    text = sealedmeta.armor(data)
    assert text.startswith(envelope.ARMOR_PREFIX)
    body = text[len(envelope.ARMOR_PREFIX):]
    assert re.fullmatch(r"[A-Za-z0-9_-]*", body)
    assert len(body) == math.ceil(len(data) * 4 / 3)
    assert sealedmeta.dearmor(text) == data
    assert sealedmeta.dearmor(text.encode("ascii")) == data
    assert sealedmeta.armor(bytearray(data)) == text
    assert envelope.load(text) == data
    # a carrier's trailing newline on bytes input is tolerated by load()
    assert envelope.load(text.encode("ascii") + b"\n") == data


@SETTINGS
@given(keyring=keyring_st,
       version=st.integers(1, envelope.MAX_KEY_VERSION),
       key_id=st.binary(min_size=16, max_size=16),
       context=contexts_st,
       created=st.integers(0, envelope.MAX_CREATED),
       salt=st.binary(min_size=32, max_size=32),
       nonce=st.binary(min_size=12, max_size=12),
       suite=st.one_of(st.sampled_from([1, 2]), st.integers(0, 255)),
       body=st.binary(min_size=113, max_size=260))
def test_header_encode_parse_round_trip(keyring, version, key_id, context,
                                        created, salt, nonce, suite, body):
    header = envelope.Header(1, suite, keyring, version, key_id,
                             types.MappingProxyType(dict(sorted(context.items()))),
                             created, salt, nonce)
    prefix = envelope.encode_prefix(envelope.encode_header(header))
    parsed = envelope.parse(prefix + body)
    assert parsed.header.as_dict() == header.as_dict()
    assert parsed.authenticated == prefix
    # Suite 2 ends with a 64-byte signature after the MAC.
    end = len(body) - (64 if suite == 2 else 0)
    assert parsed.ciphertext == body[:end - 32]
    assert parsed.mac == body[end - 32:end]
    assert parsed.signature == (body[end:] if suite == 2 else None)
    assert sealedmeta.inspect(sealedmeta.armor(prefix + body)) == parsed.header


def test_roundtrip_detects_a_changed_value(sealer):
    # guard: the comparison helper itself distinguishes what msgpack could blur
    with pytest.raises(AssertionError):
        assert_same({"a": 1}, {"a": True})
    with pytest.raises(AssertionError):
        assert_same({"a": b"x"}, {"a": "x"})
    with pytest.raises(AssertionError):
        assert_same({"a": -0.0}, {"a": 0.0})
    with pytest.raises(exceptions.ContextMismatch):
        sealer.open(sealer.seal({"a": 1}, {"k": "v"}), {"k": "w"})
