"""Envelope format version 1: encoding, strict parsing, limits and armour.

This module knows the byte layout only. It performs no cryptography and no
I/O: the sealer hands it the salt, nonce, ciphertext and MAC to place, and
gets back the exact bytes that were authenticated. ``docs/source/format.rst``
is the specification this code follows.

Layout::

    magic "SMETA" | format 0x01 | header length (uint16 BE) | header | ciphertext | mac (32)
    [ | signature (64), suite 2 only ]

The header is a canonical msgpack array, see :class:`Header`.
"""

import base64
import collections.abc
import binascii
import dataclasses
import re
import threading
import types

import msgpack

from sealedmeta import exceptions

MAGIC = b"SMETA"
FORMAT_VERSION = 1
_FIXED = len(MAGIC) + 1 + 2  # magic, format byte, header length
MAC_SIZE = 32
SIGNATURE_SIZE = 64
# The suite whose envelopes end with an Ed25519 signature (see crypto.py).
SIGNED_SUITE = 2
TAG_SIZE = 16
SALT_SIZE = 32
NONCE_SIZE = 12
KEY_ID_SIZE = 16

# Limits. Everything the parser reads is bounded by one of these.
DEFAULT_MAX_ENVELOPE_SIZE = 1024 * 1024
MAX_HEADER_SIZE = 16 * 1024
MAX_KEYRING_NAME = 64
MAX_CONTEXT_ITEMS = 32
MAX_CONTEXT_KEY = 64
MAX_CONTEXT_VALUE = 1024
MAX_DEPTH = 32
MAX_KEY_VERSION = 2**31 - 1
MAX_CREATED = 2**63 - 1
HEADER_FIELDS = 9

ARMOR_PREFIX = "sealedmeta:"
_ARMOR_PREFIX_BYTES = ARMOR_PREFIX.encode("ascii")
_B64URL = re.compile(r"[A-Za-z0-9_-]*\Z")
_KEYRING_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")
_CONTEXT_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
_SCALARS = frozenset((str, bytes, int, float, bool, type(None)))
_PREFIX = MAGIC + bytes((FORMAT_VERSION,))
_ARRAY9 = bytes((0x90 | HEADER_FIELDS,))  # msgpack fixarray of nine
# The header's last three fields when the creation time is 2^16 .. 2^32-1
# (every time from 1970-01-01 18:12 UTC to 2106): uint32, bin8 salt, bin8
# nonce, each in its shortest form. See split_known.
_UINT32 = 0xce
_SALT_BIN8 = bytes((0xc4, SALT_SIZE))
_NONCE_BIN8 = bytes((0xc4, NONCE_SIZE))
_TAIL_SIZE = 5 + 2 + SALT_SIZE + 2 + NONCE_SIZE

# Names that passed the regular expressions above, so that the hot paths
# (every seal and open checks a context and parses a keyring name) match
# each distinct name once. Bounded: past the cap, names are matched every
# time, so hostile input cannot grow them.
_GOOD_NAMES_CAP = 4096
_good_context_keys = set()
_good_keyring_names = set()


class _Packers(threading.local):
    """Reusable msgpack packers, one of each kind per thread
    (``msgpack.packb`` makes a new packer and buffer on every call). A
    packer is never entered twice at once: each thread has its own, and
    packing the exact types the format allows runs no Python code."""

    def __init__(self):
        self.header = msgpack.Packer(use_bin_type=True)
        self.payload = msgpack.Packer(use_bin_type=True, strict_types=True)


_packers = _Packers()


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


_new_object = object.__new__


def _new_header(format_version, suite, keyring, key_version, key_id, context,
                created, salt, nonce):
    # Header(...) without the frozen dataclass's nine object.__setattr__
    # calls: the values are already checked. The result is an ordinary
    # Header (equality, repr, hash, dataclasses.replace, immutability).
    header = _new_object(Header)
    header.__dict__.update(
        format_version=format_version, suite=suite, keyring=keyring,
        key_version=key_version, key_id=key_id, context=context,
        created=created, salt=salt, nonce=nonce)
    return header


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


def _good_keyring_name(name):
    """True when *name* (a str) is a valid keyring name."""
    if name in _good_keyring_names:
        return True
    if not _KEYRING_NAME.match(name):
        return False
    if len(_good_keyring_names) < _GOOD_NAMES_CAP:
        _good_keyring_names.add(name)
    return True


def _good_context_key(key):
    """True when *key* (a str) is a valid context key."""
    if key in _good_context_keys:
        return True
    if not _CONTEXT_KEY.match(key):
        return False
    if len(_good_context_keys) < _GOOD_NAMES_CAP:
        _good_context_keys.add(key)
    return True


def check_keyring_name(name):
    """Raise InvalidMetadata unless *name* is a valid keyring name."""
    if type(name) is not str or not _good_keyring_name(name):
        raise exceptions.InvalidMetadata(
            "invalid keyring name %r: 1-64 characters of A-Z a-z 0-9 . _ -,"
            " starting with a letter or digit" % (name,))
    return name


def validated_context(context):
    """*context* validated, as a plain dict in the caller's order."""
    if type(context) is not dict:
        # Mappings only: dict() would also turn ["ab"] into {"a": "b"}.
        if not isinstance(context, collections.abc.Mapping):
            raise exceptions.InvalidMetadata(
                "context must be a mapping of str to str, not %s"
                % type(context).__name__)
        context = dict(context)
    _check_context_items(context)
    return context


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
        if type(key) is not str or (key not in _good_context_keys
                                    and not _good_context_key(key)):
            raise exceptions.InvalidMetadata(
                "invalid context key %r: 1-64 characters of A-Z a-z 0-9 _ . : -"
                % (key,))
        if type(value) is not str:
            raise exceptions.InvalidMetadata(
                "context value for %r must be a str, not %s"
                % (key, type(value).__name__))
        # ASCII values (ids, the usual case) need no encoding to be checked.
        if not value.isascii() or len(value) > MAX_CONTEXT_VALUE:
            try:
                size = len(value.encode("utf-8"))
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


def check_context(context):
    """Validate a context mapping; return it as a plain dict sorted by key."""
    return dict(sorted(validated_context(context).items()))


def sorted_context(context):
    """Like :func:`check_context`, but returns *context* itself when it
    already is a valid plain dict sorted by key (no copy)."""
    if type(context) is not dict:
        context = validated_context(context)
    elif _check_context_items(context):
        return context
    return dict(sorted(context.items()))


def encode_header_fields(format_version, suite, keyring, key_version, key_id,
                         context, created, salt, nonce):
    """Canonical header bytes: msgpack array, shortest encodings, sorted context.

    *context* must already be sorted by key (check_context returns it so).
    """
    return _packers.header.pack([format_version, suite, keyring, key_version,
                                key_id, context, created, salt, nonce])


def header_head(format_version, suite, keyring, key_version, key_id):
    """Canonical bytes every header of one key version and suite starts
    with: the array marker of nine fields, then the first five fields.

    With :func:`encode_prefix_after` it gives the bytes of
    :func:`encode_header_fields`: a sealer encodes the constant part once
    per version.
    """
    if (format_version != FORMAT_VERSION or type(suite) is not int
            or not 0 <= suite <= 255 or type(key_version) is not int
            or not 1 <= key_version <= MAX_KEY_VERSION
            or type(key_id) is not bytes or len(key_id) != KEY_ID_SIZE):
        raise exceptions.InvalidMetadata(
            "no valid header names format %r, suite %r, key version %r and a"
            " %s key id" % (format_version, suite, key_version,
                            type(key_id).__name__))
    return _ARRAY9 + _packers.header.pack(
        [format_version, suite, check_keyring_name(keyring), key_version,
         key_id])[1:]


def encode_prefix_after(head, context, created, salt, nonce):
    """:func:`encode_prefix` of the header that starts with *head* (see
    :func:`header_head`) and ends with these four fields; *context* must
    already be checked and sorted by key."""
    header_bytes = head + _packers.header.pack([context, created, salt,
                                               nonce])[1:]
    if len(header_bytes) > MAX_HEADER_SIZE:
        return encode_prefix(header_bytes)  # raises, saying why
    return _PREFIX + len(header_bytes).to_bytes(2, "big") + header_bytes


def encode_context(context):
    """Canonical bytes of a checked context, sorted by key, as the header
    holds it."""
    return _packers.header.pack(context)


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


def _check_header_fields(fields, header_bytes):
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
    if type(keyring) is not str or (keyring not in _good_keyring_names
                                    and not _good_keyring_name(keyring)):
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
    # in msgpack's shortest form, give back the exact bytes read. A
    # duplicate context key collapses in the dict, so it fails here too.
    if not in_order or _packers.header.pack(fields) != header_bytes:
        raise _malformed("header is not in canonical encoding")


def header_of(fields):
    """The :class:`Header` of checked header *fields* (see :func:`split_fields`)."""
    (fmt, suite, keyring, version, key_id, context, created, salt,
     nonce) = fields
    return _new_header(fmt, suite, keyring, version, key_id,
                       types.MappingProxyType(context), created, salt, nonce)


def _pairs_no_duplicates(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate map key")
    for key in result:
        if type(key) is not str:
            raise ValueError("map key is not a string")
    return result


def _unpack(data, max_len):
    return msgpack.unpackb(
        data, raw=False, strict_map_key=True, use_list=True,
        object_pairs_hook=_pairs_no_duplicates, ext_hook=_no_ext,
        max_ext_len=0, max_str_len=max_len, max_bin_len=max_len,
        max_array_len=max_len, max_map_len=max_len)


def split(data, max_size=DEFAULT_MAX_ENVELOPE_SIZE):
    """``(header, authenticated, ciphertext, mac, signature)`` of raw
    envelope bytes: :func:`parse` without the :class:`ParsedEnvelope`
    wrapper. *signature* is None unless the suite is 2."""
    fields, authenticated, ciphertext, mac, signature = split_fields(
        data, max_size)
    return header_of(fields), authenticated, ciphertext, mac, signature


def split_fields(data, max_size=DEFAULT_MAX_ENVELOPE_SIZE):
    """``(fields, authenticated, ciphertext, mac, signature)`` of raw
    envelope bytes. For suite 2 the last 96 bytes are the MAC and the
    signature; for every other suite the last 32 are the MAC and
    *signature* is None.

    *fields* is the checked header as the list of its nine values in
    header order (the context a plain dict); :func:`header_of` makes the
    :class:`Header`. The hot path of open, which needs no Header object.
    Strict and bounded; raises only :class:`InvalidEnvelope` subclasses.
    Nothing returned is authenticated.
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
    if size < header_end + TAG_SIZE + MAC_SIZE + 1:
        raise _malformed("truncated")
    header_bytes = data[_FIXED:header_end]
    try:
        # No per-map hook here: a duplicate context key collapses in the
        # dict and is then caught by the canonical re-encoding check.
        fields = msgpack.unpackb(
            header_bytes, raw=False, strict_map_key=True, use_list=True,
            ext_hook=_no_ext, max_ext_len=0, max_str_len=MAX_HEADER_SIZE,
            max_bin_len=MAX_HEADER_SIZE, max_array_len=MAX_HEADER_SIZE,
            max_map_len=MAX_HEADER_SIZE)
    except (ValueError, TypeError, OverflowError,
            msgpack.exceptions.UnpackException) as exc:
        raise _malformed("header is not valid msgpack (%s)"
                         % type(exc).__name__) from None
    _check_header_fields(fields, header_bytes)
    if fields[1] != SIGNED_SUITE:
        return (fields, data[:header_end], data[header_end:-MAC_SIZE],
                data[-MAC_SIZE:], None)
    if size < header_end + TAG_SIZE + MAC_SIZE + SIGNATURE_SIZE + 1:
        raise _malformed("truncated")
    end = size - SIGNATURE_SIZE
    return (fields, data[:header_end], data[header_end:end - MAC_SIZE],
            data[end - MAC_SIZE:end], data[end:])


def split_known(data, heads, context_bytes,
                max_size=DEFAULT_MAX_ENVELOPE_SIZE):
    """:func:`split_fields` for the envelopes a reader expects, by bytes.

    *heads* maps :func:`header_head` bytes to whatever the caller wants
    back for them (a key version); *context_bytes* is
    :func:`encode_context` of the context the caller expects. When *data*
    is an envelope whose header is one of *heads*, then *context_bytes*,
    then a creation time in 2^16 .. 2^32-1 and the salt and nonce, returns
    ``(value, salt, nonce, authenticated, ciphertext, mac, signature)``;
    for anything else, None, and the caller takes :func:`split_fields`,
    which accepts or refuses with the reason.

    Whatever this accepts, split_fields accepts with the same fields: the
    header is then byte for byte the canonical encoding of fields that
    were checked when *heads* and *context_bytes* were made, and the last
    three are the only encodings of their values. Comparing bytes replaces
    decoding, checking and re-encoding the header.
    """
    size = len(data)
    if size > max_size or not data.startswith(_PREFIX) or size < _FIXED:
        return None
    end = _FIXED + ((data[_FIXED - 2] << 8) | data[_FIXED - 1])
    tail = end - _TAIL_SIZE
    context_start = tail - len(context_bytes)
    if (end > _FIXED + MAX_HEADER_SIZE or context_start <= _FIXED
            or size < end + TAG_SIZE + MAC_SIZE + 1):
        return None
    value = heads.get(data[_FIXED:context_start])
    if (value is None or data[tail] != _UINT32
            or not data[tail + 1] | data[tail + 2]  # under 2^16: not shortest
            or not data.startswith(context_bytes, context_start)
            or not data.startswith(_SALT_BIN8, tail + 5)
            or not data.startswith(_NONCE_BIN8, end - NONCE_SIZE - 2)):
        return None
    salt = data[tail + 7:tail + 7 + SALT_SIZE]
    nonce = data[end - NONCE_SIZE:end]
    if data[_FIXED + 2] != SIGNED_SUITE:
        return (value, salt, nonce, data[:end], data[end:-MAC_SIZE],
                data[-MAC_SIZE:], None)
    if size < end + TAG_SIZE + MAC_SIZE + SIGNATURE_SIZE + 1:
        return None
    cut = size - SIGNATURE_SIZE
    return (value, salt, nonce, data[:end], data[end:cut - MAC_SIZE],
            data[cut - MAC_SIZE:cut], data[cut:])


def parse(data, max_size=DEFAULT_MAX_ENVELOPE_SIZE):
    """Split raw envelope bytes into header and sealed parts.

    Strict and bounded; raises only :class:`InvalidEnvelope` subclasses.
    Nothing returned is authenticated yet.
    """
    header, authenticated, ciphertext, mac, signature = split(data, max_size)
    return ParsedEnvelope(header=header, authenticated=authenticated,
                          ciphertext=ciphertext, mac=mac, signature=signature)


def _check_value(obj, depth):
    # Recursive on purpose: depth is capped at MAX_DEPTH, and this is the
    # hot path of seal (a call per container, not per value).
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
        return _packers.payload.pack(metadata)
    except (OverflowError, ValueError, TypeError) as exc:
        raise exceptions.InvalidMetadata(
            "metadata cannot be encoded: %s" % exc) from None


# Bytes that can start a msgpack container (fixmap, fixarray, array 16/32,
# map 16/32), a bin (8/16/32) or an ext (ext 8/16/32, fixext 1-16). The
# scan of a payload for these (see decode_payload) keeps only them.
_CONTAINER_MARKERS = bytes(range(0x80, 0xa0)) + b"\xdc\xdd\xde\xdf"
_BIN_EXT_MARKERS = b"\xc4\xc5\xc6\xc7\xc8\xc9\xd4\xd5\xd6\xd7\xd8"
_NOT_MARKERS = bytes(b for b in range(256)
                     if b not in _CONTAINER_MARKERS + _BIN_EXT_MARKERS)


def decode_payload(data):
    """Decode an authenticated payload, strictly, into a dict."""
    size = len(data)
    try:
        value = msgpack.unpackb(
            data, raw=False, strict_map_key=True, use_list=True,
            ext_hook=_no_ext, max_ext_len=0, max_str_len=size,
            max_bin_len=size, max_array_len=size, max_map_len=size)
        # Without a per-map hook a duplicate key collapses in its dict.
        # Re-encoding the result gives back the exact bytes only when every
        # map had distinct keys (the bytes then are the encoding of dicts).
        accepted = type(value) is dict and _packers.payload.pack(value) == data
        if accepted:
            # The decoded values are of msgpack's own types, so what is
            # left to check is that map keys are str (not bytes) and the
            # depth. Both follow from the bytes when they hold no bin or
            # ext marker (then no bytes value, key or ext exists) and at
            # most MAX_DEPTH bytes that can start a container (each level
            # of nesting needs one): a sufficient condition, tested at C
            # speed. Marker bytes inside strings or numbers only send a
            # payload to the full walk.
            markers = data.translate(None, _NOT_MARKERS)
            if (len(markers) > MAX_DEPTH
                    or markers.translate(None, _CONTAINER_MARKERS)):
                check_metadata(value)
    except Exception:
        accepted = False
    if accepted:
        return value
    # Anything else (another writer's encoding, or bad input) takes the
    # per-map checked decoder, which also gives the reason for a refusal.
    return _decode_payload_checked(data)


def _decode_payload_checked(data):
    try:
        value = _unpack(data, len(data))
    except (ValueError, TypeError, OverflowError,
            msgpack.exceptions.UnpackException):
        raise _malformed("payload is not valid msgpack") from None
    try:
        check_metadata(value)
    except exceptions.InvalidMetadata as exc:
        raise _malformed("payload: %s" % exc) from None
    return value


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
