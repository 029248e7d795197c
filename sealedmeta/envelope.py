"""Envelope format version 1: encoding, strict parsing, limits and armour.

This module knows the byte layout only. It performs no cryptography and no
I/O: the sealer hands it the salt, nonce, ciphertext and MAC to place, and
gets back the exact bytes that were authenticated. ``docs/source/format.rst``
is the specification this code follows.

Layout::

    magic "SMETA" | format 0x01 | header length (uint16 BE) | header | ciphertext | mac (32)
    [ | signature (64), suite 2 only ]

The header is a canonical msgpack array, see :class:`Header`. There is one
way to read an envelope, :func:`parse`, and one way to read a payload,
:func:`decode_payload`: a second path would be a second attack surface that
every change of the format must keep in step.
"""

import base64
import binascii
import collections.abc
import dataclasses
import re
import types

import msgpack

from sealedmeta import exceptions
from sealedmeta import names
from sealedmeta import suites

MAGIC = b"SMETA"
FORMAT_VERSION = 1
_FIXED = len(MAGIC) + 1 + 2  # magic, format byte, header length
MAC_SIZE = 32
SIGNATURE_SIZE = 64
GCM_TAG_SIZE = 16   # the AES-GCM tag at the end of the ciphertext
SALT_SIZE = 32
NONCE_SIZE = 12
KEY_ID_SIZE = names.KEY_ID_SIZE

# Limits. Everything the parser reads is bounded by one of these.
DEFAULT_MAX_ENVELOPE_SIZE = 1024 * 1024
MAX_HEADER_SIZE = 16 * 1024
MAX_KEYRING_NAME = names.MAX_KEYRING_NAME
MAX_CONTEXT_ITEMS = 32
MAX_CONTEXT_KEY = 64
MAX_CONTEXT_VALUE = 1024
MAX_DEPTH = 32
MAX_KEY_VERSION = names.MAX_KEY_VERSION
MAX_CREATED = names.MAX_TIME
HEADER_FIELDS = 9

ARMOR_PREFIX = "sealedmeta:"
_ARMOR_PREFIX_BYTES = ARMOR_PREFIX.encode("ascii")
_B64URL = re.compile(r"[A-Za-z0-9_-]*\Z")
_CONTEXT_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
_SCALARS = frozenset((str, bytes, int, float, bool, type(None)))
_PREFIX = MAGIC + bytes((FORMAT_VERSION,))


@dataclasses.dataclass(frozen=True)
class Header:
    """The clear, authenticated header of an envelope.

    Returned by :func:`sealedmeta.inspect` *without authentication*: nothing
    in it may be trusted until the envelope has been opened with its key.
    """

    format_version: int
    suite: int
    keyring: str
    key_version: int
    key_id: bytes
    context: types.MappingProxyType
    created: int
    salt: bytes
    nonce: bytes

    def as_dict(self):
        """A JSON-friendly view (binary fields in hex)."""
        return {
            "format_version": self.format_version,
            "suite": self.suite,
            "keyring": self.keyring,
            "key_version": self.key_version,
            "key_id": self.key_id.hex(),
            "context": dict(self.context),
            "created": self.created,
            "salt": self.salt.hex(),
            "nonce": self.nonce.hex(),
        }


@dataclasses.dataclass(frozen=True)
class ParsedEnvelope:
    header: Header
    authenticated: bytes  # magic .. end of header: the AEAD's associated data
    ciphertext: bytes     # AEAD output, tag included
    mac: bytes
    signature: bytes = None  # suite 2: Ed25519 over everything before it


def _malformed(why):
    return exceptions.MalformedEnvelope("malformed envelope: %s" % why)


def _no_ext(code, data):
    raise ValueError("msgpack extension types are not allowed")


# -- names and contexts -----------------------------------------------------

def check_context(context):
    """Validate a context mapping; return it as a plain dict sorted by key
    (*context* itself when it already is one)."""
    # Mappings only: dict() would also turn ["ab"] into {"a": "b"}.
    if type(context) is not dict:
        if not isinstance(context, collections.abc.Mapping):
            raise exceptions.InvalidMetadata(
                "context must be a mapping of str to str, not %s"
                % type(context).__name__)
        context = dict(context)
    if _check_context_items(context):
        return context
    return dict(sorted(context.items()))


def _check_context_items(context):
    """Raise InvalidMetadata unless the dict *context* is a valid context;
    return whether its keys are in sorted order."""
    if len(context) > MAX_CONTEXT_ITEMS:
        raise exceptions.InvalidMetadata(
            "context has %d items; at most %d are allowed"
            % (len(context), MAX_CONTEXT_ITEMS))
    in_order = True
    previous = ""
    for key, value in context.items():
        if type(key) is not str or not _CONTEXT_KEY.match(key):
            raise exceptions.InvalidMetadata(
                "invalid context key %r: 1-64 characters of A-Z a-z 0-9 _ . : -"
                % (key,))
        if type(value) is not str:
            raise exceptions.InvalidMetadata(
                "context value for %r must be a str, not %s"
                % (key, type(value).__name__))
        try:
            # ASCII (ids, the usual case): one byte a character.
            size = len(value) if value.isascii() else len(
                value.encode("utf-8"))
        except UnicodeEncodeError:
            raise exceptions.InvalidMetadata(
                "context value for %r is not valid text" % (key,)) from None
        if size > MAX_CONTEXT_VALUE:
            raise exceptions.InvalidMetadata(
                "context value for %r is over %d bytes"
                % (key, MAX_CONTEXT_VALUE))
        if key < previous:
            in_order = False
        previous = key
    return in_order


# -- encoding ---------------------------------------------------------------

def encode_header_fields(format_version, suite, keyring, key_version, key_id,
                         context, created, salt, nonce):
    """Canonical header bytes: msgpack array, shortest encodings, sorted context.

    *context* must already be sorted by key (check_context returns it so).
    """
    return msgpack.packb([format_version, suite, keyring, key_version, key_id,
                          context, created, salt, nonce], use_bin_type=True)


def encode_header(header):
    """Canonical bytes of a :class:`Header`."""
    return encode_header_fields(
        header.format_version, header.suite, header.keyring,
        header.key_version, header.key_id, dict(sorted(header.context.items())),
        header.created, header.salt, header.nonce)


def encode_prefix(header_bytes):
    """The authenticated prefix: magic, format, header length, header."""
    if len(header_bytes) > MAX_HEADER_SIZE:
        raise exceptions.InvalidMetadata(
            "header of %d bytes is over the %d byte limit (context too large)"
            % (len(header_bytes), MAX_HEADER_SIZE))
    return _PREFIX + len(header_bytes).to_bytes(2, "big") + header_bytes


def _check_value(obj, depth):
    # Recursive on purpose: depth is capped at MAX_DEPTH.
    if depth > MAX_DEPTH:
        raise exceptions.InvalidMetadata(
            "metadata is nested deeper than %d levels" % MAX_DEPTH)
    if type(obj) is dict:
        for key, value in obj.items():
            if type(key) is not str:
                raise exceptions.InvalidMetadata(
                    "metadata map keys must be str, found %s"
                    % type(key).__name__)
            if type(value) not in _SCALARS:
                _check_value(value, depth + 1)
    elif type(obj) is list:
        for value in obj:
            if type(value) not in _SCALARS:
                _check_value(value, depth + 1)
    else:
        raise exceptions.InvalidMetadata(
            "metadata values must be str, bytes, int, float, bool, None,"
            " list or dict; found %s" % type(obj).__name__)


def check_metadata(metadata):
    """Refuse anything but the supported metadata types, at seal time."""
    if type(metadata) is not dict:
        raise exceptions.InvalidMetadata(
            "metadata must be a dict, not %s" % type(metadata).__name__)
    _check_value(metadata, 1)


def encode_payload(metadata):
    """msgpack bytes of already checked metadata."""
    try:
        return msgpack.packb(metadata, use_bin_type=True, strict_types=True)
    except (OverflowError, ValueError, TypeError) as exc:
        raise exceptions.InvalidMetadata(
            "metadata cannot be encoded: %s" % exc) from None


# -- parsing ----------------------------------------------------------------

def _check_header(fields, header_bytes):
    """Raise MalformedEnvelope unless *fields*, decoded from *header_bytes*,
    pass the type and range checks and the canonical re-encoding check."""
    if type(fields) is not list or len(fields) != HEADER_FIELDS:
        raise _malformed("header is not an array of %d fields" % HEADER_FIELDS)
    (fmt, suite, keyring, version, key_id, context, created, salt,
     nonce) = fields
    if type(fmt) is not int or fmt != FORMAT_VERSION:
        raise _malformed("header format version does not match the prefix")
    if type(suite) is not int or not 0 <= suite <= 255:
        raise _malformed("suite is not an integer 0-255")
    if type(keyring) is not str or not names.KEYRING_NAME.match(keyring):
        raise _malformed("keyring name is not valid")
    if type(version) is not int or not 1 <= version <= MAX_KEY_VERSION:
        raise _malformed("key version is not an integer 1-%d" % MAX_KEY_VERSION)
    if type(key_id) is not bytes or len(key_id) != KEY_ID_SIZE:
        raise _malformed("key id is not %d bytes" % KEY_ID_SIZE)
    if type(context) is not dict:
        raise _malformed("context is not a map")
    try:
        in_order = _check_context_items(context)
    except exceptions.InvalidMetadata as exc:
        raise _malformed(str(exc)) from None
    if type(created) is not int or not 0 <= created <= MAX_CREATED:
        raise _malformed("creation time is not a non-negative integer")
    if type(salt) is not bytes or len(salt) != SALT_SIZE:
        raise _malformed("salt is not %d bytes" % SALT_SIZE)
    if type(nonce) is not bytes or len(nonce) != NONCE_SIZE:
        raise _malformed("nonce is not %d bytes" % NONCE_SIZE)
    # Canonical form: the context sorted by key, and the fields, re-encoded
    # in msgpack's shortest form, give back the exact bytes read; so one
    # header has one encoding. A duplicate context key collapses in the
    # dict, so it fails here too.
    if not in_order or msgpack.packb(fields, use_bin_type=True) != header_bytes:
        raise _malformed("header is not in canonical encoding")


def split_fields(data, max_size=DEFAULT_MAX_ENVELOPE_SIZE):
    """``(fields, authenticated, ciphertext, mac, signature)`` of raw
    envelope bytes: the one parser of the format (:func:`parse` wraps it).

    *fields* is the checked header as the list of its nine values in
    header order (the context a plain dict); :func:`header_of` makes the
    :class:`Header`. For suite 2 the last 96 bytes are the MAC and the
    signature; for every other suite the last 32 are the MAC and
    *signature* is None. Strict and bounded; raises only
    :class:`InvalidEnvelope` subclasses. Nothing returned is authenticated.
    """
    if type(data) is not bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise _malformed("expected bytes, got %s" % type(data).__name__)
        data = bytes(data)
    size = len(data)
    if size > max_size:
        raise exceptions.EnvelopeTooLarge(
            "envelope of %d bytes is over the %d byte limit"
            % (size, max_size))
    if not data.startswith(MAGIC):
        raise _malformed("not a sealedmeta envelope (bad magic)")
    if size < len(MAGIC) + 1:
        raise _malformed("truncated before the format version")
    fmt = data[len(MAGIC)]
    if fmt != FORMAT_VERSION:
        raise exceptions.UnsupportedFormat(
            "unsupported envelope format version %d (this library reads %d)"
            % (fmt, FORMAT_VERSION))
    if size < _FIXED:
        raise _malformed("truncated before the header length")
    header_len = (data[_FIXED - 2] << 8) | data[_FIXED - 1]
    if header_len > MAX_HEADER_SIZE:
        raise _malformed("header length %d is over the %d byte limit"
                         % (header_len, MAX_HEADER_SIZE))
    header_end = _FIXED + header_len
    if size < header_end + GCM_TAG_SIZE + MAC_SIZE + 1:
        raise _malformed("truncated")
    header_bytes = data[_FIXED:header_end]
    try:
        fields = msgpack.unpackb(
            header_bytes, raw=False, strict_map_key=True, use_list=True,
            ext_hook=_no_ext, max_ext_len=0, max_str_len=MAX_HEADER_SIZE,
            max_bin_len=MAX_HEADER_SIZE, max_array_len=MAX_HEADER_SIZE,
            max_map_len=MAX_HEADER_SIZE)
    except (ValueError, TypeError, OverflowError,
            msgpack.exceptions.UnpackException) as exc:
        raise _malformed("header is not valid msgpack (%s)"
                         % type(exc).__name__) from None
    _check_header(fields, header_bytes)
    end, signature = size, None
    suite = suites.BY_ID.get(fields[1])
    if suite is not None and suite.signed:
        if size < header_end + GCM_TAG_SIZE + MAC_SIZE + SIGNATURE_SIZE + 1:
            raise _malformed("truncated")
        end = size - SIGNATURE_SIZE
        signature = data[end:]
    return (fields, data[:header_end], data[header_end:end - MAC_SIZE],
            data[end - MAC_SIZE:end], signature)


def header_of(fields):
    """The :class:`Header` of checked header *fields* (see
    :func:`split_fields`)."""
    (fmt, suite, keyring, version, key_id, context, created, salt,
     nonce) = fields
    return Header(fmt, suite, keyring, version, key_id,
                  types.MappingProxyType(context), created, salt, nonce)


def parse(data, max_size=DEFAULT_MAX_ENVELOPE_SIZE):
    """Split raw envelope bytes into header and sealed parts: the
    :class:`ParsedEnvelope` of :func:`split_fields`.

    Strict and bounded; raises only :class:`InvalidEnvelope` subclasses.
    Nothing returned is authenticated yet.
    """
    fields, authenticated, ciphertext, mac, signature = split_fields(
        data, max_size)
    return ParsedEnvelope(header=header_of(fields),
                          authenticated=authenticated, ciphertext=ciphertext,
                          mac=mac, signature=signature)


def _from_pairs(obj, depth):
    """The metadata value of decoded *obj*, in which every map is a tuple
    of its (key, value) pairs in the order read: maps become dicts, and
    duplicate or non-str keys, and nesting past MAX_DEPTH, are refused."""
    if depth > MAX_DEPTH:
        raise _malformed("payload: metadata is nested deeper than %d levels"
                         % MAX_DEPTH)
    if type(obj) is tuple:
        result = dict(obj)
        if len(result) != len(obj):
            raise _malformed("payload: duplicate map key")
        for key, value in obj:
            if type(key) is not str:
                raise _malformed("payload: metadata map keys must be str,"
                                 " found %s" % type(key).__name__)
            if type(value) not in _SCALARS:
                result[key] = _from_pairs(value, depth + 1)
        return result
    for index, value in enumerate(obj):  # a list: msgpack makes no other
        if type(value) not in _SCALARS:
            obj[index] = _from_pairs(value, depth + 1)
    return obj


def decode_payload(data):
    """Decode an authenticated payload, strictly, into a dict."""
    size = len(data)
    try:
        # Maps as tuples of pairs (made in C), so that duplicate keys are
        # seen; arrays as lists. No extension types, every length bounded.
        value = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True,
            object_pairs_hook=tuple, ext_hook=_no_ext, max_ext_len=0,
            max_str_len=size, max_bin_len=size, max_array_len=size,
            max_map_len=size)
    except (ValueError, TypeError, OverflowError,
            msgpack.exceptions.UnpackException):
        raise _malformed("payload is not valid msgpack") from None
    if type(value) is not tuple:
        raise _malformed("payload: metadata must be a map, not %s"
                         % type(value).__name__)
    return _from_pairs(value, 1)


# -- armour -----------------------------------------------------------------

def assemble(prefix, ciphertext, mac):
    return b"".join((prefix, ciphertext, mac))


def armor(envelope):
    """Text form of an envelope for JSON carriers: prefix + unpadded base64url."""
    if not isinstance(envelope, (bytes, bytearray)):
        raise exceptions.InvalidMetadata("armor() takes the envelope bytes")
    return ARMOR_PREFIX + base64.urlsafe_b64encode(envelope).rstrip(
        b"=").decode("ascii")


def is_armored(text):
    return isinstance(text, str) and text.startswith(ARMOR_PREFIX)


def dearmor(text, max_size=DEFAULT_MAX_ENVELOPE_SIZE):
    """Envelope bytes from its armour; strict (no padding, no whitespace)."""
    if isinstance(text, (bytes, bytearray)):
        # Size first: never decode more than an envelope's worth of input.
        if len(text) > len(ARMOR_PREFIX) + (max_size * 4 + 2) // 3:
            raise exceptions.EnvelopeTooLarge(
                "armoured envelope is over the %d byte limit" % max_size)
        try:
            text = bytes(text).decode("ascii")
        except UnicodeDecodeError:
            raise _malformed("armour is not ASCII text") from None
    if not isinstance(text, str):
        raise _malformed("armour must be text, not %s" % type(text).__name__)
    if not text.startswith(ARMOR_PREFIX):
        raise _malformed("not an armoured envelope (missing %r prefix)"
                         % ARMOR_PREFIX)
    body = text[len(ARMOR_PREFIX):]
    if len(body) > (max_size * 4 + 2) // 3:
        raise exceptions.EnvelopeTooLarge(
            "armoured envelope is over the %d byte limit" % max_size)
    if not _B64URL.match(body) or len(body) % 4 == 1:
        raise _malformed("armour is not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except (binascii.Error, ValueError):
        raise _malformed("armour is not unpadded base64url") from None
    # Reject non-canonical encodings (stray low bits) so one envelope has
    # exactly one armour.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != body:
        raise _malformed("armour is not canonical base64url")
    return raw


def load(data, max_size=DEFAULT_MAX_ENVELOPE_SIZE):
    """Raw envelope bytes from raw bytes or armour (bytes or str)."""
    if type(data) is bytes and not data.startswith(_ARMOR_PREFIX_BYTES):
        return data
    if isinstance(data, str):
        return dearmor(data, max_size)
    if isinstance(data, (bytes, bytearray, memoryview)):
        data = bytes(data)
        if data.startswith(_ARMOR_PREFIX_BYTES):
            return dearmor(data.strip(b"\r\n"), max_size)
        return data
    raise _malformed("expected envelope bytes or armour text, got %s"
                     % type(data).__name__)
