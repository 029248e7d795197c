"""Tamper matrix: every change an attacker can make to the bytes of a stored
envelope, counted, for three payload sizes (100 B, 2 KiB, 64 KiB).

For each envelope:

* every single-bit flip (64 KiB: every bit of the prefix + header and of
  the first and last 4 KiB of the body, plus a seeded random sample of
  :data:`MIDDLE_SAMPLE` bits of the rest);
* every truncation (every length 0 .. n-1);
* every one-byte extension: each of the 256 byte values appended, and
  prepended; for the armour, each of the 64 base64url characters appended;
* every header field replaced by each other *valid* value (other keyring,
  other key version, other key id, both together, other context, other
  creation time, salt, nonce, other suite, format version up and down), the
  header re-encoded canonically with a correct length, so that only
  authentication can catch it;
* (100 B) every character of the armour replaced by each other base64url
  character, and every bit flip classified by the auditor that
  ``sealedmeta verify`` runs.

Each case must be refused with an :class:`InvalidEnvelope` subclass, and the
*exact* one an oracle computes from the parsed header: structural errors
where the bytes are no longer a well-formed envelope; for every change that
leaves a well-formed envelope, exactly the single authentication failure
(``InvalidEnvelope``, one fixed message), or ``UnknownKey`` when the header
names a keyring / key id nobody has, or ``UnsupportedFormat`` for another
suite. Never ``ContextMismatch`` (authentication comes first) and never
success. The counts are printed in the terminal summary.
"""

import collections
import dataclasses
import os
import random
import string
import types

import msgpack
import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import armor
from sealedmeta import audit
from sealedmeta import carriers
from sealedmeta import crypto
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import suites

from tests.reliability import figures

RING = "cinder-backup"
OTHER_RING = "other-ring"
CONTEXT = {"backup_id": "8a3c1e0e-6d3b-4c52-9b8f-0d7c5e1b2a90",
           "volume_id": "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"}
PAYLOAD_SIZES = {"100B": 100, "2KiB": 2048, "64KiB": 65536}
EDGE = 4096            # bytes at each end of a large body flipped exhaustively
EXHAUSTIVE_LIMIT = 16 * 1024   # bodies up to this size are flipped entirely
MIDDLE_SAMPLE = 16384  # seeded random bit flips in the rest of a large body
SEED = 20240611

AUTH = "auth"          # exactly InvalidEnvelope(crypto.AUTH_FAILED)

COUNTS = collections.defaultdict(collections.Counter)  # size -> kind -> n
OUTCOMES = collections.defaultdict(collections.Counter)  # size -> outcome -> n


def metadata_of_payload_size(size):
    """Cinder-like metadata whose msgpack payload is exactly *size* bytes."""
    base = {"volume_id": CONTEXT["volume_id"],
            "glance": {"os_distro": "debian", "billing": "B1"}, "pad": ""}
    overhead = len(envelope.encode_payload(base))
    assert overhead < size
    pad = size - overhead
    # str headers grow by 1 byte at 32 and 2 more at 256, 65536 characters
    for grow in (0, 1, 2, 3, 4):
        base["pad"] = "x" * (pad - grow)
        if len(envelope.encode_payload(base)) == size:
            return base
    raise AssertionError("cannot pad to %d" % size)


@dataclasses.dataclass
class World:
    store: FileKeyStore
    sealer: Sealer         # opens RING, refresh on every unknown key
    other: Sealer          # opens OTHER_RING
    ring: kr.KeyRing
    other_ring: kr.KeyRing


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    store = FileKeyStore(str(tmp_path_factory.mktemp("matrix") / "keys"))
    store.create_keyring(RING)           # v1 -> retired below
    store.rotate(RING)                   # v2 decrypt-only
    store.rotate(RING)                   # v3 decrypt-only
    store.rotate(RING)                   # v4 active: seals the envelopes
    store.set_state(RING, 1, "retired")
    store.create_keyring(OTHER_RING)
    return World(store, Sealer(store, RING, refresh_interval=0),
                 Sealer(store, OTHER_RING, refresh_interval=0),
                 store.get_keyring(RING), store.get_keyring(OTHER_RING))


@pytest.fixture(scope="module")
def envelopes(world):
    out = {}
    for name, size in PAYLOAD_SIZES.items():
        meta = metadata_of_payload_size(size)
        raw = world.sealer.seal(meta, CONTEXT)
        assert world.sealer.open(raw, CONTEXT) == meta
        out[name] = raw
    return out


# -- the oracle ----------------------------------------------------------------

def expected_outcome(world, data, original):
    """What opening *data* (for CONTEXT, under RING) must raise.

    A class for structural failures (what the bare parser says), AUTH for
    the single authentication failure, UnknownKey, UnsupportedFormat or
    KeyUnavailable as the header decides.
    """
    assert data != original
    try:
        header = envelope.parse(data).header
    except exceptions.InvalidEnvelope as exc:
        return type(exc)
    if header.suite not in suites.BY_ID:  # 1, and 2 (signed) since suite 2
        return exceptions.UnsupportedFormat
    if header.keyring != RING:
        return exceptions.UnknownKey
    version = world.ring.by_key_id(header.key_id)
    if version is None:
        return exceptions.UnknownKey
    if version.number != header.key_version:
        return AUTH
    if version.state not in kr.OPENABLE:
        return exceptions.KeyUnavailable
    return AUTH


def outcome_of(exc):
    if type(exc) is exceptions.InvalidEnvelope:
        assert str(exc) == crypto.AUTH_FAILED, str(exc)
        return AUTH
    return type(exc)


def check(world, size, kind, data, original, opener=None, expected=None):
    """Open *data*; assert it raises exactly the oracle's outcome."""
    if expected is None:
        expected = expected_outcome(world, data, original)
    try:
        (opener or (lambda d: world.sealer.open(d, CONTEXT)))(data)
    except exceptions.SealedMetaError as exc:
        error = exc
    else:
        raise AssertionError("%s %s: a changed envelope OPENED" % (size, kind))
    got = outcome_of(error)
    assert got is expected, (size, kind, got, expected, str(error))
    if expected is not exceptions.KeyUnavailable:
        assert isinstance(error, exceptions.InvalidEnvelope)
    assert not isinstance(error, exceptions.ContextMismatch)
    COUNTS[size][kind] += 1
    OUTCOMES[size][getattr(got, "__name__", got)] += 1


def body_start(raw):
    return 8 + int.from_bytes(raw[6:8], "big")


def flip(raw, bit):
    data = bytearray(raw)
    data[bit // 8] ^= 1 << (bit % 8)
    return bytes(data)


def bits_to_flip(raw):
    """(bits flipped exhaustively, bits sampled) of an envelope."""
    start = body_start(raw)
    n_bits = 8 * len(raw)
    if len(raw) - start <= EXHAUSTIVE_LIMIT:
        return list(range(n_bits)), []
    exhaustive = list(range(8 * (start + EDGE))) + list(
        range(8 * (len(raw) - EDGE), n_bits))
    middle = range(8 * (start + EDGE), 8 * (len(raw) - EDGE))
    sample = sorted(random.Random(SEED).sample(middle, MIDDLE_SAMPLE))
    return exhaustive, sample


# -- the matrix ------------------------------------------------------------------

@pytest.mark.parametrize("size", sorted(PAYLOAD_SIZES, key=PAYLOAD_SIZES.get))
def test_every_bit_flip(world, envelopes, size):
    raw = envelopes[size]
    start = body_start(raw)
    exhaustive, sample = bits_to_flip(raw)
    for kind, bits in (("bit flip", exhaustive), ("bit flip (sampled)", sample)):
        for bit in bits:
            # ciphertext, tag or MAC: the one auth failure; header: the oracle
            expected = AUTH if bit // 8 >= start else None
            check(world, size, kind, flip(raw, bit), raw, expected=expected)
    figures.record("tamper matrix %s bit flips" % size, envelope_bytes=len(raw),
                   header_end=start, exhaustive=len(exhaustive),
                   sampled=len(sample), seed=SEED if sample else None,
                   bits_in_envelope=8 * len(raw))


@pytest.mark.parametrize("size", sorted(PAYLOAD_SIZES, key=PAYLOAD_SIZES.get))
def test_every_truncation(world, envelopes, size):
    raw = envelopes[size]
    complete = body_start(raw) + envelope.GCM_TAG_SIZE + 1 + envelope.MAC_SIZE
    for length in range(len(raw)):
        expected = AUTH if length >= complete else exceptions.MalformedEnvelope
        check(world, size, "truncation", raw[:length], raw, expected=expected)


@pytest.mark.parametrize("size", sorted(PAYLOAD_SIZES, key=PAYLOAD_SIZES.get))
def test_every_one_byte_extension(world, envelopes, size):
    raw = envelopes[size]
    for value in range(256):
        check(world, size, "extension (byte appended)", raw + bytes((value,)),
              raw, expected=AUTH)
        # Prepended: no longer starts with the magic (or, for 'S', the
        # magic is followed by the wrong bytes).
        check(world, size, "extension (byte prepended)", bytes((value,)) + raw,
              raw)
    text = armor(raw)
    for char in string.ascii_letters + string.digits + "-_":
        extended = text + char
        expected = _armour_expectation(world, extended, raw)
        check(world, size, "extension (armour char appended)", extended, raw,
              expected=expected)


def _armour_expectation(world, text, raw):
    """Oracle for changed armour: non-canonical or undecodable text is
    malformed; otherwise whatever the decoded bytes deserve."""
    import base64
    import binascii
    body = text[len(envelope.ARMOR_PREFIX):]
    if len(body) % 4 == 1:
        return exceptions.MalformedEnvelope
    try:
        decoded = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        return exceptions.MalformedEnvelope
    if base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() != body:
        return exceptions.MalformedEnvelope   # stray low bits: not canonical
    if decoded == raw:
        raise AssertionError("a changed armour decodes to the same envelope")
    return expected_outcome(world, decoded, raw)


def test_every_armour_character_substitution(world, envelopes):
    size = "100B"
    raw = envelopes[size]
    text = armor(raw)
    alphabet = string.ascii_letters + string.digits + "-_"
    start = len(envelope.ARMOR_PREFIX)
    for index in range(start, len(text)):
        for char in alphabet:
            if char == text[index]:
                continue
            changed = text[:index] + char + text[index + 1:]
            check(world, size, "armour character substituted", changed, raw,
                  expected=_armour_expectation(world, changed, raw))
    for index in range(start):  # the prefix: not armour any more
        changed = text[:index] + "X" + text[index + 1:]
        check(world, size, "armour character substituted", changed, raw,
              expected=exceptions.MalformedEnvelope)


# -- header fields replaced by other valid values ------------------------------

def reencode(raw, fmt_byte=envelope.FORMAT_VERSION, **changes):
    """*raw* with header fields replaced, re-encoded canonically, the length
    field right and ciphertext / MAC kept: well-formed unless the new value
    itself is refused by the parser."""
    header = envelope.parse(raw).header
    if "context" in changes:
        changes["context"] = types.MappingProxyType(
            dict(sorted(changes["context"].items())))
    header = dataclasses.replace(header, **changes)
    header_bytes = envelope.encode_header(header)
    start = body_start(raw)
    return (envelope.MAGIC + bytes((fmt_byte,))
            + len(header_bytes).to_bytes(2, "big") + header_bytes + raw[start:])


def replacements(world, raw):
    """(description, forged bytes, expected outcome, context to open with)."""
    header = envelope.parse(raw).header
    ring, other = world.ring, world.other_ring
    me = ring.by_key_id(header.key_id)
    out = []
    # keyring: another existing keyring, one nobody has, and the other
    # keyring with its own key id and version (opened by its own sealer)
    out.append(("keyring: other existing keyring", dict(keyring=OTHER_RING),
                exceptions.UnknownKey, None))
    out.append(("keyring: keyring nobody has", dict(keyring="nobody-has-it"),
                exceptions.UnknownKey, None))
    out.append(("keyring+key id+version: the other keyring's active",
                dict(keyring=OTHER_RING, key_id=other.active.key_id,
                     key_version=other.active.number), AUTH, "other"))
    for v in ring.versions:
        if v.number == me.number:
            continue
        # version number alone: our key id under another number -> forged
        out.append(("key version -> %d (%s)" % (v.number, v.state),
                    dict(key_version=v.number), AUTH, None))
        # key id alone: another version's key id under our number -> forged
        out.append(("key id -> v%d's (%s)" % (v.number, v.state),
                    dict(key_id=v.key_id), AUTH, None))
        # both, consistently: the MAC under that version's key fails, or a
        # retired version is refused before any key is used
        out.append(("key id+version -> v%d (%s)" % (v.number, v.state),
                    dict(key_id=v.key_id, key_version=v.number),
                    AUTH if v.state in kr.OPENABLE else exceptions.KeyUnavailable,
                    None))
    out.append(("key id: nobody's", dict(key_id=os.urandom(16)),
                exceptions.UnknownKey, None))
    out.append(("key id: the other keyring's", dict(key_id=other.active.key_id),
                exceptions.UnknownKey, None))
    for number in (me.number + 1, 2**31 - 1):
        out.append(("key version -> %d (no such version)" % number,
                    dict(key_version=number), AUTH, None))
    other_contexts = [
        {**CONTEXT, "backup_id": "00000000-0000-0000-0000-000000000000"},
        {"backup_id": CONTEXT["backup_id"]},
        {**CONTEXT, "project_id": "p"},
        {},
    ]
    for ctx in other_contexts:
        # opened both with the forged context (the attacker's claim) and
        # with the right one: authentication fails either way
        out.append(("context -> %s (opened for it)" % sorted(ctx),
                    dict(context=ctx), AUTH, ctx))
        out.append(("context -> %s (opened for the real one)" % sorted(ctx),
                    dict(context=ctx), AUTH, None))
    for created in (0, header.created - 1, header.created + 1, 2**63 - 1):
        out.append(("created -> %d" % created, dict(created=created), AUTH, None))
    out.append(("salt -> zeros", dict(salt=bytes(32)), AUTH, None))
    out.append(("salt -> random", dict(salt=os.urandom(32)), AUTH, None))
    out.append(("nonce -> zeros", dict(nonce=bytes(12)), AUTH, None))
    out.append(("nonce -> random", dict(nonce=os.urandom(12)), AUTH, None))
    for suite in (0, 3, 255):
        out.append(("suite -> %d" % suite, dict(suite=suite),
                    exceptions.UnsupportedFormat, None))
    # Suite 2 (signed) is known: relabelled, the last 64 bytes are taken for
    # a signature and the MAC (over a header naming suite 2) fails.
    out.append(("suite -> 2 (signed)", dict(suite=2), AUTH, None))
    return out


def format_changes(raw):
    """Format version up and down, in the prefix byte, the header field, or
    both (consistently)."""
    out = []
    for fmt in (0, 2, 255):
        out.append(("format byte -> %d" % fmt, reencode(raw, fmt_byte=fmt),
                    exceptions.UnsupportedFormat))
        out.append(("format byte+header field -> %d" % fmt,
                    reencode(raw, fmt_byte=fmt, format_version=fmt),
                    exceptions.UnsupportedFormat))
        out.append(("format header field -> %d" % fmt,
                    reencode(raw, format_version=fmt),
                    exceptions.MalformedEnvelope))
    return out


@pytest.mark.parametrize("size", sorted(PAYLOAD_SIZES, key=PAYLOAD_SIZES.get))
def test_every_header_field_replaced_by_other_valid_values(world, envelopes, size):
    raw = envelopes[size]
    cases = 0
    for what, changes, expected, context in replacements(world, raw):
        forged = reencode(raw, **changes)
        # well-formed: the parser accepts it, only authentication can tell
        assert envelope.parse(forged).header != envelope.parse(raw).header
        if context == "other":
            def opener(d, s=world.other):
                return s.open(d, CONTEXT)
        elif context is not None:
            def opener(d, ctx=context):
                return world.sealer.open(d, ctx)
        else:
            opener = None
        check(world, size, "header field replaced", forged, raw, opener=opener,
              expected=expected)
        # rewrap and verify take the same path
        if opener is None:
            for call in (world.sealer.rewrap, world.sealer.verify):
                with pytest.raises(exceptions.SealedMetaError) as info:
                    call(forged)
                assert outcome_of(info.value) is expected, (what, call)
        cases += 1
    for what, forged, expected in format_changes(raw):
        check(world, size, "format version changed", forged, raw,
              expected=expected)
        cases += 1
    assert cases >= 40


def test_audit_classifies_every_flip_as_not_valid(world, envelopes):
    """The auditor behind ``sealedmeta verify``: every bit flip of the small
    envelope gets a non-valid status, the one the oracle implies."""
    size = "100B"
    raw = envelopes[size]
    auditor = audit.Auditor(world.store)
    raw_carrier = carriers.RawCarrier()
    status_of = {AUTH: audit.INVALID,
                 exceptions.UnknownKey: audit.UNKNOWN_KEY,
                 exceptions.UnsupportedFormat: audit.MALFORMED,
                 exceptions.MalformedEnvelope: audit.MALFORMED,
                 exceptions.EnvelopeTooLarge: audit.MALFORMED,
                 exceptions.KeyUnavailable: audit.RETIRED_KEY}
    statuses = collections.Counter()
    for bit in range(8 * len(raw)):
        data = flip(raw, bit)
        item = carriers.Item("e", carried=carriers.Carried(
            raw_carrier, data, data, ("raw", b"")))
        finding = auditor.check(item)
        expected = expected_outcome(world, data, raw)
        assert finding.status == status_of[expected], (bit, finding, expected)
        statuses[finding.status] += 1
        COUNTS[size]["audit status of a bit flip"] += 1
    figures.record("tamper matrix audit (100B, every bit flip)",
                   **{k.replace("-", "_"): v for k, v in sorted(statuses.items())})


def test_zz_matrix_totals():
    """Runs last in this module: the counts of everything above."""
    total = 0
    for size in sorted(COUNTS, key=PAYLOAD_SIZES.get):
        n = sum(COUNTS[size].values())
        total += n
        figures.record("tamper matrix %s cases" % size, total=n,
                       **{k.replace(" ", "_").replace("(", "").replace(")", ""): v
                          for k, v in sorted(COUNTS[size].items())})
        figures.record("tamper matrix %s outcomes" % size,
                       **dict(sorted(OUTCOMES[size].items())))
    figures.record("tamper matrix total", cases=total)
    if COUNTS:  # when run alone (-k) there is nothing to add up
        assert total > 0


def test_msgpack_is_the_canonical_encoder():
    """reencode() relies on encode_header being canonical msgpack."""
    fields = [1, 1, RING, 3, bytes(16), {"a": "b"}, 5, bytes(32), bytes(12)]
    assert envelope.encode_header_fields(*fields) == msgpack.packb(
        fields, use_bin_type=True)
