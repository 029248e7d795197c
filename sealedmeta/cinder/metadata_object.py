"""The one reader of a Cinder backup's ``<prefix>_metadata`` object.

Every place that parses such an object -- the ``cinder-metadata`` carrier of
``sealedmeta verify`` / ``rewrap``, the sealed drivers' judgement at restore,
``sealedmeta cinder reseal`` -- reads it through :func:`read` and
:func:`loads`, so all of them refuse the same inputs with the same bounds:

* at most ``max_size`` bytes are read (default :data:`DEFAULT_MAX_SIZE`);
  a larger object is refused as too large without reading the rest;
* at most ``max_size // 16`` JSON elements (``[``, ``{``, ``,`` and ``:``,
  counted over the raw bytes, strings included, before anything is
  parsed), so the parsed objects cost a bounded multiple of ``max_size``
  whatever the bytes are;
* at most :data:`MAX_DEPTH` levels of nesting (Cinder writes four);
* strict JSON: UTF-8, no duplicate keys, no ``NaN``/``Infinity``.

Imports nothing from Cinder.
"""

import errno
import inspect
import json

from sealedmeta import exceptions

#: Cinder's metadata objects are kilobytes: a chunk list entry is about
#: 290 bytes, so 8 MiB lists some 28 000 chunks (1.4 TB at Swift's and S3's
#: default 50 MB objects). Configurable: ``[sealedmeta]
#: max_metadata_object_size``.
DEFAULT_MAX_SIZE = 8 * 1024 * 1024
#: Bytes per JSON element allowed: a real object has one element per 26
#: bytes. Parsed, the worst shapes cost under twelve times the input.
BYTES_PER_ELEMENT = 16
MAX_DEPTH = 32


class ObjectError(exceptions.SealedMetaError, ValueError):
    """A metadata object that cannot be read: the message says why."""


class ObjectTooLarge(ObjectError):
    """A metadata object over the size or element limit."""


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


def _no_duplicates(pairs):
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError("duplicate key %r" % key)
        result[key] = value
    return result


def _takes_size(read):
    # A named positional parameter only: Cinder's Google reader is wrapped in
    # gcs_logger's (self, *args, **kwargs) around a read() without a size.
    try:
        params = inspect.signature(read).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in params)


def read(reader, max_size=DEFAULT_MAX_SIZE):
    """At most *max_size* bytes of a Cinder object reader (or file);
    ObjectTooLarge when there are more.

    A reader whose ``read`` takes a size (a file: posix, NFS) stops after
    ``max_size + 1`` bytes; those of Swift, S3 and GCS return the whole
    object, which is then refused before it is parsed.
    """
    if _takes_size(reader.read):
        data = reader.read(max_size + 1)
    else:
        data = reader.read()
    if len(data) > max_size:
        raise ObjectTooLarge(
            "the metadata object is over the %d byte limit"
            " ([sealedmeta] max_metadata_object_size)" % max_size)
    return data


def loads(data, max_size=DEFAULT_MAX_SIZE):
    """The JSON value of *data* (bytes or str), within the bounds above.

    Raises ObjectTooLarge or ObjectError, never anything else.
    """
    if len(data) > max_size:
        raise ObjectTooLarge("the metadata object is over the %d byte limit"
                             " ([sealedmeta] max_metadata_object_size)"
                             % max_size)
    if isinstance(data, (bytes, bytearray)):
        elements = sum(data.count(c) for c in (b"[", b"{", b",", b":"))
    else:
        elements = sum(data.count(c) for c in "[{,:")
    if elements > max_size // BYTES_PER_ELEMENT:
        raise ObjectTooLarge(
            "the metadata object has over %d JSON elements"
            % (max_size // BYTES_PER_ELEMENT))
    if isinstance(data, (bytes, bytearray)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ObjectError("the metadata object is not valid JSON (not"
                              " UTF-8)") from None
    else:
        text = data
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates,
                           parse_constant=_reject_constant)
    except RecursionError:
        # The C decoder counts its depth against the recursion limit: a
        # deep input ends here, in bounded memory, before MAX_DEPTH is
        # checked on what was parsed.
        raise ObjectError("the metadata object is nested deeper than %d"
                          " levels" % MAX_DEPTH) from None
    except ValueError as exc:
        raise ObjectError("the metadata object is not valid JSON (%s)"
                          % exc) from None
    _check_depth(value)
    return value


def _check_depth(value):
    # Level by level: one list per level, no per-node bookkeeping.
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise ObjectError("the metadata object is nested deeper than %d"
                              " levels" % MAX_DEPTH)
        children = []
        for node in level:
            children.extend(node.values() if type(node) is dict else node)
        level = [child for child in children
                 if type(child) is dict or type(child) is list]


def missing(exc):
    """True when *exc* (or what it wraps) is a storage client's "no such
    object": a missing file (posix, NFS) or RADOS object (Ceph), swiftclient's ``ClientException``
    with HTTP status 404, botocore's ``ClientError`` ``NoSuchKey``/``404``
    (wrapped by Cinder's ``S3ClientError``), or a Google API ``HttpError``
    404. Duck-typed: no storage client is imported."""
    seen = set()
    todo = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, FileNotFoundError) or getattr(
                err, "errno", None) == errno.ENOENT:     # files, RADOS objects
            return True
        if getattr(err, "http_status", None) == 404:           # swiftclient
            return True
        response = getattr(err, "response", None)               # botocore
        if isinstance(response, dict):
            code = str((response.get("Error") or {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                return True
        status = getattr(getattr(err, "resp", None), "status", None)  # google
        if status in (404, "404"):
            return True
        kwargs = getattr(err, "kwargs", None)  # CinderException(reason=err)
        if isinstance(kwargs, dict) and isinstance(kwargs.get("reason"), BaseException):
            todo.append(kwargs["reason"])
        todo.extend((err.__cause__, err.__context__))
    return False
