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


# -- split_known: the header recognised by its bytes ------------------------

RING = "ring"
KEY_ID = bytes(range(16))


def _known_heads():
    heads = {}
    for version in (1, 300, 2**31 - 1):
        for suite in (1, 2):
            heads[envelope.header_head(1, suite, RING, version, KEY_ID)] = (
                version, suite)
    return heads


def _envelope(version, suite, context, created, body=b"c" * 40):
    fields = [1, suite, RING, version, KEY_ID, dict(sorted(context.items())),
              created, bytes(range(100, 132)), bytes(range(200, 212))]
    tail = b"m" * 32 + (b"s" * 64 if suite == 2 else b"")
    return envelope.encode_prefix(msgpack.packb(fields, use_bin_type=True)) + (
        body + tail)


def _agree(data, heads, context):
    """split_known's answer for *data*, after checking that split_fields
    accepts it with the same fields whenever split_known does."""
    known = envelope.split_known(data, heads, envelope.encode_context(
        envelope.check_context(context)))
    if known is None:
        return None
    fields, authenticated, ciphertext, mac, signature = envelope.split_fields(
        data)
    (version, suite), salt, nonce = known[:3]
    assert fields[:5] == [1, suite, RING, version, KEY_ID]
    assert fields[5] == context and list(fields[5]) == sorted(context)
    assert (fields[7], fields[8]) == (salt, nonce)
    assert known[3:] == (authenticated, ciphertext, mac, signature)
    return known


CONTEXTS = [{}, {"backup_id": "b" * 36, "volume_id": "v"},
            {"z": "\u00e9\u0085", "a": "x" * 200}]


@pytest.mark.parametrize("context", CONTEXTS)
@pytest.mark.parametrize("created", [0, 1, 127, 65535, 65536, 1700000000,
                                     2**32 - 1, 2**32, 2**63 - 1])
def test_split_known_takes_exactly_the_canonical_uint32_times(context, created):
    heads = _known_heads()
    for version, suite in heads.values():
        data = _envelope(version, suite, context, created)
        known = _agree(data, heads, context)
        # Times outside 2^16 .. 2^32-1 have other encodings: checked path.
        assert (known is not None) == (65536 <= created < 2**32)


def test_split_known_refuses_what_it_was_not_told_to_expect():
    heads = _known_heads()
    context = CONTEXTS[1]
    data = _envelope(300, 1, context, 1700000000)
    assert _agree(data, heads, context) is not None
    assert _agree(data, heads, {"backup_id": "b" * 36}) is None
    assert _agree(data, heads, dict(context, volume_id="w")) is None
    assert _agree(data, {}, context) is None
    assert _agree(_envelope(2, 1, context, 1700000000), heads, context) is None
    # A context encoded out of order is not the canonical header.
    fields = [1, 1, RING, 300, KEY_ID, {"volume_id": "v", "backup_id": "b" * 36},
              1700000000, b"s" * 32, b"n" * 12]
    unsorted = envelope.encode_prefix(msgpack.packb(fields, use_bin_type=True))
    assert _agree(unsorted + b"c" * 40 + b"m" * 32, heads, context) is None
    # A small time in a uint32 (not its shortest form) is not canonical.
    tail = data[8:].index(b"\xce" + (1700000000).to_bytes(4, "big")) + 8
    for small in (0, 5, 65535):
        long_form = bytearray(data)
        long_form[tail + 1:tail + 5] = small.to_bytes(4, "big")
        assert _agree(bytes(long_form), heads, context) is None
        with pytest.raises(exceptions.MalformedEnvelope, match="canonical"):
            envelope.split_fields(bytes(long_form))
    # Over the size limit, or truncated: left to split_fields for the reason.
    assert envelope.split_known(data, heads, envelope.encode_context(context),
                                max_size=len(data) - 1) is None
    for cut in range(len(data)):
        _agree(data[:cut], heads, context)


def test_split_known_agrees_under_mutation():
    rng = random.Random(20261125)
    heads = _known_heads()
    taken = 0
    for _ in range(4000):
        context = rng.choice(CONTEXTS)
        version, suite = rng.choice(list(heads.values()))
        data = bytearray(_envelope(version, suite, context,
                                   rng.choice([65536, 1700000000, 2**32 - 1])))
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
        taken += _agree(bytes(data), heads, context) is not None
    assert taken > 400  # the unmutated and the harmless draws


def test_header_head_refuses_what_no_header_may_name():
    for args in [(2, 1, RING, 1, KEY_ID), (1, 256, RING, 1, KEY_ID),
                 (1, 1, RING, 0, KEY_ID), (1, 1, RING, 2**31, KEY_ID),
                 (1, 1, RING, True, KEY_ID), (1, 1, RING, 1, KEY_ID[:15]),
                 (1, 1, RING, 1, bytearray(KEY_ID)), (1, 1, "-bad", 1, KEY_ID)]:
        with pytest.raises(exceptions.InvalidMetadata):
            envelope.header_head(*args)
    fields = [1, 2, RING, 300, KEY_ID, {"a": "b"}, 1700000000, b"s" * 32,
              b"n" * 12]
    assert envelope.encode_prefix_after(
        envelope.header_head(*fields[:5]), *fields[5:]) == envelope.encode_prefix(
            envelope.encode_header_fields(*fields))


@pytest.mark.parametrize("signing", [False, True])
def test_open_answers_the_same_by_either_path(tmp_path, monkeypatch, signing):
    from sealedmeta import FileKeyStore
    from sealedmeta import Sealer
    store = FileKeyStore(str(tmp_path / "keys"))
    store.create_keyring("r", signing=signing)
    # Every unknown key id reads the keyring again: the same answer each time.
    sealer = Sealer(store, keyring="r", refresh_interval=0)
    context = {"volume_id": "v-1", "backup_id": "b-1"}
    old = sealer.seal({"a": "b", "n": [1, 2.5, None]}, context)
    store.rotate("r")
    sealer.refresh()
    genuine = sealer.seal({"image_id": "i", "min_ram": "512"}, context)
    header_end = 8 + int.from_bytes(genuine[6:8], "big")
    candidates = [genuine, old, genuine + b"\x00", envelope.armor(genuine)]
    candidates += [genuine[:cut] for cut in range(0, len(genuine), 7)]
    for bit in range(header_end * 8):
        flipped = bytearray(genuine)
        flipped[bit // 8] ^= 1 << (bit % 8)
        candidates.append(bytes(flipped))
    contexts = [context, {"backup_id": "b-1"}, dict(context, volume_id="v-2")]

    def answers():
        return [outcome(lambda data: sealer.open(data, expected), data)
                for data in candidates for expected in contexts]

    taken = []
    split_known = envelope.split_known
    monkeypatch.setattr(envelope, "split_known", lambda *args: taken.append(
        split_known(*args)) or taken[-1])
    fast = answers()
    # Both genuine envelopes (and the armour) took the byte path for their
    # context, changed salts, nonces and times too; most others did not.
    assert taken[0] is not None and taken[3] is not None
    assert taken[9] is not None
    assert len(taken) // 2 > sum(known is not None for known in taken) > 3
    assert fast[0] == ("ok", {"image_id": "i", "min_ram": "512"})
    store.set_state("r", 1, "retired")
    sealer.refresh()
    fast += answers()
    monkeypatch.setattr(envelope, "split_known", lambda *args: None)
    store.set_state("r", 1, "decrypt-only")
    sealer.refresh()
    slow = answers()
    store.set_state("r", 1, "retired")
    sealer.refresh()
    slow += answers()
    assert fast == slow
    assert ("ok", {"a": "b", "n": [1, 2.5, None]}) in fast
    assert any(answer[0] == "error" and answer[1] is exceptions.KeyUnavailable
               for answer in fast)


def test_threads_encode_the_same_bytes(tmp_path):
    """Each thread packs with packers of its own: the bytes of a payload and
    a header never depend on which thread made them, however they overlap."""
    import threading
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
