"""Public signing keys of signing keyrings, for auditors.

``sealedmeta keyring export-public`` writes, and ``sealedmeta verify
--public-keys`` reads, a JSON document that holds only public facts of the
keyrings: version numbers, key ids, states, creation times and the Ed25519
public keys. With it an auditor checks that the backup service sealed an
envelope (suite 2) without any access to the key store and without being
able to seal anything. The document is specified in
``docs/source/format.rst`` ("Public keys file"); :func:`load` parses it
strictly and boundedly.
"""

import base64
import binascii
import json
import re

from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import names
from sealedmeta import signing

FORMAT = "sealedmeta-public-keys"
VERSION = 1
MAX_SIZE = 1024 * 1024
MAX_KEYRINGS = 256
MAX_VERSIONS = 4096

_TOP_KEYS = frozenset(("format", "version", "keyrings"))
_RING_KEYS = frozenset(("name", "versions"))
_VERSION_KEYS = frozenset(("version", "key_id", "state", "created",
                           "public_key", "public_key_id"))
_HEX32 = re.compile(r"[0-9a-f]{32}\Z")
# The states the file names. A version pending destruction is written as
# retired: to a public auditor it is the same (refused, ``retired-key``),
# and the file keeps to the states its readers know.
_FILE_STATES = tuple(s.value for s in (
    kr.KeyState.ACTIVE, kr.KeyState.DECRYPT_ONLY, kr.KeyState.RETIRED,
    kr.KeyState.DESTROYED))
_B64URL = re.compile(r"[A-Za-z0-9_-]*\Z")


class PublicKeysError(exceptions.SealedMetaError):
    """The public keys file cannot be used (one line, says why)."""


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text):
    if (type(text) is not str or not _B64URL.match(text)
            or len(text) % 4 == 1):
        raise ValueError("not unpadded base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError("not unpadded base64url") from None
    if b64url(raw) != text:
        raise ValueError("not canonical base64url")
    return raw


def document(rings):
    """The public keys document (a dict) of signing KeyRings: the versions
    with a key pair (those from before ``rekey --signing`` have none)."""
    out = []
    for ring in rings:
        if not ring.signing:
            raise PublicKeysError(
                "keyring %r is not a signing keyring (create signing keyrings"
                " with keyring create --signing, or make one sign from its"
                " next version with rekey --signing)" % ring.name)
        out.append({"name": ring.name, "versions": [
            {"version": v.number, "key_id": v.key_id.hex(),
             "state": (kr.KeyState.RETIRED.value
                       if v.state is kr.KeyState.PENDING_DESTRUCTION
                       else v.state.value),
             "created": v.created,
             "public_key": b64url(v.public_key),
             "public_key_id": v.public_key_id.hex()}
            for v in ring.versions if v.public_key is not None]})
    return {"format": FORMAT, "version": VERSION, "keyrings": out}


def dumps(rings):
    """The public keys file's bytes (sorted keys, UTF-8, final newline)."""
    return (json.dumps(document(rings), indent=1, sort_keys=True)
            + "\n").encode("utf-8")


def _no_duplicates(pairs):
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate key in a JSON object")
    return result


def _int(value, low, high, what):
    if type(value) is not int or not low <= value <= high:
        raise PublicKeysError("%s must be an integer %d-%d" % (what, low, high))
    return value


def _object(value, keys, what):
    if type(value) is not dict:
        raise PublicKeysError("%s must be a JSON object" % what)
    if set(value) != keys:
        missing = sorted(keys - set(value))
        extra = sorted(set(value) - keys)
        raise PublicKeysError("%s: %s" % (what, "; ".join(
            part for part in (
                "missing %s" % ", ".join(missing) if missing else "",
                "unexpected %s" % ", ".join(extra) if extra else "")
            if part)))
    return value


def _version(value, where):
    _object(value, _VERSION_KEYS, where)
    number = _int(value["version"], 1, names.MAX_KEY_VERSION,
                  "%s: version" % where)
    where = "%s (version %d)" % (where, number)
    key_id = value["key_id"]
    if type(key_id) is not str or not _HEX32.match(key_id):
        raise PublicKeysError("%s: key_id must be 32 lowercase hex digits" % where)
    state = value["state"]
    if type(state) is not str or state not in _FILE_STATES:
        raise PublicKeysError("%s: state must be one of %s" % (
            where, ", ".join(_FILE_STATES)))
    created = _int(value["created"], 0, names.MAX_TIME,
                   "%s: created" % where)
    try:
        public_key = _b64url_decode(value["public_key"])
    except ValueError as exc:
        raise PublicKeysError("%s: public_key is %s" % (where, exc)) from None
    if len(public_key) != signing.PUBLIC_KEY_SIZE:
        raise PublicKeysError("%s: public_key must be %d bytes, not %d"
                              % (where, signing.PUBLIC_KEY_SIZE, len(public_key)))
    public_key_id = value["public_key_id"]
    if type(public_key_id) is not str or not _HEX32.match(public_key_id):
        raise PublicKeysError(
            "%s: public_key_id must be 32 lowercase hex digits" % where)
    if signing.public_key_id(public_key).hex() != public_key_id:
        raise PublicKeysError(
            "%s: public_key_id does not match public_key" % where)
    try:
        signing.public_key_object(public_key)
    except ValueError:
        raise PublicKeysError("%s: public_key is not an Ed25519 key" % where) from None
    return kr.KeyVersion(number, bytes.fromhex(key_id), kr.KeyState(state),
                         created, public_key)


def parse(data, source="public keys file"):
    """{keyring name: KeyRing} of the document's bytes; PublicKeysError."""
    if type(data) is not bytes:
        raise PublicKeysError("%s: expected bytes" % source)
    if len(data) > MAX_SIZE:
        raise PublicKeysError("%s is over the %d byte limit" % (source, MAX_SIZE))
    try:
        value = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates,
                           parse_constant=_refuse_constant)
    except RecursionError:
        raise PublicKeysError("%s is not valid JSON: nested too deeply"
                              % source) from None
    except UnicodeDecodeError:
        raise PublicKeysError("%s is not UTF-8 text" % source) from None
    except ValueError as exc:
        raise PublicKeysError("%s is not valid JSON: %s" % (source, exc)) from None
    try:
        return _document(value)
    except PublicKeysError as exc:
        raise PublicKeysError("%s: %s" % (source, exc)) from None


def _refuse_constant(name):
    raise ValueError("%s is not allowed" % name)


def _document(value):
    _object(value, _TOP_KEYS, "the document")
    if value["format"] != FORMAT:
        raise PublicKeysError("format must be %r" % FORMAT)
    if type(value["version"]) is not int or value["version"] != VERSION:
        raise PublicKeysError("version must be %d (this library reads %d)"
                              % (VERSION, VERSION))
    rings_in = value["keyrings"]
    if type(rings_in) is not list or not 1 <= len(rings_in) <= MAX_KEYRINGS:
        raise PublicKeysError("keyrings must be a list of 1-%d keyrings"
                              % MAX_KEYRINGS)
    rings = {}
    for index, ring in enumerate(rings_in):
        where = "keyrings[%d]" % index
        _object(ring, _RING_KEYS, where)
        name = ring["name"]
        try:
            names.check_keyring_name(name)
        except exceptions.InvalidMetadata:
            raise PublicKeysError("%s: name is not a valid keyring name"
                                  % where) from None
        if name in rings:
            raise PublicKeysError("keyring %r is listed twice" % name)
        versions = ring["versions"]
        if type(versions) is not list or not 1 <= len(versions) <= MAX_VERSIONS:
            raise PublicKeysError("%s: versions must be a list of 1-%d versions"
                                  % (where, MAX_VERSIONS))
        parsed = tuple(_version(v, "keyring %r, versions[%d]" % (name, i))
                       for i, v in enumerate(versions))
        try:
            rings[name] = kr.KeyRing(name, parsed)
        except exceptions.SealedMetaError as exc:
            raise PublicKeysError(str(exc)) from None
    return rings


def load(path):
    """:func:`parse` of the file at *path* (read at most MAX_SIZE + 1 bytes)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_SIZE + 1)
    except IsADirectoryError:
        raise PublicKeysError("cannot read public keys file %s: it is a"
                              " directory" % path) from None
    except OSError as exc:
        raise PublicKeysError("cannot read public keys file %s: %s"
                              % (path, exc.strerror)) from None
    return parse(data, "public keys file %s" % path)
