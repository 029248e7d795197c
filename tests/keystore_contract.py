"""The key store contract (sealedmeta.keystores.base): one test class, run
against every store -- the file store by tests/unit/test_keystore_contract.py,
a real Barbican behind a real Keystone by
tests/functional/test_keystore_contract.py.

A store's subclass gives two fixtures: ``store``, a store of its kind, and
``name``, a keyring name no other test uses. What a store does beyond the
contract (the file store's files and modes; Barbican's secrets, access
lists and consumers) is tested next to that store.
"""

import os

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import crypto
from sealedmeta import exceptions
from sealedmeta import inspect
from sealedmeta import keyring as kr
from sealedmeta import signing
from sealedmeta.keystores import base

CTX = {"backup_id": "contract-backup"}
META = {"image_id": "contract-image"}

ACTIVE = kr.KeyState.ACTIVE
DECRYPT_ONLY = kr.KeyState.DECRYPT_ONLY
RETIRED = kr.KeyState.RETIRED
PENDING = kr.KeyState.PENDING_DESTRUCTION
DESTROYED = kr.KeyState.DESTROYED
# A destruction time (2033-05-18): any time will do, the store keeps it.
DUE = 2000000000


def states(ring):
    return [(v.number, v.state) for v in ring.versions]


class KeyStoreContract:
    """What every key store does; see KeyReader and KeyStore."""

    # -- reading: what the Sealer and the auditors use ----------------------

    def test_is_a_key_store(self, store):
        assert isinstance(store, base.KeyReader)
        assert isinstance(store, base.KeyStore)

    def test_create_gives_version_1_active(self, store, name):
        ring = store.create_keyring(name)
        assert ring.name == name and states(ring) == [(1, ACTIVE)]
        assert ring.active.public_key is None and not ring.signing
        assert store.get_keyring(name) == ring
        assert name in store.list_keyrings()
        assert store.list_keyrings() == sorted(store.list_keyrings())
        key = store.get_key(name, 1)
        assert type(key) is bytes and len(key) == crypto.KEY_SIZE
        assert crypto.key_id(key) == ring.active.key_id

    def test_create_twice_is_refused(self, store, name):
        first = store.create_keyring(name)
        with pytest.raises(exceptions.KeyringExists, match="already exists"):
            store.create_keyring(name)
        assert store.get_keyring(name) == first

    def test_an_unknown_keyring(self, store, name):
        assert name not in store.list_keyrings()
        for call in (lambda: store.get_keyring(name),
                     lambda: store.get_key(name, 1),
                     lambda: store.rotate(name),
                     lambda: store.set_state(name, 1, "retired"),
                     lambda: store.export_keyring(name),
                     lambda: store.leftovers(name),
                     lambda: Sealer(store, keyring=name).seal(META, CTX)):
            with pytest.raises(exceptions.NoSuchKeyring, match=name):
                call()

    @pytest.mark.parametrize("bad", ["", "../up", "a/b", "-dash", "x" * 65])
    def test_keyring_names_are_checked(self, store, bad):
        for call in (lambda: store.create_keyring(bad),
                     lambda: store.get_keyring(bad)):
            with pytest.raises(exceptions.InvalidMetadata,
                               match="invalid keyring name"):
                call()

    def test_only_openable_versions_give_their_key(self, store, name):
        store.create_keyring(name)
        store.rotate(name)
        with pytest.raises(exceptions.KeyUnavailable,
                           match="keyring %r has no version 3" % name):
            store.get_key(name, 3)
        store.set_state(name, 1, "retired")
        with pytest.raises(exceptions.KeyUnavailable,
                           match="version 1 of keyring %r is retired" % name):
            store.get_key(name, 1)
        store.set_state(name, 1, "destroyed")
        with pytest.raises(exceptions.KeyUnavailable,
                           match="version 1 of keyring %r is destroyed" % name):
            store.get_key(name, 1)
        assert crypto.key_id(store.get_key(name, 2)) == \
            store.get_keyring(name).active.key_id

    def test_a_sealer_over_the_store(self, store, name):
        store.create_keyring(name)
        sealer = Sealer(store, keyring=name)
        old = sealer.seal(META, CTX)
        store.rotate(name)
        sealer.refresh()
        new = sealer.seal(META, CTX)
        assert (inspect(old).key_version, inspect(new).key_version) == (1, 2)
        fresh = Sealer(store, keyring=name)
        assert fresh.open(old, CTX) == META and fresh.open(new, CTX) == META
        store.set_state(name, 1, "retired")
        with pytest.raises(exceptions.KeyUnavailable,
                           match="is retired; envelopes under it are refused"):
            Sealer(store, keyring=name).open(old, CTX)

    # -- administration -------------------------------------------------------

    def test_rotate(self, store, name):
        first = store.create_keyring(name).active
        second = store.rotate(name)
        assert (second.number, second.state) == (2, ACTIVE)
        assert second.key_id != first.key_id
        ring = store.get_keyring(name)
        assert states(ring) == [(1, DECRYPT_ONLY), (2, ACTIVE)]
        assert ring.version(1).key_id == first.key_id
        assert ring.version(2) == second
        for version in ring.versions:
            assert crypto.key_id(store.get_key(name, version.number)) == \
                version.key_id

    def test_state_changes(self, store, name):
        store.create_keyring(name)
        store.rotate(name)
        key = store.get_key(name, 1)
        assert store.set_state(name, 1, "retired").state is RETIRED
        assert store.set_state(name, 1, "decrypt-only").state is DECRYPT_ONLY
        assert store.get_key(name, 1) == key      # reinstated as it was
        store.set_state(name, 1, "retired")
        destroyed = store.set_state(name, 1, "destroyed")
        assert destroyed.state is DESTROYED
        assert destroyed.key_id == crypto.key_id(key)   # still known
        assert states(store.get_keyring(name)) == [(1, DESTROYED), (2, ACTIVE)]
        for number, state, why in ((1, "retired",
                                    "cannot go from destroyed to retired"),
                                   (2, "retired", "the active version"),
                                   (3, "retired", "has no version 3"),
                                   (2, "gone", "unknown key state")):
            with pytest.raises(exceptions.InvalidTransition, match=why):
                store.set_state(name, number, state)
        assert states(store.get_keyring(name)) == [(1, DESTROYED), (2, ACTIVE)]

    def test_pending_destruction(self, store, name):
        store.create_keyring(name)
        sealer = Sealer(store, keyring=name)
        old = sealer.seal(META, CTX)
        store.rotate(name)
        key = store.get_key(name, 1)
        store.set_state(name, 1, "retired")
        for state, due, why in (
                ("pending-destruction", None, "destruction time"),
                ("pending-destruction", "soon", "bad destruction time"),
                ("decrypt-only", DUE, "destruction time")):
            with pytest.raises(exceptions.InvalidTransition, match=why):
                store.set_state(name, 1, state, destroy_after=due)
        pending = store.set_state(name, 1, "pending-destruction",
                                  destroy_after=DUE)
        assert (pending.state, pending.destroy_after) == (PENDING, DUE)
        ring = store.get_keyring(name)
        assert ring.version(1) == pending
        assert states(ring) == [(1, PENDING), (2, ACTIVE)]
        # Refused as a retired version is, its key kept.
        with pytest.raises(exceptions.KeyUnavailable,
                           match="version 1 of keyring %r is"
                           " pending-destruction" % name):
            store.get_key(name, 1)
        with pytest.raises(exceptions.KeyUnavailable,
                           match="is pending-destruction; envelopes under it"
                           " are refused"):
            Sealer(store, keyring=name).open(old, CTX)
        assert store.export_keyring(name)[1][1] == key
        with pytest.raises(exceptions.InvalidTransition,
                           match="cannot go from pending-destruction to"
                           " retired"):
            store.set_state(name, 1, "retired")
        # Reinstated: the destruction is cancelled, its time forgotten.
        back = store.set_state(name, 1, "decrypt-only")
        assert (back.state, back.destroy_after) == (DECRYPT_ONLY, None)
        assert store.get_keyring(name).version(1) == back
        assert store.get_key(name, 1) == key
        assert Sealer(store, keyring=name).open(old, CTX) == META
        with pytest.raises(exceptions.InvalidTransition,
                           match="retire it first"):
            store.set_state(name, 1, "pending-destruction", destroy_after=DUE)
        # And destroyed from pending destruction.
        store.set_state(name, 1, "retired")
        store.set_state(name, 1, "pending-destruction", destroy_after=DUE + 1)
        assert store.get_keyring(name).version(1).destroy_after == DUE + 1
        destroyed = store.set_state(name, 1, "destroyed")
        assert (destroyed.state, destroyed.destroy_after) == (DESTROYED, None)
        assert states(store.get_keyring(name)) == [(1, DESTROYED), (2, ACTIVE)]
        assert sorted(store.export_keyring(name)[1]) == [2]
        with pytest.raises(exceptions.KeyUnavailable, match="is destroyed"):
            store.get_key(name, 1)

    def test_finish_destroy(self, store, name):
        store.create_keyring(name)
        store.rotate(name)
        with pytest.raises(exceptions.InvalidTransition,
                           match="version 1 of keyring %r is not destroyed"
                           % name):
            store.finish_destroy(name, 1)
        store.set_state(name, 1, "retired")
        store.set_state(name, 1, "destroyed")
        version, left = store.finish_destroy(name, 1)
        # A destroy that ran to its end left nothing to finish.
        assert (version.number, version.state, left) == (1, DESTROYED, False)

    def test_a_sound_keyring_has_no_leftovers(self, store, name):
        store.create_keyring(name, signing=True)
        store.rotate(name)
        store.set_state(name, 1, "retired")
        store.set_state(name, 1, "destroyed")
        assert store.leftovers(name) == []
        assert store.leftovers(name, remove=True, min_age=0) == []

    def test_a_signing_keyring(self, store, name):
        ring = store.create_keyring(name, signing=True)
        first = ring.active
        assert ring.signing and first.public_key is not None
        assert signing.public_key_of(store.get_signing_key(name, 1)) == \
            first.public_key
        second = store.rotate(name)
        assert second.public_key not in (None, first.public_key)
        # Only the active version signs.
        with pytest.raises(exceptions.KeyUnavailable, match="not active"):
            store.get_signing_key(name, 1)
        assert signing.public_key_of(store.get_signing_key(name, 2)) == \
            second.public_key
        seeds = store.export_signing_keys(store.get_keyring(name))
        assert {n: signing.public_key_of(s) for n, s in seeds.items()} == {
            1: first.public_key, 2: second.public_key}

    def test_a_plain_keyring_signs_from_a_signing_rotation_on(self, store, name):
        ring = store.create_keyring(name)
        with pytest.raises(exceptions.KeyUnavailable):
            store.get_signing_key(name, 1)
        assert store.export_signing_keys(ring) == {}
        second = store.rotate(name, signing=True)
        assert second.public_key is not None
        assert store.get_keyring(name).version(1).public_key is None
        # Once a signing keyring, always one.
        assert store.rotate(name).public_key is not None

    def test_export_and_import_keep_the_key_ids(self, store, name, tmp_path):
        source = FileKeyStore(str(tmp_path / "source"))
        source.create_keyring(name, signing=True)
        source.rotate(name)
        source.rotate(name)
        source.rotate(name)
        source.set_state(name, 1, "retired")
        source.set_state(name, 1, "destroyed")
        source.set_state(name, 2, "retired")
        source.set_state(name, 3, "retired")
        source.set_state(name, 3, "pending-destruction", destroy_after=DUE)
        ring, keys = source.export_keyring(name)
        # Retired and pending destruction kept, destroyed has none.
        assert sorted(keys) == [2, 3, 4]
        assert ring.version(3).destroy_after == DUE
        seeds = source.export_signing_keys(ring)
        sealed = Sealer(source, keyring=name).seal(META, CTX)

        assert store.import_keyring(ring, keys, seeds) == ring
        assert store.get_keyring(name) == ring
        assert Sealer(store, keyring=name).open(sealed, CTX) == META
        with pytest.raises(exceptions.KeyringExists, match="already exists"):
            store.import_keyring(ring, keys, seeds)
        # And out again, as it came in.
        assert store.export_keyring(name) == (ring, keys)
        assert store.export_signing_keys(ring) == seeds

    def test_an_import_whose_keys_do_not_match_is_refused(self, store, name,
                                                          tmp_path):
        source = FileKeyStore(str(tmp_path / "source"))
        source.create_keyring(name)
        source.rotate(name)
        ring, keys = source.export_keyring(name)
        for bad, why in (({2: keys[2]}, "no key given for version 1"),
                         ({1: keys[2], 2: keys[1]}, "does not match"),
                         ({1: keys[1], 2: keys[2], 9: os.urandom(32)},
                          "versions the keyring does not have: 9"),
                         ({1: keys[1][:31], 2: keys[2]}, "must be 32 bytes")):
            with pytest.raises(exceptions.KeyStoreError, match=why):
                store.import_keyring(ring, bad)
        assert name not in store.list_keyrings()
