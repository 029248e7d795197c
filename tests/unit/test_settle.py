"""retire / destroy wait until no running process can seal under the version.

A process keeps the keyring it read for cache_ttl (plus stale_grace when
the store fails), so after a rekey it may seal under the former active
version that long: retiring or destroying it earlier loses those backups.
The time is passed in (``at``), so nothing here sleeps.
"""

import json
import os
import time

import pytest
from oslo_config import cfg

from sealedmeta import FileKeyStore
from sealedmeta import admin
from sealedmeta import conf as sm_conf
from sealedmeta import coordination
from sealedmeta import keyring as kr

RING = "settle"
WINDOW = 300


@pytest.fixture
def store(tmp_path):
    repo = tmp_path / "keys"
    store = FileKeyStore(str(repo))
    admin.create_keyring(store, RING, coordination.NoCoordination())
    admin.rekey(store, RING, coordination.NoCoordination())
    return store


def _since(store):
    return kr.inactive_since(store.get_keyring(RING), 1)


def test_rotation_records_when_the_version_stopped_being_active(store):
    ring = store.get_keyring(RING)
    assert ring.version(2).deactivated is None
    assert ring.version(1).deactivated == ring.version(2).created
    # Persisted: a fresh store reads the same time back.
    again = FileKeyStore(store.path).get_keyring(RING)
    assert again.version(1).deactivated == ring.version(1).deactivated


def test_retire_refused_inside_the_window_with_the_time_left(store):
    coord = coordination.NoCoordination()
    with pytest.raises(admin.NotSettled) as err:
        admin.retire(store, RING, 1, coord, settle=WINDOW,
                     at=_since(store) + 1 + WINDOW - 42)
    assert err.value.left == 42
    assert "42s left" in str(err.value)
    assert store.get_keyring(RING).version(1).state is kr.KeyState.DECRYPT_ONLY
    updated = admin.retire(store, RING, 1, coord, settle=WINDOW,
                           at=_since(store) + 1 + WINDOW)
    assert updated.state is kr.KeyState.RETIRED


def test_destroy_refused_inside_the_window_with_the_time_left(store):
    coord = coordination.NoCoordination()
    since = _since(store)
    admin.retire(store, RING, 1, coord, settle=WINDOW, at=since + 1 + WINDOW)
    with pytest.raises(admin.NotSettled) as err:
        admin.destroy(store, RING, 1, coord, force=True, settle=WINDOW + 60,
                      at=since + 1 + WINDOW)
    assert err.value.left == 60
    assert "60s left" in str(err.value)
    assert store.get_keyring(RING).version(1).state is kr.KeyState.RETIRED
    result = admin.destroy(store, RING, 1, coord, force=True,
                           settle=WINDOW + 60, at=since + 1 + WINDOW + 60)
    assert result.version.state is kr.KeyState.DESTROYED


def test_reinstate_is_never_held_back(store):
    coord = coordination.NoCoordination()
    since = _since(store)
    admin.retire(store, RING, 1, coord, settle=WINDOW, at=since + 1 + WINDOW)
    updated = admin.reinstate(store, RING, 1, coord)
    assert updated.state is kr.KeyState.DECRYPT_ONLY


def test_keyring_written_before_the_time_was_recorded(store):
    # (Times are whole seconds: the window counts one more.)
    # Such a keyring has no 'deactivated': the successor's creation (the
    # rotation that demoted the version) counts instead.
    path = os.path.join(store.path, RING, "keyring.json")
    with open(path) as f:
        data = json.load(f)
    for v in data["versions"]:
        v.pop("deactivated", None)
    successor = data["versions"][1]["created"]
    data["versions"][1]["created"] = successor + 7
    with open(path, "w") as f:
        json.dump(data, f)
    ring = store.get_keyring(RING)
    assert ring.version(1).deactivated is None
    assert kr.inactive_since(ring, 1) == successor + 7
    with pytest.raises(admin.NotSettled) as err:
        admin.retire(store, RING, 1, coordination.NoCoordination(),
                     settle=WINDOW, at=successor + 1 + WINDOW)
    assert err.value.left == 7


def test_malformed_time_is_refused(store):
    path = os.path.join(store.path, RING, "keyring.json")
    with open(path) as f:
        data = json.load(f)
    data["versions"][0]["deactivated"] = "soon"
    with open(path, "w") as f:
        json.dump(data, f)
    with pytest.raises(Exception, match="malformed"):
        store.get_keyring(RING)


def test_library_callers_wait_the_default_window(store):
    """retire and destroy called without *settle* wait the window of the
    default configuration (they went through at once with settle=0)."""
    coord = coordination.NoCoordination()
    since = _since(store)
    with pytest.raises(admin.NotSettled) as err:
        admin.retire(store, RING, 1, coord, at=since + 1 + WINDOW - 42)
    assert err.value.left == 42
    admin.retire(store, RING, 1, coord, settle=0)
    with pytest.raises(admin.NotSettled) as err:
        admin.destroy(store, RING, 1, coord, force=True, at=since + 1 + WINDOW - 7)
    assert err.value.left == 7
    assert store.get_keyring(RING).version(1).state is kr.KeyState.RETIRED


def test_default_window_is_the_default_configuration():
    conf = cfg.ConfigOpts()
    sm_conf.register_opts(conf)
    conf(args=[], default_config_files=[])
    assert admin.settle_window(conf) == admin.DEFAULT_SETTLE == WINDOW


def _deactivated(store, seconds):
    path = os.path.join(store.path, RING, "keyring.json")
    with open(path) as f:
        data = json.load(f)
    data["versions"][0]["deactivated"] = seconds
    with open(path, "w") as f:
        json.dump(data, f)


@pytest.mark.parametrize("action", ["retire", "destroy"])
def test_a_time_in_the_future_is_refused_with_a_clear_error(store, action):
    """The rotating host's clock ahead of this one (or this one stepped
    back): the window cannot be counted from that time. (Before, the
    refusal only named more seconds left than the window.)"""
    coord = coordination.NoCoordination()
    since = _since(store)
    if action == "destroy":
        admin.retire(store, RING, 1, coord, settle=0)
    call = getattr(admin, action)
    kwargs = {"force": True} if action == "destroy" else {}
    with pytest.raises(admin.ClockAhead) as err:
        call(store, RING, 1, coord, settle=WINDOW, at=since - 10, **kwargs)
    assert str(err.value) == (
        "refusing to %s version 1 of keyring %r: it is recorded as no longer"
        " active since %s, 10s ahead of this host's clock; this host's clock"
        " or that of the host that rotated it is wrong, and the settle window"
        " (cache_ttl + stale_grace) counts from that time: correct the clock,"
        " then try again" % (action, RING, time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))))
    # Now: a keyring whose time is an hour ahead of this host's clock.
    _deactivated(store, kr.now() + 3600)
    with pytest.raises(admin.ClockAhead, match=r"ahead of this host's clock"):
        call(store, RING, 1, coord, **kwargs)
    # Without a window (no process caches the keyring) it does not matter.
    call(store, RING, 1, coord, settle=0, **kwargs)
