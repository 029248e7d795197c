"""Requirement 7: the keyring model (no I/O)."""

import dataclasses
import itertools
import os

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from sealedmeta import crypto
from sealedmeta import exceptions
from sealedmeta import keyring as kr

S = kr.KeyState
ALLOWED = {(S.DECRYPT_ONLY, S.RETIRED), (S.RETIRED, S.DECRYPT_ONLY),
           (S.RETIRED, S.DESTROYED), (S.RETIRED, S.PENDING_DESTRUCTION),
           (S.PENDING_DESTRUCTION, S.DECRYPT_ONLY),
           (S.PENDING_DESTRUCTION, S.DESTROYED)}
DUE = 2000000000


def due(state):
    """The destroy_after a version in *state* has (and a transition to it
    takes)."""
    return DUE if kr.KeyState(state) is S.PENDING_DESTRUCTION else None


def kid(n):
    return crypto.key_id(bytes([n]) * 32)


def version(n, state, created=100):
    return kr.KeyVersion(n, kid(n), state, created, destroy_after=due(state))


def ring_with(state):
    """A ring whose version 1 is in *state* (version 2 active unless 1 is)."""
    if state is S.ACTIVE:
        return kr.KeyRing("r", (version(1, S.ACTIVE),))
    return kr.KeyRing("r", (version(1, state), version(2, S.ACTIVE)))


@pytest.mark.parametrize("src,dst", list(itertools.product(S, S)),
                         ids=lambda s: s.value)
def test_transition_table(src, dst):
    ring = ring_with(src)
    if (src, dst) in ALLOWED:
        new = kr.transitioned(ring, 1, dst, due(dst))
        assert new.version(1).state is dst
        assert new.version(1).key_id == ring.version(1).key_id
        # Entering pending destruction sets the time, leaving it drops it.
        assert new.version(1).destroy_after == due(dst)
        assert new.active == ring.active
        # by value as well as by enum
        assert kr.transitioned(ring, 1, dst.value, due(dst)) == new
        assert kr.check_transition(ring, 1, dst) == ring.version(1)
    else:
        with pytest.raises(exceptions.InvalidTransition):
            kr.transitioned(ring, 1, dst, due(dst))
        with pytest.raises(exceptions.InvalidTransition):
            kr.transitioned(ring, 1, dst.value, due(dst))


def test_the_refusals_say_what_to_do_instead():
    for src, dst, instead in (
            (S.DECRYPT_ONLY, S.PENDING_DESTRUCTION,
             "cannot go from decrypt-only to pending-destruction; retire it"
             " first ('sealedmeta key retire')"),
            (S.PENDING_DESTRUCTION, S.RETIRED,
             "cannot go from pending-destruction to retired; 'sealedmeta key"
             " reinstate' cancels its destruction"),
            (S.DESTROYED, S.PENDING_DESTRUCTION,
             "cannot go from destroyed to pending-destruction: its key"
             " material is gone")):
        with pytest.raises(exceptions.InvalidTransition) as caught:
            kr.transitioned(ring_with(src), 1, dst, due(dst))
        assert str(caught.value) == "version 1 of 'r' %s" % instead


@pytest.mark.parametrize("state,destroy_after", [
    (S.PENDING_DESTRUCTION, None), (S.PENDING_DESTRUCTION, "2000000000"),
    (S.PENDING_DESTRUCTION, -1), (S.PENDING_DESTRUCTION, True),
    (S.PENDING_DESTRUCTION, 1.5), (S.PENDING_DESTRUCTION, 2**63),
    (S.DESTROYED, DUE), (S.DECRYPT_ONLY, DUE)], ids=repr)
def test_the_destruction_time_goes_with_pending_destruction_only(
        state, destroy_after):
    ring = ring_with(S.RETIRED)
    with pytest.raises(exceptions.InvalidTransition,
                       match="destruction time"):
        kr.transitioned(ring, 1, state, destroy_after)


def test_due_for_destruction():
    ring = kr.KeyRing("r", (
        kr.KeyVersion(1, kid(1), S.PENDING_DESTRUCTION, 1, destroy_after=50),
        kr.KeyVersion(2, kid(2), S.RETIRED, 2),
        kr.KeyVersion(3, kid(3), S.PENDING_DESTRUCTION, 3, destroy_after=60),
        kr.KeyVersion(4, kid(4), S.ACTIVE, 4)))
    assert kr.due_for_destruction(ring, 49) == []
    assert kr.due_for_destruction(ring, 50) == [ring.version(1)]
    assert kr.due_for_destruction(ring, 60) == [ring.version(1),
                                                ring.version(3)]


def test_table_covers_every_pair():
    refused = [(a, b) for a, b in itertools.product(S, S) if (a, b) not in ALLOWED]
    assert len(refused) == 25 - 6
    for src in S:
        assert (S.ACTIVE, src) in refused and (S.DESTROYED, src) in refused
        assert (src, src) in refused


@pytest.mark.parametrize("state", ["bogus", "", "Active", None, 3, "RETIRED"])
def test_unknown_state_refused(state):
    with pytest.raises(exceptions.InvalidTransition):
        kr.transitioned(ring_with(S.DECRYPT_ONLY), 1, state)


@pytest.mark.parametrize("number", [0, 3, -1, "1", None])
def test_unknown_version_refused(number):
    with pytest.raises(exceptions.InvalidTransition):
        kr.transitioned(ring_with(S.DECRYPT_ONLY), number, S.RETIRED)


def test_rotation_keeps_exactly_one_active():
    ring = kr.new_keyring("r", kid(1), created=5)
    assert [v.state for v in ring.versions] == [S.ACTIVE]
    for n in range(2, 8):
        ring, new = kr.rotated(ring, kid(n), created=n)
        assert new.number == n and new.state is S.ACTIVE and new.key_id == kid(n)
        assert ring.active == new
        assert [v.number for v in ring.versions] == list(range(1, n + 1))
        assert [v.state for v in ring.versions] == [S.DECRYPT_ONLY] * (n - 1) + [S.ACTIVE]


def test_rotation_refuses_a_key_id_collision():
    ring = kr.new_keyring("r", kid(1))
    with pytest.raises(exceptions.KeyStoreError):
        kr.rotated(ring, kid(1))


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.tuples(st.sampled_from(["rotate", "set"]), st.integers(1, 12),
                          st.sampled_from(list(S))), max_size=30))
def test_any_sequence_keeps_the_invariants(steps):
    ring = kr.new_keyring("r", os.urandom(16))
    for op, number, state in steps:
        before = ring
        if op == "rotate":
            ring, _ = kr.rotated(ring, os.urandom(16))
        else:
            try:
                ring = kr.transitioned(ring, number, state, due(state))
            except exceptions.InvalidTransition:
                assert ring is before
                current = ring.version(number)
                assert current is None or (current.state, state) not in ALLOWED
                continue
            assert (before.version(number).state, state) in ALLOWED
        assert sum(v.state is S.ACTIVE for v in ring.versions) == 1
        assert [v.number for v in ring.versions] == list(range(1, len(ring.versions) + 1))
        assert ring.active.number == max(v.number for v in ring.versions)
        assert kr.from_dict(ring.as_dict()) == ring


def test_resolve_actives_picks_the_highest_number():
    versions = (version(3, S.ACTIVE), version(1, S.ACTIVE), version(2, S.RETIRED),
                version(5, S.ACTIVE), version(4, S.DECRYPT_ONLY))
    resolved = kr.resolve_actives("r", versions)
    assert [v.number for v in resolved] == [1, 2, 3, 4, 5]
    assert [v.state for v in resolved] == [S.DECRYPT_ONLY, S.RETIRED, S.DECRYPT_ONLY,
                                           S.DECRYPT_ONLY, S.ACTIVE]
    assert kr.KeyRing("r", resolved).active.number == 5
    # key ids and times untouched
    assert {(v.number, v.key_id, v.created) for v in resolved} == {
        (v.number, v.key_id, v.created) for v in versions}


def test_resolve_actives_leaves_a_sound_ring_alone():
    versions = (version(1, S.DECRYPT_ONLY), version(2, S.ACTIVE))
    assert kr.resolve_actives("r", versions) == versions
    assert kr.resolve_actives("r", (versions[1], versions[0])) == versions


@settings(max_examples=100, deadline=None, database=None)
@given(st.lists(st.sampled_from(list(S)), min_size=1, max_size=10))
def test_resolve_actives_property(states):
    versions = tuple(version(n + 1, s) for n, s in enumerate(states))
    resolved = kr.resolve_actives("r", versions)
    actives = [v.number for v in versions if v.state is S.ACTIVE]
    if actives:
        assert [v.number for v in resolved if v.state is S.ACTIVE] == [max(actives)]
    for old, new in zip(versions, resolved):
        if old.state is not S.ACTIVE:
            assert new == old


def good_dict():
    return kr.KeyRing("r", (version(1, S.DECRYPT_ONLY), version(2, S.ACTIVE))).as_dict()


def _mutated(path, value):
    data = good_dict()
    target = data
    for step in path[:-1]:
        target = target[step]
    if value is DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


DELETE = object()
MALFORMED = [
    ("name", DELETE), ("versions", DELETE), ("name", 5), ("name", ""), ("name", "a b"),
    ("name", None), ("versions", None), ("versions", "abc"), ("versions", {}),
    ("versions", []), ("versions", [1]), ("versions", [None]),
    (("versions", 0, "version"), DELETE), (("versions", 0, "version"), "x"),
    (("versions", 0, "version"), "1"), (("versions", 0, "version"), 1.5),
    (("versions", 0, "version"), True), (("versions", 0, "version"), 0),
    (("versions", 0, "version"), -1), (("versions", 0, "version"), 2**31),
    (("versions", 0, "version"), 2),  # duplicate number
    (("versions", 1, "version"), 1),  # duplicate number
    (("versions", 0, "version"), 3),  # out of order
    (("versions", 0, "key_id"), DELETE), (("versions", 0, "key_id"), "zz"),
    (("versions", 0, "key_id"), "00" * 15), (("versions", 0, "key_id"), "00" * 17),
    (("versions", 0, "key_id"), 5), (("versions", 0, "key_id"), None),
    (("versions", 0, "key_id"), kid(2).hex()),  # shared key id
    (("versions", 0, "state"), DELETE), (("versions", 0, "state"), "bogus"),
    (("versions", 0, "state"), "active"),  # two actives
    (("versions", 1, "state"), "retired"),  # no active
    (("versions", 0, "state"), None),
    (("versions", 0, "created"), DELETE), (("versions", 0, "created"), "x"),
    (("versions", 0, "created"), None), (("versions", 0, "created"), -1),
    (("versions", 0, "created"), 1.5), (("versions", 0, "created"), 2**63),
    # A destruction time goes with pending destruction, and only with it.
    (("versions", 0, "destroy_after"), DUE),
    (("versions", 0, "state"), "pending-destruction"),
]


@pytest.mark.parametrize("path,value", MALFORMED, ids=repr)
def test_from_dict_rejects_malformed(path, value):
    data = _mutated(path if isinstance(path, tuple) else (path,), value)
    with pytest.raises(exceptions.KeyStoreError):
        kr.from_dict(data)


@pytest.mark.parametrize("data", [None, [], "ring", 5, {}, {"name": "r"}], ids=repr)
def test_from_dict_rejects_non_descriptions(data):
    with pytest.raises(exceptions.KeyStoreError):
        kr.from_dict(data)


def test_from_dict_round_trip():
    ring = kr.KeyRing("r", (version(1, S.DESTROYED), version(2, S.RETIRED),
                            version(3, S.DECRYPT_ONLY),
                            version(4, S.PENDING_DESTRUCTION),
                            version(5, S.ACTIVE, 2**40)))
    assert kr.from_dict(ring.as_dict()) == ring
    assert ring.as_dict()["versions"][3]["destroy_after"] == DUE
    assert "destroy_after" not in ring.as_dict()["versions"][2]
    for bad in ("x", -1, True, 1.5, 2**63):
        data = ring.as_dict()
        data["versions"][3]["destroy_after"] = bad
        with pytest.raises(exceptions.KeyStoreError):
            kr.from_dict(data)
    assert kr.from_dict(good_dict()).active.number == 2


def test_keyring_constructor_checks_consistency():
    with pytest.raises(exceptions.KeyStoreError):
        kr.KeyRing("r", ())
    with pytest.raises(exceptions.KeyStoreError):
        kr.KeyRing("r", (version(1, S.RETIRED),))
    with pytest.raises(exceptions.KeyStoreError):
        kr.KeyRing("r", (version(2, S.ACTIVE), version(1, S.RETIRED)))
    with pytest.raises(exceptions.InvalidMetadata):
        kr.KeyRing("bad name", (version(1, S.ACTIVE),))
    ring = kr.KeyRing("r", (version(1, S.RETIRED), version(2, S.ACTIVE)))
    assert ring.by_key_id(kid(1)) == ring.version(1)
    assert ring.by_key_id(b"\x00" * 16) is None and ring.version(9) is None
    assert dataclasses.asdict(ring.version(2))["state"] is S.ACTIVE
