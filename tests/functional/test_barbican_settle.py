"""When a version stopped being active, recorded by a real Barbican: the
rotation writes it into the demoted version's secret metadata, later state
changes keep it, another store reads it, and retire waits for the window."""

import pytest

from sealedmeta import admin
from sealedmeta import coordination
from sealedmeta import keyring as kr


def test_deactivated_time_in_barbican(barbican, open_store, ring_name):
    store = open_store(barbican.conf_path)
    store.create_keyring(ring_name)
    before = kr.now()
    store.rotate(ring_name)
    after = kr.now()
    other = open_store(barbican.conf_path)
    since = other.get_keyring(ring_name).version(1).deactivated
    assert since is not None and before <= since <= after
    coord = coordination.NoCoordination()
    with pytest.raises(admin.NotSettled) as err:
        admin.retire(other, ring_name, 1, coord, settle=300, at=since + 100)
    assert err.value.left == 201
    assert other.get_keyring(ring_name).version(1).state is (
        kr.KeyState.DECRYPT_ONLY)
    admin.retire(other, ring_name, 1, coord, settle=300, at=since + 301)
    admin.reinstate(other, ring_name, 1, coord)
    # State changes keep the time; a second rotation records version 2's.
    store.rotate(ring_name)
    ring = open_store(barbican.conf_path).get_keyring(ring_name)
    assert ring.version(1).deactivated == since
    assert ring.version(2).deactivated >= since
    assert ring.version(3).deactivated is None


def test_default_window_and_a_time_ahead_in_barbican(barbican, open_store,
                                                     ring_name):
    """A library caller that names no window waits the default one, and a
    time the rotating host wrote ahead of this host's clock is refused with
    its own error, as with the file store: the time is read back from the
    version secret's metadata."""
    store = open_store(barbican.conf_path)
    store.create_keyring(ring_name)
    store.rotate(ring_name)
    other = open_store(barbican.conf_path)
    since = other.get_keyring(ring_name).version(1).deactivated
    coord = coordination.NoCoordination()
    with pytest.raises(admin.NotSettled) as err:
        admin.retire(other, ring_name, 1, coord, at=since + 100)
    assert err.value.left == admin.DEFAULT_SETTLE + 1 - 100
    with pytest.raises(admin.ClockAhead,
                       match=r"version 1 of keyring %r: it is recorded as no"
                             r" longer active since \S+Z, 5s ahead of this"
                             r" host's clock" % ring_name):
        admin.retire(other, ring_name, 1, coord, at=since - 5)
    assert other.get_keyring(ring_name).version(1).state is (
        kr.KeyState.DECRYPT_ONLY)
    admin.retire(other, ring_name, 1, coord, at=since + 1 + admin.DEFAULT_SETTLE)
