"""Sealer: seal, open and rewrap metadata under a keyring of a key store.

One Sealer per process and keyring is the intended use: it caches the
keyring's description for ``cache_ttl`` seconds and the keys it has used, so
sealing makes no key-store request after warm-up. An envelope naming a key id
the cache does not know triggers one refresh (at most one per
``refresh_interval``) before :class:`KeyUnavailable`, so an agent opens
envelopes sealed after another agent rotated the keyring.

Signing keyrings: when the active version has a public key the Sealer seals
with suite 2 and signs each envelope with the version's Ed25519 private key
(one signature per seal; the key is cached like the symmetric one). For a
version with a public key, open, verify and rewrap require suite 2 and a
valid signature as well as the MAC: a leaked symmetric key alone then cannot
make an envelope a key holder accepts, and a key holder and an auditor with
only the public keys (``sealedmeta verify --public-keys``) give one answer:
:func:`sealedmeta.verdict.judge` decides for both.
Envelopes of versions without a key pair (a keyring made before it became a
signing keyring with ``rekey --signing``) are authenticated by the MAC alone,
as they always were.
"""

import logging
import os
import threading
import time

from sealedmeta import crypto
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import keystores
from sealedmeta import names
from sealedmeta import signing
from sealedmeta import suites
from sealedmeta import verdict as sm_verdict

LOG = logging.getLogger(__name__)


class Sealer:
    """Seal, open, verify and rewrap under keyring *keyring* of *store*,
    any :class:`~sealedmeta.keystores.base.KeyReader`: the Sealer only
    reads from it."""

    def __init__(self, store, keyring="cinder-backup", cache_ttl=300,
                 refresh_interval=2.0,
                 max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                 clock=time.monotonic, stale_grace=0):
        self.store = store
        self.keyring = names.check_keyring_name(keyring)
        self.cache_ttl = cache_ttl
        self.refresh_interval = refresh_interval
        self.stale_grace = stale_grace
        self._failed_at = None  # when reading the keyring last failed
        self.max_envelope_size = max_envelope_size
        self._clock = clock
        self._lock = threading.RLock()
        self._ring = None
        self._loaded_at = None
        self._last_miss_refresh = None
        self._keys = {}  # key id -> key bytes, openable versions only
        self._signers = {}  # key id -> Ed25519 private key object (active)
        # What a seal under the ring's active version needs, made once per
        # ring read: (ring, version, key, suite, HKDF info).
        self._sealing = (None,)

    @classmethod
    def from_config(cls, conf, store=None, keyring=None):
        """A Sealer configured by the ``[sealedmeta]`` group of *conf*."""
        group = conf.sealedmeta
        return cls(store if store is not None else keystores.load(conf),
                   keyring=keyring or group.keyring,
                   cache_ttl=group.cache_ttl,
                   refresh_interval=group.refresh_interval,
                   max_envelope_size=group.max_envelope_size,
                   stale_grace=group.stale_grace)

    def __repr__(self):
        return "Sealer(%r, keyring=%r)" % (self.store, self.keyring)

    # -- keyring cache ----------------------------------------------------

    def refresh(self):
        """Read the keyring from the store now; returns it."""
        with self._lock:
            ring = self.store.get_keyring(self.keyring)
            openable = {v.key_id for v in ring.versions if v.state in kr.OPENABLE}
            self._keys = {k: v for k, v in self._keys.items() if k in openable}
            active = ring.active.key_id
            self._signers = {k: v for k, v in self._signers.items()
                             if k == active}
            self._ring, self._loaded_at = ring, self._clock()
            self._failed_at = None
            return ring

    def _current(self):
        ring = self._ring
        if ring is None or self._clock() - self._loaded_at >= self.cache_ttl:
            ring = self._refresh_or_stale()
        return ring

    def _refresh_or_stale(self):
        """A fresh read of the keyring; or, while the key store cannot be
        read and for at most ``stale_grace`` seconds past ``cache_ttl``,
        the keyring read last (with a warning). A keyring that no longer
        exists is never served stale."""
        with self._lock:
            ring, now = self._ring, self._clock()
            if ring is not None:
                age = now - self._loaded_at
                if age < self.cache_ttl:
                    return ring  # another thread read it meanwhile
                usable = age < self.cache_ttl + self.stale_grace
                if (usable and self._failed_at is not None
                        and now - self._failed_at < self.refresh_interval):
                    # The store failed a moment ago: do not make every seal
                    # wait on it again.
                    return ring
            try:
                return self.refresh()
            except exceptions.NoSuchKeyring:
                raise
            except exceptions.KeyStoreError as exc:
                if ring is None or not usable:
                    raise
                # When the attempt ended (it may have waited on timeouts):
                # callers queued on the lock meanwhile are served the copy.
                self._failed_at = self._clock()
                LOG.warning(
                    "cannot read keyring %s from the key store (%s); going on"
                    " with the copy read %.0f s ago, for at most %.0f s more"
                    " (stale_grace)", self.keyring, exc, age,
                    self.cache_ttl + self.stale_grace - age)
                return ring

    def _refresh_on_miss(self):
        with self._lock:
            now = self._clock()
            if (self._last_miss_refresh is not None
                    and now - self._last_miss_refresh < self.refresh_interval):
                return None
            self._last_miss_refresh = now
            return self.refresh()

    def _key(self, version):
        key = self._keys.get(version.key_id)
        if key is None:
            with self._lock:
                key = self.store.get_key(self.keyring, version.number)
                if crypto.key_id(key) != version.key_id:
                    raise exceptions.KeyStoreError(
                        "key store returned a key that does not match version"
                        " %d of keyring %r" % (version.number, self.keyring))
                self._keys[version.key_id] = key
        return key

    def _signer(self, version):
        signer = self._signers.get(version.key_id)
        if signer is None:
            with self._lock:
                seed = self.store.get_signing_key(self.keyring, version.number)
                if signing.public_key_of(seed) != version.public_key:
                    raise exceptions.KeyStoreError(
                        "key store returned a signing key that does not match"
                        " version %d of keyring %r"
                        % (version.number, self.keyring))
                signer = self._signers[version.key_id] = signing.private_key(seed)
        return signer

    def _judge(self, header, signature, raw):
        """``(verdict, refreshed)``: the verdict on an envelope's header
        under this sealer's keyring, read again (at most once per
        ``refresh_interval``) when the cached copy does not have the
        version the header names or cannot open with it."""
        verdict = sm_verdict.judge(self._current(), header, signature, raw)
        if verdict.status in _MISSES and header.keyring == self.keyring:
            ring = self._refresh_on_miss()
            if ring is not None:
                return sm_verdict.judge(ring, header, signature, raw), True
        return verdict, False

    # -- sealing ----------------------------------------------------------

    def _sealing_state(self):
        ring = self._current()
        state = self._sealing
        if state[0] is not ring:
            version = ring.active
            suite = suites.for_version(version)
            state = self._sealing = (
                ring, version, self._key(version), suite,
                crypto.info(envelope.FORMAT_VERSION, suite.id, self.keyring,
                            version.number))
        return state

    def _seal_payload(self, payload, context):
        """An envelope of the encoded *payload* under the active version;
        *context* is checked and sorted by key."""
        _, version, key, suite, info = self._sealing_state()
        # One read of the system CSPRNG for both (fresh per envelope).
        random = os.urandom(envelope.SALT_SIZE + envelope.NONCE_SIZE)
        salt = random[:envelope.SALT_SIZE]
        nonce = random[envelope.SALT_SIZE:]
        prefix = envelope.encode_prefix(envelope.encode_header_fields(
            envelope.FORMAT_VERSION, suite.id, self.keyring, version.number,
            version.key_id, context, kr.now(), salt, nonce))
        ciphertext, mac = crypto.encrypt(key, salt, nonce, info, prefix, payload)
        sealed = b"".join((prefix, ciphertext, mac))  # envelope.assemble
        if suite.signed:
            sealed += signing.sign(self._signer(version), sealed)
        if len(sealed) > self.max_envelope_size:
            raise exceptions.InvalidMetadata(
                "sealed metadata would be %d bytes, over the %d byte limit"
                % (len(sealed), self.max_envelope_size))
        return sealed

    def seal(self, metadata, context):
        """Envelope bytes of *metadata* bound to *context* (str -> str)."""
        context = envelope.check_context(context)
        envelope.check_metadata(metadata)
        return self._seal_payload(envelope.encode_payload(metadata), context)

    # -- opening ----------------------------------------------------------

    def _authenticate(self, data):
        """``(raw, header, payload)``: the envelope's bytes, its header and
        the plaintext, once :func:`sealedmeta.verdict.judge` lets the
        version it names open it and the MAC and the AEAD tag are
        verified."""
        raw = envelope.load(data, self.max_envelope_size)
        # split_fields, not parse: no ParsedEnvelope to build on every open.
        fields, authenticated, ciphertext, mac, signature = (
            envelope.split_fields(raw, self.max_envelope_size))
        header = envelope.header_of(fields)
        verdict, refreshed = self._judge(header, signature, raw)
        if verdict.status != sm_verdict.VALID:
            raise verdict.error(hint="" if refreshed or (
                header.keyring != self.keyring) else (
                "; the keyring was read less than %ss ago, try again later"
                % self.refresh_interval))
        return raw, header, self._decrypt(header, authenticated, ciphertext,
                                          mac, verdict.version)

    def unseal(self, parsed, version):
        """The plaintext payload of *parsed* (an
        :class:`~sealedmeta.envelope.ParsedEnvelope`) under *version*, which
        :func:`sealedmeta.verdict.judge` found may open it: the MAC is
        checked before anything is decrypted. For a caller that judged the
        envelope itself (the auditor); every failure is the one
        authentication error."""
        return self._decrypt(parsed.header, parsed.authenticated,
                             parsed.ciphertext, parsed.mac, version)

    def _decrypt(self, header, authenticated, ciphertext, mac, version):
        info = crypto.info(header.format_version, header.suite,
                           header.keyring, header.key_version)
        return crypto.decrypt(self._key(version), header.salt, header.nonce,
                              info, authenticated, ciphertext, mac)

    def verify(self, data, context=None):
        """The authenticated header of *data*; checks *context* when given."""
        _, header, payload = self._authenticate(data)
        if context is not None:
            _check_context(header.context, envelope.check_context(context))
        envelope.decode_payload(payload)
        return header

    def open(self, data, context):
        """The metadata sealed in *data* (bytes or armour), for *context*."""
        _, header, payload = self._authenticate(data)
        if header.context != context:
            # The header's context is valid: only a differing one is checked,
            # for a clear error about the caller's own argument.
            _check_context(header.context, envelope.check_context(context))
        return envelope.decode_payload(payload)

    def rewrap(self, data):
        """Re-seal *data* under the active version, same context.

        Returns the input unchanged when it already is under the active
        version. The plaintext never leaves the library.
        """
        raw, header, payload = self._authenticate(data)
        envelope.decode_payload(payload)
        if header.key_id == self._sealing_state()[1].key_id:
            return raw
        # The context as read: checked, and sorted (canonical header).
        return self._seal_payload(payload, dict(header.context))

    # -- tags -------------------------------------------------------------

    def tag(self, purpose, message):
        """``(version number, 32-byte MAC)`` of *message* (bytes) under the
        active version, for *purpose*: a claim short enough for a database
        column, where an envelope would not fit. Authenticates, hides
        nothing; binds keyring, version and purpose."""
        _, version, key, _, _ = self._sealing_state()
        return version.number, crypto.tag(
            key, crypto.tag_info(self.keyring, version.number, purpose),
            message)

    def check_tag(self, purpose, message, key_version, mac):
        """Check a :meth:`tag`. ``InvalidEnvelope`` when it does not match,
        ``KeyUnavailable`` when its version is no longer openable,
        ``UnknownKey`` when the keyring has no such version."""
        if type(mac) is not bytes or len(mac) != crypto.CLAIM_TAG_SIZE:
            raise exceptions.InvalidEnvelope(crypto.AUTH_FAILED)
        verdict = sm_verdict.of_version(self._current(), key_version)
        if verdict.status != sm_verdict.VALID:
            ring = self._refresh_on_miss()
            if ring is not None:
                verdict = sm_verdict.of_version(ring, key_version)
        if verdict.status != sm_verdict.VALID:
            raise verdict.error(refused="claims")
        version = verdict.version
        crypto.check_tag(
            self._key(version),
            crypto.tag_info(self.keyring, version.number, purpose), message,
            mac)
        return version.number


# Verdicts that a fresh read of the keyring may change.
_MISSES = (sm_verdict.UNKNOWN_KEY, sm_verdict.RETIRED_KEY,
           sm_verdict.DESTROYED_KEY)


def _check_context(context, expected):
    # Contexts are in clear in the header and not secret: plain equality.
    if context != expected:
        differing = sorted(
            k for k in set(context) | set(expected)
            if context.get(k) != expected.get(k))
        raise exceptions.ContextMismatch(
            "envelope is authentic but was sealed for another context"
            " (differs in: %s)" % ", ".join(differing))
