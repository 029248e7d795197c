"""The key store contract every backend implements: :class:`KeyReader`,
what the Sealer and the auditors use, and :class:`KeyStore`, which adds
what administration uses. ``tests/keystore_contract.py`` is the one test
suite of that contract, run against every store."""

import abc
import dataclasses

from sealedmeta import crypto
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import signing
from sealedmeta import verdict as sm_verdict


@dataclasses.dataclass(frozen=True)
class Leftover:
    """Something a key store holds for a keyring that no version uses, left
    by an interrupted rotation or destroy (see :meth:`KeyStore.leftovers`).
    A description only: never key material."""

    ref: str          # the store's reference to it (Barbican: the secret's uuid)
    name: str         # its name in the store (None if unknown)
    kind: str         # e.g. "pending version", "signing key", "tombstone"
    version: int      # the version number it was made for
    age: float        # seconds since it was created (None if unknown)
    action: str       # "removed", "removable", or "kept: <why>"


class KeyReader(abc.ABC):
    """What the Sealer and the auditors need of a key store: a keyring's
    description, the key of a version that may open envelopes, the active
    version's signing key. Nothing here changes the store.

    Implementations never put key material in an exception or a log line.
    """

    @abc.abstractmethod
    def get_keyring(self, name):
        """The KeyRing *name* as stored now (NoSuchKeyring if absent)."""

    @abc.abstractmethod
    def get_key(self, name, version):
        """The 32-byte key of an openable version (KeyUnavailable otherwise:
        :func:`openable_version`)."""

    def get_signing_key(self, name, version):
        """The 32-byte Ed25519 private seed of an *active* version of a
        signing keyring (KeyUnavailable otherwise). Stores that keep no
        signing keys refuse."""
        raise exceptions.KeyUnavailable(
            "%r keeps no signing keys" % (self,))

    def close(self):
        """Release sessions or handles; the default has none."""
        return None


class KeyStore(KeyReader):
    """A key store: reading (:class:`KeyReader`) and what administration
    needs -- creating keyrings, rotating, changing a version's state,
    copying keyrings between stores, cleaning up after interrupted changes.

    Implementations make every state change atomic and serialised (one
    active version at all times, even with several processes); the
    transitions themselves are decided by :mod:`sealedmeta.keyring`.
    """

    @classmethod
    @abc.abstractmethod
    def from_config(cls, conf):
        """Build the store from an oslo.config ``ConfigOpts``."""

    @abc.abstractmethod
    def describe(self):
        """Which store this is, for people (no credentials): e.g. ``file
        key store /var/lib/sealedmeta/keys``."""

    @abc.abstractmethod
    def create_keyring(self, name, signing=False):
        """Create keyring *name* with version 1 active; return the KeyRing.

        With *signing*, every version of the keyring (this one and those
        rotation adds) also gets an Ed25519 key pair: its public key in the
        description, its private key stored like the version key.
        """

    @abc.abstractmethod
    def list_keyrings(self):
        """Names of the keyrings in this store, sorted."""

    @abc.abstractmethod
    def rotate(self, name, signing=False):
        """Add a new active version; the previous active becomes decrypt-only.

        The new version has an Ed25519 key pair when the keyring signs or
        *signing* is true (a keyring becomes a signing keyring at a
        rotation, never the reverse). Returns the new KeyVersion.
        """

    @abc.abstractmethod
    def set_state(self, name, version, state, destroy_after=None):
        """Move a version to *state* ('retired', 'decrypt-only',
        'pending-destruction', 'destroyed'): what
        :func:`sealedmeta.keyring.transitioned` allows.

        *destroy_after* (epoch seconds): when a version put into pending
        destruction is due to be destroyed; required for that state, refused
        for any other. Returns the updated KeyVersion. Destroying removes
        the key material; pending destruction keeps it.
        """

    @abc.abstractmethod
    def export_keyring(self, name):
        """(KeyRing, {version number: key bytes}) for every non-destroyed version.

        Retired versions are included: a copy must keep them reinstatable.
        For moving a keyring between stores only; never log the keys.
        """

    @abc.abstractmethod
    def import_keyring(self, ring, keys, signing_keys=None):
        """Create a keyring exactly as *ring* describes it, with its *keys*.

        *keys* maps version number to key bytes for every version that is not
        destroyed. Used to move a keyring between stores, key ids unchanged.
        *signing_keys* maps version number to Ed25519 seed for every
        non-destroyed version that has a public key (and no other).
        """

    def export_signing_keys(self, ring):
        """{version number: 32-byte seed} for every non-destroyed version of
        *ring* (as :meth:`export_keyring` returned it) that has a public key.

        The parallel of export_keyring's key mapping for
        :meth:`import_keyring`'s *signing_keys*. Never log them.
        """
        if any(v.public_key is not None for v in ring.versions):
            raise exceptions.KeyStoreError(
                "%r keeps no signing keys" % (self,))
        return {}

    def finish_destroy(self, name, version):
        """Finish destroying *version*, which is already destroyed: remove
        what a destroy cut half-way left of its material (repeatable).

        Returns (the KeyVersion, True if anything was left). Stores whose
        destroy leaves nothing behind (the file store sweeps the material of
        destroyed versions on every change) have nothing to finish.
        """
        current = self.get_keyring(name).version(version)
        if current is None or current.state is not kr.KeyState.DESTROYED:
            raise exceptions.InvalidTransition(
                "version %r of keyring %r is not destroyed" % (version, name))
        return current, False

    def leftovers(self, name, remove=False, min_age=None):
        """What the store holds for keyring *name* that no version uses
        (left by interrupted rotations or destroys), as :class:`Leftover`
        records. With *remove*, those that are safe to remove and at least
        *min_age* seconds old (None: the store's own safe age) are removed.
        Stores whose changes leave nothing behind report nothing.
        """
        self.get_keyring(name)   # NoSuchKeyring as everywhere
        return []


def check_import(ring, keys, signing_keys=None):
    """Refuse an import whose keys do not match the ring's key ids, or whose
    signing keys (version number -> seed) do not match its public keys."""
    check_signing_import(ring, signing_keys or {})
    for version in ring.versions:
        key = keys.get(version.number)
        if version.state is kr.KeyState.DESTROYED:
            if key is not None:
                raise exceptions.KeyStoreError(
                    "version %d is destroyed; its key must not be imported"
                    % version.number)
            continue
        if key is None:
            raise exceptions.KeyStoreError(
                "no key given for version %d of keyring %r"
                % (version.number, ring.name))
        if crypto.key_id(crypto.check_key(key)) != version.key_id:
            raise exceptions.KeyStoreError(
                "the key given for version %d of keyring %r does not match"
                " its key id" % (version.number, ring.name))
    extra = set(keys) - {v.number for v in ring.versions}
    if extra:
        raise exceptions.KeyStoreError(
            "keys given for versions the keyring does not have: %s"
            % ", ".join(str(n) for n in sorted(extra)))


def check_signing_import(ring, signing_keys):
    """Every non-destroyed version with a public key needs exactly its
    private key; nothing else may be given."""
    for version in ring.versions:
        seed = signing_keys.get(version.number)
        if version.state is kr.KeyState.DESTROYED or version.public_key is None:
            if seed is not None:
                raise exceptions.KeyStoreError(
                    "version %d of keyring %r %s; no signing key may be"
                    " imported for it" % (
                        version.number, ring.name,
                        "is destroyed" if version.state is kr.KeyState.DESTROYED
                        else "has no public key"))
            continue
        if seed is None:
            raise exceptions.KeyStoreError(
                "no signing key given for version %d of keyring %r"
                % (version.number, ring.name))
        if signing.public_key_of(signing.check_seed(seed)) != version.public_key:
            raise exceptions.KeyStoreError(
                "the signing key given for version %d of keyring %r does not"
                " match its public key" % (version.number, ring.name))
    extra = set(signing_keys) - {v.number for v in ring.versions}
    if extra:
        raise exceptions.KeyStoreError(
            "signing keys given for versions the keyring does not have: %s"
            % ", ".join(str(n) for n in sorted(extra)))


def openable_version(ring, version):
    """The KeyVersion *version* of *ring* if it may open envelopes
    (:func:`sealedmeta.verdict.of_version`); KeyUnavailable otherwise.
    Every store's get_key applies it."""
    verdict = sm_verdict.of_version(ring, version)
    if verdict.status != sm_verdict.VALID:
        raise exceptions.KeyUnavailable(verdict.reason)
    return verdict.version


def signing_version(ring, version):
    """The KeyVersion *version* of *ring* if it may sign (the active one)."""
    current = ring.version(version)
    if current is None or current.state is not kr.KeyState.ACTIVE:
        raise exceptions.KeyUnavailable(
            "version %r of keyring %r is not active; only the active"
            " version signs" % (version, ring.name))
    return current
