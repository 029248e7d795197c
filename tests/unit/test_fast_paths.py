"""The fast paths of the format code agree with the plain, checked ones.

decode_payload accepts a payload without the per-map duplicate hook and
without walking it when re-encoding gives back the same bytes and a scan of
the bytes bounds the depth and rules out bytes keys; anything else goes to
the checked decoder. These tests drive both with the same inputs (valid,
mutated, and built to sit on each condition's edge) and require the same
value or the same error.
"""

import dataclasses
import random
import types

import msgpack
import pytest

from sealedmeta import envelope
from sealedmeta import exceptions


def outcome(fn, data):
    try:
        return ("ok", fn(data))
    except exceptions.SealedMetaError as exc:
        return ("error", type(exc), str(exc))


def same(data):
    fast = outcome(envelope.decode_payload, data)
    assert fast == outcome(envelope._decode_payload_checked, data), data[:80]
    return fast


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


@pytest.mark.parametrize("data", [
    b"\x82\xa1a\x01\xa1a\x02",                  # duplicate key
    b"\x81\xa1x\x82\xa1a\x01\xa1a\x01",         # duplicate key, nested, same value
    b"\x81\xc4\x01a\x01",                       # bin key
    b"\x81\xa1a\x81\xc4\x01b\x01",              # nested bin key
    b"\x81\xa1a\xca\x00\x00\x00\x00",           # float32: another writer
    b"\x81\xa1a\xcc\x01",                       # non-shortest int
    b"\x81\xd9\x01a\x01",                       # str8 for a short key
    b"\x81\xa1a\xd6\xff\x00\x00\x00\x01",       # timestamp ext
    b"\x81\xa1a\xc4\x03\x80\x90\xde",           # bin value holding markers
    b"\x81\xa1a\xa3\xc2\x80\xc2",               # str holding marker bytes
    b"\x91\x01",                                # array at the top
])
def test_edge_payloads(data):
    same(data)


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


def test_split_gives_the_same_header_as_parse():
    fields = [1, 1, "ring", 7, b"k" * 16, {"a": "1", "b": "2"}, 1700000000,
              b"s" * 32, b"n" * 12]
    header_bytes = msgpack.packb(fields, use_bin_type=True)
    data = envelope.encode_prefix(header_bytes) + b"c" * 40 + b"m" * 32
    header, authenticated, ciphertext, mac, signature = envelope.split(data)
    assert signature is None
    expected = envelope.Header(
        1, 1, "ring", 7, b"k" * 16, types.MappingProxyType({"a": "1", "b": "2"}),
        1700000000, b"s" * 32, b"n" * 12)
    assert header == expected and repr(header) == repr(expected)
    assert dataclasses.replace(header, created=1) == dataclasses.replace(
        expected, created=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        header.keyring = "other"
    assert envelope.parse(data) == envelope.ParsedEnvelope(
        header, authenticated, ciphertext, mac)
    assert authenticated + ciphertext + mac == data
    assert envelope.split_fields(data)[0] == fields


@pytest.mark.parametrize("context", [
    {}, {"a": "1"}, {"a": "1", "b": "2"}, {"b": "2", "a": "1"},
    types.MappingProxyType({"z": "1", "y": "2"}),
])
def test_sorted_context_matches_check_context(context):
    result = envelope.sorted_context(context)
    assert result == envelope.check_context(context)
    assert list(result) == list(envelope.check_context(context))


def test_both_context_checks_refuse_pairs():
    for check in (envelope.sorted_context, envelope.check_context):
        with pytest.raises(exceptions.InvalidMetadata):
            check([("b", "1"), ("a", "2")])
