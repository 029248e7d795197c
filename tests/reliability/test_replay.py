"""Replay of an older envelope of the SAME backup: what is and is not caught.

An older genuine envelope of the same backup carries the same context, so
the library cannot tell it from the current one by itself. These tests pin
down the exact behaviour the threat model documents:

* not detected: an older envelope of the same backup, sealed under a key
  version that is still openable, opens (and its metadata is returned);
* detected after rotation + rewrap + retire: an envelope under a retired
  version is refused (``KeyUnavailable``; ``verify`` says ``retired-key``);
* detected when the caller binds a value only the trusted side knows: a
  generation counter kept in the Cinder database and put in the context
  turns the replay into ``ContextMismatch``.
"""

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import audit
from sealedmeta import exceptions

from tests.reliability import figures

RING = "cinder-backup"
CTX = {"backup_id": "b-replay", "volume_id": "v-replay"}
OLD = {"glance": {"billing_code": "FREE-TIER"}}
NEW = {"glance": {"billing_code": "LICENSED-OS"}}


@pytest.fixture
def sealer(tmp_path):
    store = FileKeyStore(str(tmp_path / "keys"))
    store.create_keyring(RING)
    return Sealer(store, RING, cache_ttl=0, refresh_interval=0)


def test_older_envelope_of_the_same_backup_is_not_detected(sealer):
    old = sealer.seal(OLD, CTX)
    new = sealer.seal(NEW, CTX)        # the backup's metadata, re-sealed
    assert sealer.open(new, CTX) == NEW
    # The attacker puts the old object back: authentic, same context.
    assert sealer.open(old, CTX) == OLD
    figures.record("replay of the same backup's older envelope",
                   same_key_version="accepted (not detectable by the envelope)")


def test_rotation_rewrap_retire_closes_the_window(sealer, tmp_path):
    store = sealer.store
    old = sealer.seal(OLD, CTX)
    store.rotate(RING)
    new = sealer.rewrap(old)           # what `sealedmeta rewrap` stores
    assert sealer.open(new, CTX) == OLD
    assert sealer.open(old, CTX) == OLD   # v1 decrypt-only: still accepted
    store.set_state(RING, 1, "retired")
    with pytest.raises(exceptions.KeyUnavailable):
        sealer.open(old, CTX)
    assert sealer.open(new, CTX) == OLD
    path = tmp_path / "replayed"
    path.write_bytes(old)
    report = audit.audit(store, [str(path)])
    assert [f.status for f in report.findings] == [audit.RETIRED_KEY]
    figures.record("replay of an envelope under a retired version",
                   open="KeyUnavailable", verify="retired-key")


def test_generation_from_a_trusted_database_in_the_context(sealer):
    """The fix a caller can make today: bind a counter that the attacker
    cannot change (kept in the Cinder DB) into the context."""
    database = {"b-replay": 1}          # stands for a column of the backups table

    def context():
        return dict(CTX, generation=str(database["b-replay"]))

    old = sealer.seal(OLD, context())
    database["b-replay"] += 1           # re-sealed: the DB row moves on
    new = sealer.seal(NEW, context())
    assert sealer.open(new, context()) == NEW
    with pytest.raises(exceptions.ContextMismatch):
        sealer.open(old, context())
    figures.record("replay with a DB-held generation in the context",
                   open="ContextMismatch")
