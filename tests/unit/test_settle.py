"""retire / destroy wait until no running process can seal under the version.

A process keeps the keyring it read for cache_ttl (plus stale_grace when
the store fails), so after a rekey it may seal under the former active
version that long: retiring or destroying it earlier loses those backups.
The time is passed in (``at``), so nothing here sleeps.
"""

import json
import os

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import admin
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
