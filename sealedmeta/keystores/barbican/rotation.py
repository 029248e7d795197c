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
from sealedmeta.keystores.barbican.session import uuid_of

_ROTATE_ATTEMPTS = 10
CLAIM_WINDOW = 600.0


class Rotation:
    """Creating keyrings, rotating, changing a version's state."""

    def __init__(self, session, access, layout, meta, reader, cleanup):
        self.session = session
        self.access = access
        self.layout = layout
        self.meta = meta
        self.reader = reader
        self.cleanup = cleanup

    def create_keyring(self, name, sign=False):
        """Create the container, then version 1 (with a signing key pair
        when *sign*).

        Racing creates are settled like racing rotations: a create goes on
        only if, once its container exists, it sees no other container of
        that name; otherwise it removes its own and looks again after a
        random delay (then finding the winner's, or none). A container
        with a version is a keyring that exists. One without any may be
        another create's, about to withdraw (so that none of the racers
        won yet) or to list its version 1: it is looked at again after a
        delay, and only a container still without a version at the last
        attempt is taken for an existing keyring.
        """
        names.check_keyring_name(name)
        session = self.session
        for attempt in range(_ROTATE_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0.02, 0.05 * 2 ** min(attempt, 5)))
            self.layout.containers.pop(name, None)
            found = self.layout.find_containers(name)
            if found and (attempt == _ROTATE_ATTEMPTS - 1 or any(
                    layout.entries(doc) for doc in found)):
                raise exceptions.KeyringExists(
                    "keyring %r already exists in Barbican at %s"
                    % (name, session.where()))
            if found:
                continue
            mine = self.layout.new_container(name)
            if all(uuid_of(c["container_ref"]) == mine
                   for c in self.layout.find_containers(name)):
                break
            session.write("removing a duplicate container",
                          session.client.client.delete, "containers/%s" % mine)
        else:
            raise exceptions.KeyStoreError(
                "could not create keyring %r: other creates kept racing" % name)
        self.layout.containers[name] = mine
        key = os.urandom(crypto.KEY_SIZE)
        created = kr.now()
        seed = signing.new_seed() if sign else None
        try:
            secret = self.store_version(name, mine, 1, key, secret_meta.PENDING,
                                        created, seed)
            self.meta.set_state(secret, name, 1, crypto.key_id(key), created,
                                kr.KeyState.ACTIVE.value)
        except exceptions.SealedMetaError:
            # Leave no keyring without a version behind.
            self.layout.containers.pop(name, None)
            self.layout.remove_container(name, mine)
            raise
        return self.reader.get_keyring(name)

    def rotate(self, name, sign=False):
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
            ring, raw, container = self.reader.load(name)
            self._repair(name, ring, raw)
            number = max(n for n, *_ in raw) + 1
            key = os.urandom(crypto.KEY_SIZE)
            key_id = crypto.key_id(key)
            created = kr.now()
            seed = (signing.new_seed() if ring.signing or sign
                    else None)
            started = time.monotonic()
            secret = self.store_version(name, container, number, key,
                                        secret_meta.PENDING, created, seed, started)
            # The claim: the container alone (one request, so the window in
            # which two claimants can miss each other stays short). Any other
            # entry of this number is a rival, whatever its state.
            doc = self.session.read("reading keyring %r" % name,
                                    self.session.client.client.get,
                                    "containers/%s" % container)
            rival = any(n == number and s != secret
                        for n, k, c, s in layout.entries(doc))
            late = None
            if not rival:
                try:
                    self._check_claim_window(started, name, number)
                except exceptions.KeyStoreError as exc:
                    late = exc
            if rival or late:
                # Another rotation claims this number too, or this one is
                # too late to activate (see CLAIM_WINDOW): step back.
                self.layout.unlist_entry(
                    container, kr.KeyVersion(number, key_id, kr.KeyState.ACTIVE,
                                             created),
                    secret, "unlisting a losing version")
                self.cleanup.forget_version_secret(secret)
                if late:
                    raise late
                continue
            self.meta.set_state(secret, name, number, key_id, created,
                                kr.KeyState.ACTIVE.value)
            # Demote only older actives: a newer active (a concurrent
            # rotation that won a higher number) wins over this one.
            ring, raw_after, _ = self.reader.load(name)
            for n, k, c, s, st in raw_after:
                if st == kr.KeyState.ACTIVE.value and n < number:
                    self.meta.set_state(s, name, n, k, c,
                                        kr.KeyState.DECRYPT_ONLY.value,
                                        deactivated=kr.now())
            return self.reader.get_keyring(name).version(number)
        raise exceptions.KeyStoreError(
            "could not rotate keyring %r: other rotations kept racing; use a"
            " [coordination] backend" % name)

    def _store_signing_key(self, name, number, seed):
        """Store a version's Ed25519 private key; its secret uuid."""
        return self.access.store_secret(
            self.layout.secret_name(name, number, ":sign"), "private", "ED25519",
            signing.seed_to_pem(seed),
            "storing the signing key of version %d of keyring %r" % (number, name))

    def store_version(self, name, container, number, key, state, created,
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
        session = self.session
        try:
            secret = self.access.store_secret(
                self.layout.secret_name(name, number), "symmetric", "AES", key,
                "storing version %d of keyring %r" % (number, name))
        except exceptions.SealedMetaError:
            if extra:
                session.forget_secret(extra["signing_key"])
            raise
        self.meta.kept[secret] = extra
        try:
            self.meta.set_state(secret, name, number, key_id, created, state)
            session.write("registering a consumer",
                          session.client.secrets.register_consumer, secret,
                          layout.CONSUMER_SERVICE, layout.CONSUMER_TYPE, name)
            if extra:
                session.write("registering a consumer of the signing key",
                              session.client.secrets.register_consumer,
                              extra["signing_key"], layout.CONSUMER_SERVICE,
                              layout.CONSUMER_TYPE, name)
            self._check_claim_window(started, name, number)
            self.layout.list_entry(
                container, kr.KeyVersion(number, key_id, kr.KeyState.ACTIVE,
                                         created),
                secret, "listing version %d in keyring %r" % (number, name))
        except exceptions.SealedMetaError:
            self.cleanup.forget_version_secret(secret)
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
                self.meta.set_state(secret, name, version.number, key_id, created,
                                    version.state.value, deactivated=kr.now())

    def set_state(self, name, version, state, destroy_after=None):
        ring, raw, _ = self.reader.load(name)
        new_ring = kr.transitioned(ring, version, state, destroy_after)
        target = new_ring.version(version)
        current = ring.version(version)
        if target.state is kr.KeyState.DESTROYED:
            self.cleanup.destroy(name, current, raw)
        else:
            self.meta.set_state(self.reader.secrets[(name, version)], name,
                                version, current.key_id, current.created,
                                target.state.value,
                                destroy_after=target.destroy_after)
        return self.reader.get_keyring(name).version(version)

