"""The one envelope parser and the one payload decoder, against an oracle.

``envelope.split_fields`` (which ``envelope.parse`` wraps) and
``envelope.decode_payload`` are the only ways the library reads a header
and a payload. These tests drive them with valid,
mutated and edge-built inputs and check each verdict against a plain
restatement of the format's rules (docs/source/format.rst).
"""

import dataclasses
import random
import threading
import types

import msgpack
import pytest

from sealedmeta import envelope
from sealedmeta import exceptions

RING = "ring"
KEY_ID = bytes(range(16))
SALT = bytes(range(100, 132))
NONCE = bytes(range(200, 212))


def outcome(fn, data):
    try:
        return ("ok", fn(data))
    except exceptions.SealedMetaError as exc:
        return ("error", type(exc), str(exc))


# -- payloads ---------------------------------------------------------------

def _oracle_value(value, depth):
    """The payload rules restated: maps of distinct str keys, lists, the
    scalar types, no extension types, at most MAX_DEPTH levels."""
    if isinstance(value, tuple) and value[0] == "map":
        if depth > envelope.MAX_DEPTH:
            return None
        keys = [k for k, _ in value[1]]
        if (any(type(k) is not str for k in keys)
                or len(set(keys)) != len(keys)):
            return None
        result = {}
        for key, item in value[1]:
            item = _oracle_value(item, depth + 1)
            if item is None:
                return None
            result[key] = item[0]
        return (result,)
    if type(value) is list:
        if depth > envelope.MAX_DEPTH:
            return None
        result = []
        for item in value:
            item = _oracle_value(item, depth + 1)
            if item is None:
                return None
            result.append(item[0])
        return (result,)
    if type(value) in (str, bytes, int, float, bool, type(None)):
        return (value,)
    return None  # ExtType, Timestamp


def oracle(data):
    """The dict a strict reader must return for *data*, or None."""
    try:
        value = msgpack.unpackb(
            data, raw=False, strict_map_key=False, use_list=True,
            object_pairs_hook=lambda pairs: ("map", pairs))
    except Exception:
        return None
    if not (isinstance(value, tuple) and value[0] == "map"):
        return None
    value = _oracle_value(value, 1)
    return None if value is None else value[0]


def same(data):
    """decode_payload's outcome for *data*, after checking it against the
    oracle: the same dict, or a MalformedEnvelope exactly when the oracle
    refuses."""
    got = outcome(envelope.decode_payload, data)
    expected = oracle(data)
    if expected is None:
        assert got[:2] == ("error", exceptions.MalformedEnvelope), data[:80]
    else:
        assert got == ("ok", expected), data[:80]
    return got


def nested(depth, kind, leaf=1):
    """A top-level map whose innermost container sits at *depth*."""
    value = leaf
    for _ in range(depth - 1):
        value = {"k": value} if kind == "dict" else [value]
    return {"top": value}


@pytest.mark.parametrize("kind", ["dict", "list"])
@pytest.mark.parametrize("depth", [30, 31, 32, 33, 34])
@pytest.mark.parametrize("leaf", [1, b"bytes", "\u0080\u0090\u00de"])
def test_depth_edges(kind, depth, leaf):
    value = nested(depth, kind, leaf)
    result = same(msgpack.packb(value, use_bin_type=True))
    assert (result[0] == "ok") == (depth <= envelope.MAX_DEPTH)


@pytest.mark.parametrize("data, accepted", [
    (b"\x82\xa1a\x01\xa1a\x02", False),             # duplicate key
    (b"\x81\xa1x\x82\xa1a\x01\xa1a\x01", False),    # duplicate key, nested
    (b"\x81\xc4\x01a\x01", False),                  # bin key
    (b"\x81\xa1a\x81\xc4\x01b\x01", False),         # nested bin key
    (b"\x81\xa1a\xca\x00\x00\x00\x00", True),       # float32: another writer
    (b"\x81\xa1a\xcc\x01", True),                   # non-shortest int
    (b"\x81\xd9\x01a\x01", True),                   # str8 for a short key
    (b"\x81\xa1a\xd6\xff\x00\x00\x00\x01", False),  # timestamp ext
    (b"\x81\xa1a\xd4\x01\x00", False),              # fixext 1
    (b"\x81\xa1a\xc4\x03\x80\x90\xde", True),       # bin value holding markers
    (b"\x81\xa1a\xa2\xc2\x80", True),               # str holding marker bytes
    (b"\x81\xa1a\xa3\xc2\x80\xc2", False),          # str, invalid UTF-8
    (b"\x91\x01", False),                           # array at the top
    (b"\x81\xa1a\x01\x00", False),                  # trailing byte
    (b"\x81\xa1a", False),                          # truncated
    (b"\xdf\xff\xff\xff\xff", False),               # map32 claiming 2^32-1
    (b"", False),
])
def test_edge_payloads(data, accepted):
    assert (same(data)[0] == "ok") == accepted


def test_other_writers_encoding_is_still_accepted():
    # map16 for 3 entries, uint16 for 1: valid, just not the shortest form.
    data = b"\xde\x00\x03\xa1a\xcd\x00\x01\xa1b\xa1x\xa1c\xc0"
    assert same(data) == ("ok", {"a": 1, "b": "x", "c": None})


def test_random_payloads_and_mutations():
    rng = random.Random(20251124)
    scalars = [lambda: "s" * rng.randint(0, 3), lambda: "\u00e9\u0085",
               lambda: b"\x80\xc4", lambda: rng.randint(-2**63, 2**64 - 1),
               lambda: rng.random(), lambda: True, lambda: None]

    def value(depth):
        r = rng.random()
        if depth < 36 and r < 0.3:
            return {rng.choice("abck"): value(depth + 1)
                    for _ in range(rng.randint(0, 3))}
        if depth < 36 and r < 0.4:
            return [value(depth + 1) for _ in range(rng.randint(0, 3))]
        return rng.choice(scalars)()

    accepted = 0
    for _ in range(3000):
        data = bytearray(msgpack.packb({"top": value(1)}, use_bin_type=True))
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 2)):
                position = rng.randrange(len(data) + 1)
                data[position:position] = bytes([rng.choice(
                    [0x80, 0x81, 0x91, 0xa1, 0xc0, 0xc4, 0xd4, 0xde, 0x01])])
        accepted += same(bytes(data))[0] == "ok"
    assert accepted > 1000


def test_payload_round_trip_is_byte_exact():
    metadata = {"image_id": "i" * 36, "n": [1, -1, 2**40, 2.5, None, True],
                "d": {"k": b"v", "e": {}}, "s": "\u00e9" * 40}
    data = envelope.encode_payload(metadata)
    assert data == msgpack.packb(metadata, use_bin_type=True)
    assert envelope.decode_payload(data) == metadata


# -- headers ------------------------------------------------------------------

def _envelope(fields, suite=1, body=b"c" * 40):
    tail = b"m" * 32 + (b"s" * 64 if suite == 2 else b"")
    return envelope.encode_prefix(msgpack.packb(fields, use_bin_type=True)) + (
        body + tail)


def _fields(suite=1, version=7, context=None, created=1700000000):
    context = {"a": "1", "b": "2"} if context is None else context
    return [1, suite, RING, version, KEY_ID, context, created, SALT, NONCE]


def test_parse_gives_the_header_and_the_parts():
    data = _envelope(_fields())
    parsed = envelope.parse(data)
    expected = envelope.Header(
        1, 1, RING, 7, KEY_ID, types.MappingProxyType({"a": "1", "b": "2"}),
        1700000000, SALT, NONCE)
    header = parsed.header
    assert header == expected and repr(header) == repr(expected)
    assert dataclasses.replace(header, created=1) == dataclasses.replace(
        expected, created=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.keyring = "other"
    assert parsed.signature is None and parsed.mac == b"m" * 32
    assert parsed.authenticated + parsed.ciphertext + parsed.mac == data
    assert envelope.encode_prefix(envelope.encode_header(header)) == (
        parsed.authenticated)
    assert envelope.parse(bytearray(data)) == envelope.parse(memoryview(data))
    assert envelope.parse(data) == parsed
    # parse is split_fields with a Header: the same checks, the same parts.
    fields, *parts = envelope.split_fields(data)
    assert fields == _fields() and envelope.header_of(fields) == header
    assert parts == [parsed.authenticated, parsed.ciphertext, parsed.mac, None]


@pytest.mark.parametrize("created", [0, 1, 127, 128, 65535, 65536, 1700000000,
                                     2**32 - 1, 2**32, 2**63 - 1])
@pytest.mark.parametrize("suite", [1, 2])
def test_every_creation_time_in_its_shortest_form(created, suite):
    fields = _fields(suite=suite, created=created)
    parsed = envelope.parse(_envelope(fields, suite))
    assert parsed.header.created == created
    assert (parsed.signature is not None) == (suite == 2)
    # The same time in a longer integer form is not the canonical header.
    long_form = msgpack.packb(fields[:6], use_bin_type=True)
    long_form = bytes((0x99,)) + long_form[1:] + b"\xcf" + created.to_bytes(
        8, "big") + msgpack.packb(fields[7:], use_bin_type=True)[1:]
    assert msgpack.unpackb(long_form, raw=False) == fields
    data = envelope.encode_prefix(long_form) + b"c" * 40 + b"m" * 32
    if created < 2**32:
        with pytest.raises(exceptions.MalformedEnvelope, match="canonical"):
            envelope.parse(data)


def test_context_out_of_order_is_not_canonical():
    fields = _fields(context={"volume_id": "v", "backup_id": "b" * 36})
    with pytest.raises(exceptions.MalformedEnvelope, match="canonical"):
        envelope.parse(_envelope(fields))
    fields[5] = dict(sorted(fields[5].items()))
    assert envelope.parse(_envelope(fields)).header.context == fields[5]


def test_header_mutations_accepted_only_in_canonical_form():
    """Whatever parse accepts of a mutated header is that header's one
    encoding; everything else is refused with a library error."""
    rng = random.Random(20261125)
    accepted = 0
    contexts = [{}, {"backup_id": "b" * 36, "volume_id": "v"},
                {"a": "x" * 200, "z": "\u00e9\u0085"}]
    for _ in range(4000):
        suite = rng.choice([1, 2])
        data = bytearray(_envelope(_fields(
            suite=suite, version=rng.choice([1, 300, 2**31 - 1]),
            context=rng.choice(contexts),
            created=rng.choice([0, 65536, 1700000000, 2**32 - 1])), suite))
        header_end = 8 + int.from_bytes(data[6:8], "big")
        for _ in range(rng.randint(0, 3)):
            position = rng.randrange(header_end + 1)
            action = rng.random()
            if action < 0.6 and position < len(data):
                data[position] ^= 1 << rng.randrange(8)
            elif action < 0.8:
                data[position:position] = bytes([rng.randrange(256)])
            elif position < len(data):
                del data[position]
        data = bytes(data)
        result = outcome(envelope.parse, data)
        if result[0] == "error":
            assert issubclass(result[1], exceptions.InvalidEnvelope)
            continue
        accepted += 1
        parsed = result[1]
        assert envelope.encode_prefix(envelope.encode_header(parsed.header)) == (
            parsed.authenticated)
        tail = parsed.ciphertext + parsed.mac + (parsed.signature or b"")
        assert parsed.authenticated + tail == data
    assert accepted > 400  # the unmutated and the harmless draws


# -- contexts -----------------------------------------------------------------

@pytest.mark.parametrize("context", [
    {}, {"a": "1"}, {"a": "1", "b": "2"}, {"b": "2", "a": "1"},
    types.MappingProxyType({"z": "1", "y": "2"}),
])
def test_check_context_sorts(context):
    result = envelope.check_context(context)
    assert type(result) is dict and result == dict(context)
    assert list(result) == sorted(context)


def test_check_context_refuses_pairs():
    with pytest.raises(exceptions.InvalidMetadata):
        envelope.check_context([("b", "1"), ("a", "2")])


def test_threads_encode_the_same_bytes(tmp_path):
    """The bytes of a payload and a header never depend on which thread
    made them, however seals and opens overlap."""
    from sealedmeta import FileKeyStore
    from sealedmeta import Sealer
    store = FileKeyStore(str(tmp_path / "keys"))
    store.create_keyring("r")
    sealer = Sealer(store, keyring="r")
    metadata = {"image_id": "i" * 40, "n": list(range(50)), "d": {"k": b"v"}}
    fields = [1, 1, "r", 3, b"k" * 16, {"a": "b"}, 1700000000, b"s" * 32,
              b"n" * 12]
    expected = (envelope.encode_payload(metadata),
                envelope.encode_header_fields(*fields))
    failures = []

    def work(n):
        for i in range(300):
            context = {"backup_id": "b%d-%d" % (n, i)}
            got = (envelope.encode_payload(metadata),
                   envelope.encode_header_fields(*fields))
            if got != expected or sealer.open(
                    sealer.seal(metadata, context), context) != metadata:
                failures.append((n, i))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
