"""Requirement 10: the Sealer's keyring cache, refresh-on-miss, rate limit,
retired versions and rewrap. The store is a counting proxy over a real
FileKeyStore; time is a FakeClock."""

import pytest

import sealedmeta
from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import exceptions

from tests.unit.helpers import forge

NAME = "cinder-backup"
CTX = {"backup_id": "b1"}
TTL = 300
INTERVAL = 2.0


def make(counting, clock, **kwargs):
    kwargs.setdefault("cache_ttl", TTL)
    kwargs.setdefault("refresh_interval", INTERVAL)
    return Sealer(counting, keyring=NAME, clock=clock, **kwargs)


def test_counting_proxy_sits_on_a_real_store(counting, store):
    assert isinstance(counting._inner, FileKeyStore)
    assert counting.get_keyring(NAME) == store.get_keyring(NAME)
    assert counting.calls == {"get_keyring": 1}


def test_no_store_calls_after_warm_up(counting, clock):
    sealer = make(counting, clock)
    first = sealer.seal({"n": 0}, CTX)
    assert counting.calls == {"get_keyring": 1, "get_key": 1}
    counting.reset()
    sealed = []
    for n in range(50):
        clock.advance((TTL - 1) / 50)
        sealed.append(sealer.seal({"n": n}, CTX))
    for n, raw in enumerate(sealed):
        assert sealer.open(raw, CTX) == {"n": n}
    assert sealer.open(first, CTX) == {"n": 0}
    assert sealer.rewrap(first) == first
    assert counting.total == 0
    # once the TTL is over: one description read, the key stays cached
    clock.advance(1)
    sealer.seal({}, CTX)
    assert counting.calls == {"get_keyring": 1}


def test_cache_ttl_zero_reads_every_time(counting, clock):
    sealer = make(counting, clock, cache_ttl=0)
    for _ in range(3):
        sealer.seal({}, CTX)
    assert counting.calls["get_keyring"] == 3 and counting.calls["get_key"] == 1


def test_rotation_by_another_sealer(counting, clock, store):
    first = make(counting, clock)
    old_raw = first.seal({"old": True}, CTX)
    assert sealedmeta.inspect(old_raw).key_version == 1

    other = Sealer(FileKeyStore(store.path), keyring=NAME)
    other.store.rotate(NAME)
    new_raw = other.seal({"new": True}, CTX)
    assert sealedmeta.inspect(new_raw).key_version == 2

    # within the TTL the first one keeps sealing with version 1, no store call
    counting.reset()
    clock.advance(TTL / 2)
    assert sealedmeta.inspect(first.seal({}, CTX)).key_version == 1
    clock.advance(TTL / 2 - 1)
    assert sealedmeta.inspect(first.seal({}, CTX)).key_version == 1
    assert counting.total == 0

    # but it opens the new envelope at once: one refresh, one key fetch
    assert first.open(new_raw, CTX) == {"new": True}
    assert counting.calls == {"get_keyring": 1, "get_key": 1}
    assert first.open(old_raw, CTX) == {"old": True}
    assert counting.calls == {"get_keyring": 1, "get_key": 1}


def test_new_version_used_for_sealing_after_the_ttl(counting, clock, store):
    first = make(counting, clock)
    first.seal({}, CTX)
    FileKeyStore(store.path).rotate(NAME)
    clock.advance(TTL - 0.001)
    assert sealedmeta.inspect(first.seal({}, CTX)).key_version == 1
    counting.reset()
    clock.advance(0.001)
    raw = first.seal({}, CTX)
    assert sealedmeta.inspect(raw).key_version == 2
    assert counting.calls == {"get_keyring": 1, "get_key": 1}
    assert first.open(raw, CTX) == {}


def _forged_unknown_key_ids(raw, count):
    return [forge(raw, key_id=bytes([i]) * 16) for i in range(count)]


def test_refresh_interval_rate_limits_unknown_key_ids(counting, clock):
    sealer = make(counting, clock)
    raw = sealer.seal({}, CTX)
    forged = _forged_unknown_key_ids(raw, 20)
    counting.reset()

    # the first unknown key id triggers one refresh; unknown even then, it is
    # an authentication failure
    with pytest.raises(exceptions.UnknownKey) as info:
        sealer.open(forged[0], CTX)
    assert "try again" not in str(info.value)
    assert counting.calls == {"get_keyring": 1}

    # a flood within the interval reaches the store no more
    for raw_forged in forged[1:]:
        clock.advance(INTERVAL / 40)
        with pytest.raises(exceptions.UnknownKey) as info:
            sealer.open(raw_forged, CTX)
        assert "try again later" in str(info.value)
    assert counting.calls == {"get_keyring": 1}

    # after the interval, one more refresh, then quiet again
    clock.advance(INTERVAL)
    for raw_forged in forged:
        with pytest.raises((exceptions.InvalidEnvelope, exceptions.KeyUnavailable)):
            sealer.open(raw_forged, CTX)
    assert counting.calls == {"get_keyring": 2}
    # genuine envelopes are unaffected and cost nothing
    assert sealer.open(raw, CTX) == {}
    assert counting.calls == {"get_keyring": 2}


def test_rate_limit_does_not_hide_a_real_rotation_for_long(counting, clock, store):
    sealer = make(counting, clock)
    raw = sealer.seal({}, CTX)
    with pytest.raises(exceptions.InvalidEnvelope):
        sealer.open(_forged_unknown_key_ids(raw, 1)[0], CTX)  # uses up the refresh
    other = Sealer(FileKeyStore(store.path), keyring=NAME)
    other.store.rotate(NAME)
    new_raw = other.seal({"v": 2}, CTX)
    with pytest.raises(exceptions.KeyUnavailable):  # "try again", not "forged"
        sealer.open(new_raw, CTX)
    clock.advance(INTERVAL)
    assert sealer.open(new_raw, CTX) == {"v": 2}


def test_retired_version_is_refused(counting, clock, store):
    sealer = make(counting, clock)
    old = sealer.seal({"a": 1}, CTX)
    admin = FileKeyStore(store.path)
    admin.rotate(NAME)
    admin.set_state(NAME, 1, "retired")
    # a fresh sealer refuses at once
    with pytest.raises(exceptions.KeyUnavailable):
        Sealer(admin, keyring=NAME).open(old, CTX)
    # the warm one after its TTL
    clock.advance(TTL)
    with pytest.raises(exceptions.KeyUnavailable):
        sealer.open(old, CTX)
    with pytest.raises(exceptions.KeyUnavailable):
        sealer.rewrap(old)
    # reinstated: opens again (after a refresh)
    admin.set_state(NAME, 1, "decrypt-only")
    clock.advance(INTERVAL)
    assert sealer.open(old, CTX) == {"a": 1}
    # destroyed: refused for good
    admin.set_state(NAME, 1, "retired")
    admin.set_state(NAME, 1, "destroyed")
    clock.advance(TTL)
    with pytest.raises(exceptions.KeyUnavailable):
        sealer.open(old, CTX)


def test_refresh_drops_keys_of_versions_no_longer_openable(counting, clock, store):
    sealer = make(counting, clock)
    old = sealer.seal({}, CTX)
    admin = FileKeyStore(store.path)
    admin.rotate(NAME)
    admin.set_state(NAME, 1, "retired")
    sealer.refresh()
    assert sealer._keys == {}
    with pytest.raises(exceptions.KeyUnavailable):
        sealer.open(old, CTX)


def test_rewrap(counting, clock, store):
    sealer = make(counting, clock)
    ctx = {"backup_id": "b1", "volume_id": "v1"}
    old = sealer.seal({"m": [1, 2]}, ctx)
    FileKeyStore(store.path).rotate(NAME)
    clock.advance(TTL)

    new = sealer.rewrap(old)
    assert new != old
    header = sealedmeta.inspect(new)
    assert header.key_version == 2
    assert header.key_id == store.get_keyring(NAME).active.key_id
    assert dict(header.context) == ctx
    assert sealer.open(new, ctx) == {"m": [1, 2]}
    for wrong in ({"backup_id": "b2", "volume_id": "v1"}, {"backup_id": "b1"}, {}):
        with pytest.raises(exceptions.ContextMismatch):
            sealer.open(new, wrong)
    # already under the active version: the very same bytes
    assert sealer.rewrap(new) == new
    assert sealer.rewrap(sealedmeta.armor(new)) == new
    # the old one still opens (decrypt-only) and a second rewrap is fresh
    assert sealer.open(old, ctx) == {"m": [1, 2]}
    again = sealer.rewrap(old)
    assert again != new and sealer.open(again, ctx) == {"m": [1, 2]}


def test_rewrap_refuses_what_does_not_authenticate(sealer):
    raw = sealer.seal({}, CTX)
    bad = raw[:-1] + bytes((raw[-1] ^ 1,))
    with pytest.raises(exceptions.InvalidEnvelope) as info:
        sealer.rewrap(bad)
    assert type(info.value) is exceptions.InvalidEnvelope


def test_sealer_from_a_fresh_store_object_each_call(store, ring):
    # a Sealer never needs the same store object that created the keyring
    a = Sealer(FileKeyStore(store.path), keyring=NAME)
    b = Sealer(FileKeyStore(store.path), keyring=NAME)
    assert b.open(a.seal({"x": "y"}, CTX), CTX) == {"x": "y"}


# -- key store down once the TTL is over: strict, or stale for a grace ------

class Outage:
    """Proxy over a real key store that fails every call while ``down``
    (as an unreachable Barbican does: KeyStoreError), or raises *error*."""

    def __init__(self, inner, clock=None, slow=0.0):
        self._inner = inner
        self.down = False
        self.error = exceptions.KeyStoreError("cannot reach the key store")
        self.calls = 0
        self._clock, self._slow = clock, slow  # a failure takes *slow* s

    def __getattr__(self, name):
        attr = getattr(self._inner, name)

        def call(*args, **kwargs):
            self.calls += 1
            if self.down:
                if self._clock is not None:
                    self._clock.advance(self._slow)
                raise self.error
            return attr(*args, **kwargs)
        return call


def test_key_store_down_after_the_ttl_fails_at_once_by_default(store, ring,
                                                                clock):
    outage = Outage(store)
    sealer = make(outage, clock)
    sealed = sealer.seal({"n": 1}, CTX)
    outage.down = True
    clock.advance(TTL - 1)
    assert sealer.open(sealer.seal({"n": 2}, CTX), CTX) == {"n": 2}
    clock.advance(1)
    for attempt in (lambda: sealer.seal({}, CTX),
                    lambda: sealer.open(sealed, CTX)):
        with pytest.raises(exceptions.KeyStoreError, match="cannot reach"):
            attempt()


def test_stale_grace_keeps_sealing_and_opening_while_the_store_is_down(
        store, ring, clock, caplog):
    outage = Outage(store)
    sealer = make(outage, clock, stale_grace=600)
    sealed = sealer.seal({"n": 1}, CTX)
    outage.down = True
    clock.advance(TTL + 10)
    calls = outage.calls
    with caplog.at_level("WARNING", logger="sealedmeta.sealer"):
        for n in range(20):
            assert sealer.open(sealer.seal({"n": n}, CTX), CTX) == {"n": n}
    assert sealer.open(sealed, CTX) == {"n": 1}
    # One attempt to read the store, then none within refresh_interval.
    assert outage.calls == calls + 1
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "stale_grace" in warnings[0]
    assert "cannot reach the key store" in warnings[0]
    key = store.get_key(NAME, 1)
    assert key.hex() not in warnings[0] and repr(key) not in warnings[0]
    # Tried again after refresh_interval; still down, still served.
    clock.advance(INTERVAL)
    sealer.seal({}, CTX)
    assert outage.calls == calls + 2
    # Past cache_ttl + stale_grace since the last good read: refused.
    clock.advance(TTL + 600)
    with pytest.raises(exceptions.KeyStoreError, match="cannot reach"):
        sealer.seal({}, CTX)
    with pytest.raises(exceptions.KeyStoreError):
        sealer.open(sealed, CTX)


def test_stale_grace_ends_when_the_store_answers_again(store, ring, clock):
    outage = Outage(store)
    sealer = make(outage, clock, stale_grace=600)
    sealer.seal({}, CTX)
    outage.down = True
    clock.advance(TTL)
    assert sealer.open(sealer.seal({}, CTX), CTX) == {}  # stale, version 1
    store.rotate(NAME)
    outage.down = False
    clock.advance(INTERVAL)
    assert sealedmeta.inspect(sealer.seal({}, CTX)).key_version == 2


def test_a_keyring_that_is_gone_is_never_served_stale(store, ring, clock):
    outage = Outage(store)
    sealer = make(outage, clock, stale_grace=600)
    sealer.seal({}, CTX)
    outage.down = True
    outage.error = exceptions.NoSuchKeyring("no keyring %r" % NAME)
    clock.advance(TTL)
    with pytest.raises(exceptions.NoSuchKeyring):
        sealer.seal({}, CTX)


def test_stale_grace_needs_a_first_read(store, ring, clock):
    outage = Outage(store)
    outage.down = True
    sealer = make(outage, clock, stale_grace=600)
    with pytest.raises(exceptions.KeyStoreError, match="cannot reach"):
        sealer.seal({}, CTX)


def test_a_slow_failure_is_not_retried_at_once(store, ring, clock):
    """A failed read that took longer than refresh_interval (timeouts,
    retries) is not attempted again by the very next call: the interval
    counts from when the attempt ended."""
    outage = Outage(store, clock=clock, slow=3 * INTERVAL)
    sealer = make(outage, clock, stale_grace=600)
    sealer.seal({}, CTX)
    outage.down = True
    clock.advance(TTL)
    calls = outage.calls
    for _ in range(5):
        assert sealer.open(sealer.seal({}, CTX), CTX) == {}
    assert outage.calls == calls + 1
