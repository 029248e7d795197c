"""Ed25519 signatures of suite 2. Pure functions over bytes.

A signing keyring gives each key version an Ed25519 key pair next to its
symmetric key. The private half (the 32-byte seed of RFC 8032) stays in the
key store with the symmetric key; the public half is part of the keyring's
description (not secret) and is what ``sealedmeta keyring export-public``
hands to auditors. A suite-2 envelope is ``A || ct || mac || sig`` where
``sig = Ed25519-Sign(seed, A || ct || mac)``: anyone holding the public key
can check that the backup service sealed it, and cannot seal anything.
"""

import functools
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sealedmeta import exceptions

SEED_SIZE = 32
PUBLIC_KEY_SIZE = 32
SIGNATURE_SIZE = 64
PUBLIC_KEY_ID_SIZE = 16
_PUBLIC_KEY_ID_LABEL = b"sealedmeta signing key id v1"
_RAW = serialization.Encoding.Raw
_RAW_PUBLIC = serialization.PublicFormat.Raw


def check_seed(seed):
    if type(seed) is not bytes or len(seed) != SEED_SIZE:
        raise exceptions.KeyStoreError(
            "a signing key must be %d bytes" % SEED_SIZE)
    return seed


def check_public_key(public_key):
    if type(public_key) is not bytes or len(public_key) != PUBLIC_KEY_SIZE:
        raise exceptions.KeyStoreError(
            "a public key must be %d bytes" % PUBLIC_KEY_SIZE)
    return public_key


def new_seed():
    """A fresh private signing key (32 raw bytes)."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(_RAW, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def private_key(seed):
    """The ``cryptography`` private key object of a 32-byte seed."""
    return ed25519.Ed25519PrivateKey.from_private_bytes(check_seed(seed))


def public_key_of(seed):
    """The 32 raw bytes of the public key of *seed*."""
    return private_key(seed).public_key().public_bytes(_RAW, _RAW_PUBLIC)


def public_key_id(public_key):
    """``SHA-256("sealedmeta signing key id v1" || public_key)[:16]``."""
    return hashlib.sha256(_PUBLIC_KEY_ID_LABEL + check_public_key(
        public_key)).digest()[:PUBLIC_KEY_ID_SIZE]


def seed_to_pkcs8(seed):
    """DER PKCS#8 of a seed (how Barbican stores a private key)."""
    return private_key(seed).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def seed_to_pem(seed):
    """PEM PKCS#8 of a seed: what Barbican keeps of a private secret (castellan
    hands out DER, converted from it)."""
    return private_key(seed).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


def seed_from_pkcs8(der):
    """The seed of a DER PKCS#8 Ed25519 private key; KeyStoreError otherwise."""
    try:
        key = serialization.load_der_private_key(bytes(der), password=None)
    except (TypeError, ValueError):
        raise exceptions.KeyStoreError(
            "stored signing key is not a PKCS#8 private key") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise exceptions.KeyStoreError("stored signing key is not Ed25519")
    return key.private_bytes(_RAW, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())


def sign(key, data):
    """64-byte Ed25519 signature of *data* with a private key object."""
    return key.sign(data)


@functools.lru_cache(maxsize=256)
def public_key_object(public_key):
    """The ``cryptography`` public key object of 32 raw bytes (kept: a
    process verifies under a few keys, many times each)."""
    return ed25519.Ed25519PublicKey.from_public_bytes(
        check_public_key(public_key))


def verify(public_key, signature, data):
    """True when *signature* is a valid Ed25519 signature of *data* under
    *public_key* (32 raw bytes). The one place signatures are checked."""
    if type(signature) is not bytes or len(signature) != SIGNATURE_SIZE:
        return False
    try:
        public_key_object(public_key).verify(signature, data)
    except InvalidSignature:
        return False
    return True
