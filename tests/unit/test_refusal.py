"""Requirement 2: what cannot be sealed is refused at seal time (InvalidMetadata)."""

import collections
import datetime
import decimal
import enum
import os
import types

import pytest

from sealedmeta import Sealer
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import names

from tests.unit.helpers import nest
from tests.unit.helpers import snapshot


class Str(str):
    pass


class Bytes(bytes):
    pass


class Int(int):
    pass


class Float(float):
    pass


class Dict(dict):
    pass


class List(list):
    pass


class Colour(enum.IntEnum):
    RED = 1


BAD_METADATA = [
    pytest.param([], id="list-top"),
    pytest.param("x", id="str-top"),
    pytest.param(None, id="none-top"),
    pytest.param(1, id="int-top"),
    pytest.param((), id="tuple-top"),
    pytest.param(Dict(a=1), id="dict-subclass-top"),
    pytest.param(collections.OrderedDict(a=1), id="ordereddict-top"),
    pytest.param(types.MappingProxyType({"a": 1}), id="mappingproxy-top"),
    pytest.param({1: "x"}, id="int-key"),
    pytest.param({b"k": 1}, id="bytes-key"),
    pytest.param({None: 1}, id="none-key"),
    pytest.param({True: 1}, id="bool-key"),
    pytest.param({(1, 2): 1}, id="tuple-key"),
    pytest.param({Str("k"): 1}, id="str-subclass-key"),
    pytest.param({"a": {"b": {3: 1}}}, id="nested-int-key"),
    pytest.param({"t": (1, 2)}, id="tuple"),
    pytest.param({"t": [1, (2,)]}, id="tuple-in-list"),
    pytest.param({"s": {1, 2}}, id="set"),
    pytest.param({"s": frozenset()}, id="frozenset"),
    pytest.param({"o": object()}, id="object"),
    pytest.param({"d": datetime.datetime(2024, 1, 1)}, id="datetime"),
    pytest.param({"d": decimal.Decimal("1.5")}, id="decimal"),
    pytest.param({"c": 1j}, id="complex"),
    pytest.param({"s": Str("x")}, id="str-subclass"),
    pytest.param({"l": [Str("x")]}, id="str-subclass-in-list"),
    pytest.param({"b": Bytes(b"x")}, id="bytes-subclass"),
    pytest.param({"i": Int(1)}, id="int-subclass"),
    pytest.param({"e": Colour.RED}, id="intenum"),
    pytest.param({"f": Float(1.0)}, id="float-subclass"),
    pytest.param({"d": Dict()}, id="dict-subclass"),
    pytest.param({"l": List()}, id="list-subclass"),
    pytest.param({"b": bytearray(b"x")}, id="bytearray"),
    pytest.param({"m": memoryview(b"x")}, id="memoryview"),
    pytest.param({"m": types.MappingProxyType({})}, id="mappingproxy"),
    pytest.param({"big": 2**64}, id="int-over-uint64"),
    pytest.param({"neg": -(2**63) - 1}, id="int-under-int64"),
    pytest.param({"n": [[{"x": 2**100}]]}, id="nested-huge-int"),
    pytest.param({"u": "\ud800"}, id="lone-surrogate-value"),
    pytest.param({"\udfff": 1}, id="lone-surrogate-key"),
    pytest.param(nest(33), id="dict-depth-33"),
    pytest.param(nest(33, "list"), id="list-depth-33"),
    pytest.param(nest(5000), id="dict-depth-5000"),
]


@pytest.mark.parametrize("metadata", BAD_METADATA)
def test_bad_metadata_refused(sealer, metadata):
    with pytest.raises(exceptions.InvalidMetadata):
        sealer.seal(metadata, {"backup_id": "b"})
    # the public checker agrees (or the encoder refuses it)
    with pytest.raises(exceptions.InvalidMetadata):
        envelope.check_metadata(metadata)
        envelope.encode_payload(metadata)


def test_invalid_metadata_is_a_value_error_and_a_library_error():
    assert issubclass(exceptions.InvalidMetadata, ValueError)
    assert issubclass(exceptions.InvalidMetadata, exceptions.SealedMetaError)


@pytest.mark.parametrize("kind", ["dict", "list"])
def test_depth_limit_is_exactly_32(sealer, kind):
    ok = nest(32, kind)
    assert sealer.open(sealer.seal(ok, {}), {}) == ok
    with pytest.raises(exceptions.InvalidMetadata, match="deeper than 32"):
        sealer.seal(nest(33, kind), {})


def test_msgpack_int_range_edges_accepted(sealer):
    for value in (2**64 - 1, -(2**63)):
        assert sealer.open(sealer.seal({"v": value}, {}), {}) == {"v": value}


BAD_CONTEXTS = [
    pytest.param({"k": 1}, id="int-value"),
    pytest.param({"k": None}, id="none-value"),
    pytest.param({"k": b"x"}, id="bytes-value"),
    pytest.param({"k": ["x"]}, id="list-value"),
    pytest.param({"k": Str("x")}, id="str-subclass-value"),
    pytest.param({"": "x"}, id="empty-key"),
    pytest.param({"a b": "x"}, id="space-key"),
    pytest.param({"k\n": "x"}, id="newline-key"),
    pytest.param({"a/b": "x"}, id="slash-key"),
    pytest.param({"\u00e9": "x"}, id="non-ascii-key"),
    pytest.param({"k" * 65: "x"}, id="65-char-key"),
    pytest.param({1: "x"}, id="int-key"),
    pytest.param({None: "x"}, id="none-key"),
    pytest.param({b"k": "x"}, id="bytes-key"),
    pytest.param({Str("k"): "x"}, id="str-subclass-key"),
    pytest.param({"k%d" % i: "v" for i in range(33)}, id="33-items"),
    pytest.param({"k": "x" * 1025}, id="1025-byte-value"),
    pytest.param({"k": "\u20ac" * 342}, id="342-euro-signs-1026-bytes"),
    pytest.param({"k": "\ud800"}, id="surrogate-value"),
    pytest.param(5, id="int-context"),
    pytest.param(None, id="none-context"),
    pytest.param("ab", id="str-context"),
    pytest.param([1, 2], id="list-of-ints"),
    pytest.param([("k",)], id="list-of-1-tuples"),
]


@pytest.mark.parametrize("context", BAD_CONTEXTS)
def test_bad_context_refused(sealer, context):
    with pytest.raises(exceptions.InvalidMetadata):
        sealer.seal({"a": 1}, context)
    # open validates the context it is given before anything else
    good = sealer.seal({"a": 1}, {})
    with pytest.raises(exceptions.InvalidMetadata):
        sealer.open(good, context)


def test_context_limits_are_inclusive(sealer):
    full = {("k%02d" % i): "v" for i in range(32)}
    assert sealer.open(sealer.seal({}, full), full) == {}
    long_key = {"k" * 64: "x" * 1024}
    assert sealer.open(sealer.seal({}, long_key), long_key) == {}
    multibyte = {"k": "\u20ac" * 341}  # 1023 bytes
    assert sealer.open(sealer.seal({}, multibyte), multibyte) == {}


def test_context_too_large_for_header_refused(sealer):
    # each item is valid on its own; together they exceed the header limit
    context = {("k%02d" % i): "x" * 1024 for i in range(32)}
    assert envelope.check_context(context) == context
    with pytest.raises(exceptions.InvalidMetadata, match="header"):
        sealer.seal({}, context)


BAD_NAMES = ["", "-a", ".a", "_a", " a", "a ", "a b", "a/b", "../escape", "a\n",
             "\u00e9t\u00e9", "a" * 65, "a\x00b", None, b"abc", 5, Str("abc")]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_bad_keyring_names_refused(store, ring, repo, name):
    before = snapshot(repo)
    with pytest.raises(exceptions.InvalidMetadata):
        Sealer(store, keyring=name)
    with pytest.raises(exceptions.InvalidMetadata):
        store.create_keyring(name)
    with pytest.raises(exceptions.InvalidMetadata):
        names.check_keyring_name(name)
    assert snapshot(repo) == before


@pytest.mark.parametrize("name", ["a", "Z", "9", "A" * 64, "x.y_z-1", "cinder-backup"])
def test_good_keyring_names_accepted(store, name):
    store.create_keyring(name)
    sealer = Sealer(store, keyring=name)
    assert sealer.open(sealer.seal({"n": name}, {}), {}) == {"n": name}


def test_envelope_over_max_size_refused(store, ring):
    metadata = {"blob": os.urandom(3000)}
    size = len(Sealer(store, keyring=ring.name).seal(metadata, {"a": "b"}))
    exact = Sealer(store, keyring=ring.name, max_envelope_size=size)
    assert exact.open(exact.seal(metadata, {"a": "b"}), {"a": "b"}) == metadata
    small = Sealer(store, keyring=ring.name, max_envelope_size=size - 1)
    with pytest.raises(exceptions.InvalidMetadata, match="limit"):
        small.seal(metadata, {"a": "b"})
    default = Sealer(store, keyring=ring.name)
    with pytest.raises(exceptions.InvalidMetadata):
        default.seal({"blob": os.urandom(envelope.DEFAULT_MAX_ENVELOPE_SIZE)}, {})


def test_cyclic_metadata_refused_without_recursion_error(sealer):
    loop = []
    loop.append(loop)
    selfref = {}
    selfref["me"] = selfref
    for metadata in ({"l": loop}, selfref):
        with pytest.raises(exceptions.InvalidMetadata, match="deeper"):
            sealer.seal(metadata, {})


def test_refusal_happens_before_any_store_access(store, ring, repo):
    from tests.unit.helpers import CountingStore
    counting = CountingStore(store)
    sealer = Sealer(counting, keyring=ring.name)
    for metadata, context in (({"t": (1,)}, {}), ({}, {"k": 1}), ([], {})):
        with pytest.raises(exceptions.InvalidMetadata):
            sealer.seal(metadata, context)
    assert counting.total == 0


def test_context_must_be_a_mapping_not_pairs(sealer):
    # dict(["ab"]) == {"a": "b"}: a sequence of pairs is not a context.
    for bad in (["ab"], [("backup_id", "x")], "ab", 7, None):
        with pytest.raises(exceptions.InvalidMetadata):
            sealer.seal({}, bad)


def test_oversized_bytes_armour_is_too_large_before_decoding():
    big = b"sealedmeta:" + "\u00e9".encode("utf-8") * 800_000  # 1.6 MB
    with pytest.raises(exceptions.EnvelopeTooLarge):
        envelope.dearmor(big, max_size=1024 * 1024)
