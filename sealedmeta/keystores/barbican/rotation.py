"""Where a rotation (and a create) is decided.

A rotation stores the new secret as ``pending`` before it is listed, checks
that no racing rotation took the same number, and only then makes it active
and the previous one decrypt-only. A crash at any step leaves the previous
active version active, or (after the new one was marked active) two actives
that every reader resolves the same way: the highest number wins.

The rule that keeps removing leftovers (cleanup.py) from racing with a
rotation in flight (one that holds no lock, e.g. a library caller without a
coordination backend): a rotation lists (claims) its new secret in the
container, and activates it, only while less than CLAIM_WINDOW seconds (its
own clock) have passed since it started creating it -- past that it
withdraws.
"""

import logging
import os
import random
import time

from sealedmeta import crypto
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import names
from sealedmeta import signing
from sealedmeta.keystores.barbican import layout
from sealedmeta.keystores.barbican import secret_meta
from sealedmeta.keystores.barbican import session

LOG = logging.getLogger(__name__)

_ROTATE_ATTEMPTS = 10
CLAIM_WINDOW = 600.0


class Rotation:
    """Creating keyrings, rotating, changing a version's state."""

    def create_keyring(self, name, signing=False):
        return self._create_keyring(name, signing)

    def _create_keyring(self, name, sign):
        """Create the container, then version 1 (with a signing key pair
        when *sign*).

        Racing creates are settled like racing rotations: a create goes on
        only if, once its container exists, it sees no other container of
        that name; otherwise it removes its own and looks again after a
        random delay (then finding the winner's, or none).
        """
        names.check_keyring_name(name)
        for attempt in range(_ROTATE_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0.02, 0.05 * 2 ** min(attempt, 5)))
            self._containers.pop(name, None)
            uuid, _ = self._container(name, required=False)
            if uuid is not None:
                raise exceptions.KeyringExists(
                    "keyring %r already exists in Barbican at %s"
                    % (name, self._where()))
            ref = self._write("creating keyring %r" % name, self._client.client.post,
                              "containers", json={"type": "generic",
                                                  "name": self._container_name(name),
                                                  "secret_refs": []})
            mine = session.uuid_of(ref["container_ref"])
            try:
                self._restrict("containers", mine,
                               "the container of keyring %r" % name)
            except exceptions.SealedMetaError:
                self._remove_failed_container(name, mine)
                raise
            if all(session.uuid_of(c["container_ref"]) == mine
                   for c in self._find_containers(name)):
                break
            self._write("removing a duplicate container", self._client.client.delete,
                        "containers/%s" % mine)
        else:
            raise exceptions.KeyStoreError(
                "could not create keyring %r: other creates kept racing" % name)
        self._containers[name] = mine
        key = os.urandom(crypto.KEY_SIZE)
        created = kr.now()
        seed = signing.new_seed() if sign else None
        try:
            secret = self._store_version(name, mine, 1, key, secret_meta.PENDING, created,
                                         seed)
            self._set_state(secret, name, 1, crypto.key_id(key), created,
                            kr.KeyState.ACTIVE.value)
        except exceptions.SealedMetaError:
            # Leave no keyring without a version behind.
            self._containers.pop(name, None)
            self._remove_failed_container(name, mine)
            raise
        return self.get_keyring(name)

    def _remove_failed_container(self, name, container):
        """Best effort: no keyring container without a version is left."""
        try:
            self._client.client.delete("containers/%s" % container)
        except Exception:
            LOG.warning("could not remove the container of the failed"
                        " keyring %r", name)

    def rotate(self, name, signing=False):
        return self._rotate(name, signing)

    def _rotate(self, name, sign):
        """Add a new version (pending, claimed, then active).

        Racing rotations (no coordination lock) are settled by the
        container: a rotation lists its new version as pending under number
        N, re-reads the container, and goes on only if it is the *sole*
        claimant of N; otherwise it withdraws and tries again later with a
        random delay. Of two claimants of N, the one that re-read first
        either saw the other (and withdrew) or was listed before the other
        listed, so the other sees it and withdraws: at most one claimant of
        N ever becomes active, and a version is never used before it has
        won. Concurrent winners of different numbers are resolved as
        everywhere else: the highest active version is the active one.
        """
        for attempt in range(_ROTATE_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0.02, 0.05 * 2 ** min(attempt, 5)))
            ring, raw, container = self._load(name)
            self._repair(name, ring, raw)
            number = max(n for n, *_ in raw) + 1
            key = os.urandom(crypto.KEY_SIZE)
            key_id = crypto.key_id(key)
            created = kr.now()
            seed = (signing.new_seed() if ring.signing or sign
                    else None)
            started = time.monotonic()
            secret = self._store_version(name, container, number, key, secret_meta.PENDING,
                                         created, seed, started)
            # The claim: the container alone (one request, so the window in
            # which two claimants can miss each other stays short). Any other
            # entry of this number is a rival, whatever its state.
            doc = self._read("reading keyring %r" % name, self._client.client.get,
                             "containers/%s" % container)
            rival = any(n == number and s != secret
                        for n, k, c, s in self._entries(doc))
            late = None
            if not rival:
                try:
                    self._check_claim_window(started, name, number)
                except exceptions.KeyStoreError as exc:
                    late = exc
            if rival or late:
                # Another rotation claims this number too, or this one is
                # too late to activate (see CLAIM_WINDOW): step back.
                self._unlist(container, layout.entry_name(kr.KeyVersion(
                    number, key_id, kr.KeyState.ACTIVE, created)), secret)
                self._forget_version_secret(secret)
                if late:
                    raise late
                continue
            self._set_state(secret, name, number, key_id, created,
                            kr.KeyState.ACTIVE.value)
            # Demote only older actives: a newer active (a concurrent
            # rotation that won a higher number) wins over this one.
            ring, raw_after, _ = self._load(name)
            for n, k, c, s, st in raw_after:
                if st == kr.KeyState.ACTIVE.value and n < number:
                    self._set_state(s, name, n, k, c, kr.KeyState.DECRYPT_ONLY.value,
                                    deactivated=kr.now())
            return self.get_keyring(name).version(number)
        raise exceptions.KeyStoreError(
            "could not rotate keyring %r: other rotations kept racing; use a"
            " [coordination] backend" % name)

    def _store_signing_key(self, name, number, seed):
        """Store a version's Ed25519 private key; its secret uuid."""
        return self._store_secret(
            "%s:%s:v%d:sign" % (self._prefix, name, number), "private", "ED25519",
            signing.seed_to_pem(seed),
            "storing the signing key of version %d of keyring %r" % (number, name))

    def _store_version(self, name, container, number, key, state, created,
                       seed=None, started=None):
        """Store one version secret (state as given) and list it; with
        *seed*, its signing key too. *started*: when (time.monotonic()) the
        caller began; the listing is refused past CLAIM_WINDOW from then."""
        started = time.monotonic() if started is None else started
        key_id = crypto.key_id(key)
        extra = {}
        if seed is not None:
            extra = {"public_key": signing.public_key_of(seed).hex(),
                     "signing_key": self._store_signing_key(name, number, seed)}
        try:
            secret = self._store_secret(
                "%s:%s:v%d" % (self._prefix, name, number), "symmetric", "AES", key,
                "storing version %d of keyring %r" % (number, name))
        except exceptions.SealedMetaError:
            if extra:
                self._forget_secret(extra["signing_key"])
            raise
        self._signing[secret] = extra
        try:
            self._set_state(secret, name, number, key_id, created, state)
            self._write("registering a consumer", self._client.secrets.register_consumer,
                        secret, layout.CONSUMER_SERVICE, layout.CONSUMER_TYPE, name)
            if extra:
                self._write("registering a consumer of the signing key",
                            self._client.secrets.register_consumer,
                            extra["signing_key"], layout.CONSUMER_SERVICE, layout.CONSUMER_TYPE,
                            name)
            self._check_claim_window(started, name, number)
            self._write("listing version %d in keyring %r" % (number, name),
                        self._client.client.post, "containers/%s/secrets" % container,
                        json={"name": layout.entry_name(kr.KeyVersion(number, key_id,
                                                                kr.KeyState.ACTIVE, created)),
                              "secret_ref": self._secret_ref(secret)})
        except exceptions.SealedMetaError:
            self._forget_version_secret(secret)
            raise
        return secret

    def _check_claim_window(self, started, name, number):
        """KeyStoreError once CLAIM_WINDOW has passed since *started*."""
        elapsed = time.monotonic() - started
        if elapsed > CLAIM_WINDOW:
            raise exceptions.KeyStoreError(
                "version %d of keyring %r was withdrawn: %.0fs after its secret"
                " was created it was still not active (at most %gs are allowed,"
                " so that removing stale secrets never races with it); nothing"
                " changed" % (number, name, elapsed, CLAIM_WINDOW))

    def _repair(self, name, ring, raw):
        """Write down the resolution of several actives (crash or race)."""
        by_number = {n: (k, c, s, st) for n, k, c, s, st in raw}
        for version in ring.versions:
            key_id, created, secret, stored = by_number[version.number]
            if stored == kr.KeyState.ACTIVE.value and version.state is not kr.KeyState.ACTIVE:
                self._set_state(secret, name, version.number, key_id, created,
                                version.state.value, deactivated=kr.now())

    def set_state(self, name, version, state):
        ring, raw, _ = self._load(name)
        new_ring = kr.transitioned(ring, version, state)
        target = new_ring.version(version)
        current = ring.version(version)
        if target.state is kr.KeyState.DESTROYED:
            self._destroy(name, current, raw)
        else:
            self._set_state(self._secrets[(name, version)], name, version,
                            current.key_id, current.created, target.state.value)
        return self.get_keyring(name).version(version)

    def _unlist(self, container, entry_name, secret):
        self._write("unlisting a losing version", self._client.client.delete,
                    "containers/%s/secrets" % container,
                    json={"name": entry_name, "secret_ref": self._secret_ref(secret)})

