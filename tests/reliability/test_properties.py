"""Property tests (hypothesis, bounded and fast) over the public entry points.

Each property runs :data:`EXAMPLES` examples with a fixed seed (derandomized,
no example database), so a run is reproducible and takes seconds.

* any metadata and context round-trip exactly, raw and armoured;
* any sequence of byte edits of a genuine envelope (flip, set, insert,
  delete, truncate, extend, splice with another genuine envelope) is
  refused with the outcome the header implies, never opened;
* any *valid* value in any header field, canonically re-encoded: refused by
  authentication (or as an unknown key / unsupported suite);
* any msgpack value as the header: only the library's errors escape;
* dearmor: every text it accepts is the one canonical armour of its bytes;
* any context other than the sealed one: ContextMismatch, after
  authentication;
* an audit of a random directory of genuine, tampered, armoured and junk
  files: each file gets the status it deserves; a rewrap of it only touches
  genuine envelopes under an old version, and a second rewrap changes
  nothing.
"""

import base64
import collections
import dataclasses
import math
import os
import shutil
import string
import tempfile
import types

import msgpack
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import armor
from sealedmeta import audit
from sealedmeta import crypto
from sealedmeta import dearmor
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import inspect
from sealedmeta import keyring as kr
from sealedmeta import rewrap
from sealedmeta import suites

from tests.reliability import figures

EXAMPLES = 300
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])
RING = "cinder-backup"
CONTEXT = {"backup_id": "b-1", "volume_id": "v-1"}
RUNS = collections.Counter()   # property -> examples run


# -- strategies ---------------------------------------------------------------

context_keys = st.from_regex(r"[A-Za-z0-9_.:-]{1,16}", fullmatch=True)
context_values = st.text(max_size=40)
contexts = st.dictionaries(context_keys, context_values, max_size=6)

scalars = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=60), st.binary(max_size=60))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5),
                            st.dictionaries(st.text(max_size=12), inner,
                                            max_size=5)),
    max_leaves=30)
metadatas = st.dictionaries(st.text(max_size=20), values, max_size=8)

keyring_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)

edit = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(0, 7)),
    st.tuples(st.just("set"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("extend"), st.integers(0, 255), st.integers(1, 64)),
    st.tuples(st.just("splice"), st.integers(0, 10**6), st.just(0)),
)

msgpack_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
              st.floats(), st.text(max_size=30), st.binary(max_size=40)),
    lambda inner: st.one_of(st.lists(inner, max_size=10),
                            st.dictionaries(st.one_of(st.text(max_size=10),
                                                      st.integers()),
                                            inner, max_size=10)),
    max_leaves=40)


# -- helpers --------------------------------------------------------------------

def same(got, want):
    """Deep equality with identical types; NaN equals NaN, -0.0 is not 0.0."""
    if type(got) is not type(want):
        return False
    if type(want) is dict:
        return got.keys() == want.keys() and all(same(got[k], want[k]) for k in want)
    if type(want) is list:
        return len(got) == len(want) and all(map(same, got, want))
    if type(want) is float:
        if math.isnan(want):
            return math.isnan(got)
        return got == want and math.copysign(1, got) == math.copysign(1, want)
    return got == want


@dataclasses.dataclass
class World:
    store: FileKeyStore
    sealer: Sealer
    ring: kr.KeyRing
    genuine: bytes
    other_genuine: bytes
    old: bytes              # genuine, under the decrypt-only version 1


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    store = FileKeyStore(str(tmp_path_factory.mktemp("props") / "keys"))
    store.create_keyring(RING)
    sealer = Sealer(store, RING, refresh_interval=0)
    old = sealer.seal({"image": {"os_distro": "debian"}, "n": 0}, CONTEXT)
    store.rotate(RING)
    store.create_keyring("other-ring")
    sealer.refresh()
    return World(store, sealer, store.get_keyring(RING),
                 sealer.seal({"image": {"os_distro": "debian"}, "n": 1}, CONTEXT),
                 sealer.seal({"image": {"os_distro": "fedora"}, "n": 2},
                             {"backup_id": "b-2", "volume_id": "v-1"}), old)


def apply_edits(raw, edits, other):
    data = bytearray(raw)
    for op, a, b in edits:
        n = len(data)
        if op == "flip" and n:
            data[a % n] ^= 1 << b
        elif op == "set" and n:
            data[a % n] = b
        elif op == "insert":
            data.insert(a % (n + 1), b)
        elif op == "delete" and n:
            del data[a % n]
        elif op == "truncate":
            del data[a % (n + 1):]
        elif op == "extend":
            data.extend(bytes((a,)) * b)
        elif op == "splice":
            cut = a % (n + 1)
            data[cut:] = other[cut:]
    return bytes(data)


def allowed_outcomes(world, data):
    """Exception classes opening *data* may raise, from its parsed header."""
    try:
        header = envelope.parse(data).header
    except exceptions.InvalidEnvelope as exc:
        return {type(exc)}
    if header.suite not in suites.BY_ID:  # 1, and 2 (signed) since suite 2
        return {exceptions.UnsupportedFormat}
    if header.keyring != RING:
        return {exceptions.UnknownKey}
    version = world.ring.by_key_id(header.key_id)
    if version is None:
        return {exceptions.UnknownKey}
    if version.number == header.key_version and version.state not in kr.OPENABLE:
        return {exceptions.KeyUnavailable}
    # a well-formed envelope whose header names one of our keys: the MAC
    # decides; a genuine (authenticated) envelope may still be a valid other
    # envelope -- see the caller
    return {exceptions.InvalidEnvelope}


# -- properties -------------------------------------------------------------------

@SETTINGS
@given(metadata=metadatas, context=contexts)
def test_any_metadata_and_context_round_trip(world, metadata, context):
    raw = world.sealer.seal(metadata, context)
    assert same(world.sealer.open(raw, context), metadata)
    text = armor(raw)
    assert same(world.sealer.open(text, context), metadata)
    assert dict(inspect(text).context) == context
    assert world.sealer.rewrap(raw) == raw  # already under the active version
    RUNS["round trip"] += 1


@SETTINGS
@given(edits=st.lists(edit, min_size=1, max_size=6))
def test_any_edit_sequence_is_refused(world, edits):
    data = apply_edits(world.genuine, edits, world.other_genuine)
    if data in (world.genuine, world.other_genuine):
        return  # the edits cancelled out, or spliced a whole genuine envelope
    with pytest.raises(exceptions.SealedMetaError) as info:
        world.sealer.open(data, CONTEXT)
    exc = info.value
    assert not isinstance(exc, exceptions.ContextMismatch)
    allowed = allowed_outcomes(world, data)
    assert type(exc) in allowed, (type(exc), allowed, edits)
    if type(exc) is exceptions.InvalidEnvelope:
        assert str(exc) == crypto.AUTH_FAILED
    RUNS["edit sequences"] += 1


@SETTINGS
@given(data=st.data())
def test_any_valid_header_value_is_caught_by_authentication(world, data):
    header = envelope.parse(world.genuine).header
    fields = data.draw(st.sets(st.sampled_from(
        ["suite", "keyring", "key_version", "key_id", "context", "created",
         "salt", "nonce"]), min_size=1))
    ring_ids = [v.key_id for v in world.ring.versions]
    draws = {
        # Not 2: a relabel to the signed suite moves the MAC's place, so
        # the forged bytes need not even parse (tests/unit/test_signing.py).
        "suite": st.integers(0, 255).filter(lambda suite: suite != 2),
        "keyring": st.one_of(st.just("other-ring"), keyring_names),
        "key_version": st.integers(1, 2**31 - 1),
        "key_id": st.one_of(st.sampled_from(ring_ids), st.binary(min_size=16,
                                                                  max_size=16)),
        "context": contexts,
        "created": st.integers(0, 2**63 - 1),
        "salt": st.binary(min_size=32, max_size=32),
        "nonce": st.binary(min_size=12, max_size=12),
    }
    changes = {f: data.draw(draws[f], label=f) for f in sorted(fields)}
    if "context" in changes:
        changes["context"] = types.MappingProxyType(
            dict(sorted(changes["context"].items())))
    forged_header = dataclasses.replace(header, **changes)
    if forged_header == header:
        return
    header_bytes = envelope.encode_header(forged_header)
    start = 8 + int.from_bytes(world.genuine[6:8], "big")
    forged = envelope.encode_prefix(header_bytes) + world.genuine[start:]
    assert envelope.parse(forged).header == forged_header   # well-formed
    expect = dict(forged_header.context)
    with pytest.raises(exceptions.SealedMetaError) as info:
        world.sealer.open(forged, expect)
    exc = info.value
    assert type(exc) in allowed_outcomes(world, forged), (type(exc), changes)
    assert type(exc) in (exceptions.InvalidEnvelope, exceptions.UnknownKey,
                         exceptions.UnsupportedFormat, exceptions.KeyUnavailable)
    if type(exc) is exceptions.InvalidEnvelope:
        assert str(exc) == crypto.AUTH_FAILED
    RUNS["valid header values"] += 1


@SETTINGS
@given(header=msgpack_values, body=st.binary(min_size=0, max_size=80))
def test_any_msgpack_header_only_library_errors(world, header, body):
    try:
        header_bytes = msgpack.packb(header, use_bin_type=True)
    except (OverflowError, ValueError, TypeError):
        return
    if len(header_bytes) > 0xFFFF:
        return
    data = (envelope.MAGIC + b"\x01" + len(header_bytes).to_bytes(2, "big")
            + header_bytes + body)
    for call in (envelope.parse, inspect, world.sealer.rewrap,
                 lambda d: world.sealer.open(d, CONTEXT)):
        with pytest.raises(exceptions.InvalidEnvelope):
            call(data)
    RUNS["msgpack headers"] += 1


armour_text = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=80),
    st.text(alphabet=string.ascii_letters + string.digits + "-_=+/ \n\r\t.",
            max_size=80),
    st.text(max_size=40),
)


@SETTINGS
@given(body=armour_text)
def test_dearmor_accepts_only_the_canonical_armour(body):
    text = envelope.ARMOR_PREFIX + body
    try:
        raw = dearmor(text)
    except exceptions.InvalidEnvelope as exc:
        assert isinstance(exc, exceptions.MalformedEnvelope)
    else:
        assert armor(raw) == text
        assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() == body
    RUNS["dearmor"] += 1


@SETTINGS
@given(context=contexts)
def test_any_other_context_is_a_mismatch(world, context):
    if context == CONTEXT:
        assert world.sealer.open(world.genuine, context)
        return
    with pytest.raises(exceptions.ContextMismatch):
        world.sealer.open(world.genuine, context)
    RUNS["other contexts"] += 1


@SETTINGS
@given(context=st.dictionaries(st.text(max_size=70), st.one_of(
    st.text(max_size=1100), st.integers(), st.none(), st.binary(max_size=4)),
    max_size=40))
def test_check_context_raises_only_invalid_metadata(world, context):
    try:
        checked = envelope.check_context(context)
    except exceptions.InvalidMetadata:
        with pytest.raises(exceptions.InvalidMetadata):
            world.sealer.seal({"a": 1}, context)
        with pytest.raises(exceptions.InvalidMetadata):
            world.sealer.open(world.genuine, context)
    else:
        raw = world.sealer.seal({"a": 1}, context)
        assert world.sealer.open(raw, checked) == {"a": 1}
    RUNS["contexts checked"] += 1


FILE_KINDS = ("genuine-raw", "genuine-armour", "old-version", "flipped",
              "truncated", "junk", "armour-junk")


@settings(max_examples=40, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow,
                                 HealthCheck.function_scoped_fixture])
@given(kinds=st.lists(st.sampled_from(FILE_KINDS), min_size=1, max_size=12),
       salt=st.integers(0, 2**16))
def test_audit_and_rewrap_of_a_random_tree(world, kinds, salt):
    old = world.old
    active = world.ring.active
    tmp = tempfile.mkdtemp(prefix="props-tree-")
    try:
        expected = {}
        for i, kind in enumerate(kinds):
            ctx = {"backup_id": "b%d-%d" % (salt, i)}
            sealed = world.sealer.seal({"i": i}, ctx)
            if kind == "genuine-raw":
                data, status = sealed, audit.VALID
            elif kind == "genuine-armour":
                data, status = (armor(sealed) + "\n").encode(), audit.VALID
            elif kind == "old-version":
                data, status = old, audit.VALID
            elif kind == "flipped":
                pos = (salt + i) % len(sealed)
                data = sealed[:pos] + bytes((sealed[pos] ^ 0x10,)) + sealed[pos + 1:]
                status = None  # decided below from the header
            elif kind == "truncated":
                data, status = sealed[:(salt + i) % len(sealed)], None
            elif kind == "junk":
                data, status = os.urandom(1 + (salt + i) % 50), "skipped"
            else:  # armour-junk
                data, status = b"sealedmeta:U01FVE!!" + os.urandom(5).hex().encode(), \
                    audit.MALFORMED
            path = os.path.join(tmp, "f%02d" % i)
            with open(path, "wb") as handle:
                handle.write(data)
            if kind == "flipped" and data[:5] != envelope.MAGIC:
                # A damaged magic with an envelope's bytes after it
                # (docs/source/audit.rst, "Which files are envelopes").
                status = audit.MALFORMED
            elif data[:5] != envelope.MAGIC and not data.startswith(b"sealedmeta:U01FVE"):
                status = "skipped"
            elif status is None:
                outcomes = allowed_outcomes(world, data)
                status = {exceptions.InvalidEnvelope: audit.INVALID,
                          exceptions.UnknownKey: audit.UNKNOWN_KEY,
                          exceptions.UnsupportedFormat: audit.MALFORMED,
                          exceptions.MalformedEnvelope: audit.MALFORMED,
                          exceptions.EnvelopeTooLarge: audit.MALFORMED,
                          }[outcomes.pop()]
            expected[path] = status
        report = audit.audit(world.store, [tmp])
        got = {f.path: f.status for f in report.findings}
        got.update({p: "skipped" for p, _ in report.skipped})
        assert got == expected
        # rewrap: only valid envelopes under an old version change
        before = {p: open(p, "rb").read() for p in expected}
        summary = rewrap.rewrap(world.store, [tmp])
        for path, status in expected.items():
            after = open(path, "rb").read()
            if status == audit.VALID and inspect(before[path]).key_version != \
                    active.number:
                assert after != before[path]
                assert inspect(after).key_version == active.number
                ctx = dict(inspect(before[path]).context)
                assert world.sealer.open(after, ctx) == world.sealer.open(
                    before[path], ctx)
            else:
                assert after == before[path], (path, status)
        assert summary.count(rewrap.FAILED) == sum(
            1 for s in expected.values() if s not in (audit.VALID, "skipped"))
        again = rewrap.rewrap(world.store, [tmp])
        assert again.count(rewrap.REWRAPPED) == 0
        RUNS["random trees"] += 1
    finally:
        shutil.rmtree(tmp)


def test_zz_property_figures():
    figures.record("hypothesis examples", per_property_limit=EXAMPLES,
                   **{k.replace(" ", "_"): v for k, v in sorted(RUNS.items())})
