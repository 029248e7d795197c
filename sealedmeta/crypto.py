"""Suite 1: HKDF-SHA256 -> AES-256-GCM + HMAC-SHA256. Pure functions over bytes.

Only ``cryptography``'s primitives, composed as the format specification
says. The HMAC over everything before it is what commits an envelope to one
key (AES-GCM alone is not key-committing); it is checked in constant time
before anything is decrypted.
"""

import functools
import struct

from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sealedmeta import exceptions

# Suite 2 (sealedmeta.suites) is this with the suite byte 2 in the HKDF
# info, plus an Ed25519 signature over everything before it (signing.py).
KEY_SIZE = 32
_KEY_ID_INFO = b"sealedmeta key id v1"
_INFO_LABEL = b"sealedmeta envelope\x00"
# Algorithm descriptors carry no state: one instance serves every call.
_SHA256 = hashes.SHA256()

# The single message of every authentication failure.
AUTH_FAILED = "envelope failed authentication"


def check_key(key):
    if type(key) is not bytes or len(key) != KEY_SIZE:
        raise exceptions.KeyStoreError("a version key must be %d bytes" % KEY_SIZE)
    return key


def key_id(key):
    """16-byte identifier of a version key, the same in every key store."""
    mac = hmac.HMAC(check_key(key), _SHA256)
    mac.update(_KEY_ID_INFO)
    return mac.finalize()[:16]


@functools.lru_cache(maxsize=1024)
def info(format_version, suite, keyring, key_version):
    """HKDF info: names the format, suite, keyring and key version."""
    name = keyring.encode("utf-8")
    return (_INFO_LABEL + struct.pack(">BBB", format_version, suite, len(name))
            + name + struct.pack(">I", key_version))


# encrypt() and decrypt() derive (HKDF: 32 bytes of encryption key, then 32
# of MAC key) and MAC inline: they are the whole cost of a seal and an open
# but for msgpack.

def encrypt(key, salt, nonce, info_bytes, authenticated, plaintext):
    """(ciphertext with tag, mac) for the given authenticated prefix."""
    okm = HKDF(algorithm=_SHA256, length=64, salt=salt,
               info=info_bytes).derive(key)
    ciphertext = AESGCM(okm[:32]).encrypt(nonce, plaintext, authenticated)
    mac = hmac.HMAC(okm[32:], _SHA256)
    mac.update(authenticated)
    mac.update(ciphertext)
    return ciphertext, mac.finalize()


def decrypt(key, salt, nonce, info_bytes, authenticated, ciphertext, mac):
    """Plaintext, after the MAC is verified in constant time.

    Every failure is ``InvalidEnvelope(AUTH_FAILED)``.
    """
    okm = HKDF(algorithm=_SHA256, length=64, salt=salt,
               info=info_bytes).derive(key)
    check = hmac.HMAC(okm[32:], _SHA256)
    check.update(authenticated)
    check.update(ciphertext)
    try:
        check.verify(mac)  # constant time; nothing is decrypted before it
        return AESGCM(okm[:32]).decrypt(nonce, ciphertext, authenticated)
    except (InvalidSignature, InvalidTag):
        raise exceptions.InvalidEnvelope(AUTH_FAILED) from None


# -- tags: a MAC alone, for claims that must fit a short database column ----

_TAG_LABEL = b"sealedmeta tag v1\x00"
CLAIM_TAG_SIZE = 32   # a claim's tag: HMAC-SHA256


def tag_info(keyring, key_version, purpose):
    """HKDF info of a tag key: names the keyring, the version and the
    purpose, so a tag made for one purpose never checks for another and
    no tag key equals an envelope's MAC key (other label)."""
    name, what = keyring.encode("utf-8"), purpose.encode("utf-8")
    return (_TAG_LABEL + struct.pack(">B", len(name)) + name
            + struct.pack(">I", key_version) + struct.pack(">B", len(what))
            + what)


def _tag_mac(key, info_bytes, message):
    tag_key = HKDF(algorithm=_SHA256, length=32, salt=None,
                   info=info_bytes).derive(key)
    mac = hmac.HMAC(tag_key, _SHA256)
    mac.update(message)
    return mac


def tag(key, info_bytes, message):
    """HMAC-SHA256 of *message* under a key derived from the version key."""
    return _tag_mac(key, info_bytes, message).finalize()


def check_tag(key, info_bytes, message, mac):
    """Constant-time check of a tag; ``InvalidEnvelope(AUTH_FAILED)``."""
    try:
        _tag_mac(key, info_bytes, message).verify(mac)
    except InvalidSignature:
        raise exceptions.InvalidEnvelope(AUTH_FAILED) from None
