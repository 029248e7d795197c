"""The one reader of a Cinder backup's metadata object.

Every place that reads such an object -- the ``cinder-metadata`` carrier of
``sealedmeta verify`` / ``rewrap``, the sealed drivers' judgement at restore,
export, ``sealedmeta cinder reseal`` and audit, Swift's archived versions --
reads it through :func:`read` and parses it with :func:`loads`, so all of
them refuse the same inputs with the same bounds:

* an object whose store reports a size over ``max_size`` (default
  :data:`DEFAULT_MAX_SIZE`, ``[sealedmeta] max_metadata_object_size``)
  before its body is read -- a file's ``stat``, a ranged GET's
  ``Content-Range`` -- is refused unread; at most ``max_size + 1`` bytes
  are read of any object, and a larger one is refused as too large;
* at most ``max_size // 16`` JSON elements (``[``, ``{``, ``,`` and ``:``,
  counted over the raw bytes, strings included, before anything is
  parsed), so the parsed objects cost a bounded multiple of ``max_size``
  whatever the bytes are;
* at most :data:`MAX_DEPTH` levels of nesting (Cinder writes four);
* strict JSON: UTF-8, no duplicate keys, no ``NaN``/``Infinity``.

Imports nothing from Cinder.
"""

import errno
import json
import os
import re
import stat

from sealedmeta import conf as sm_conf
from sealedmeta import exceptions

DEFAULT_MAX_SIZE = sm_conf.DEFAULT_MAX_METADATA_OBJECT_SIZE
#: Bytes per JSON element allowed: a real object has one element per 26
#: bytes. Parsed, the worst shapes cost under twelve times the input.
BYTES_PER_ELEMENT = 16
MAX_DEPTH = 32
_DIGITS = re.compile(r"[0-9]{1,20}\Z")


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


def _too_large(max_size, size=None, what=None, limit_words=None):
    what = what or "the metadata object"
    limit = limit_words or (
        "the %d byte limit ([sealedmeta] max_metadata_object_size)" % max_size)
    if size is None:
        return ObjectTooLarge("%s is over %s" % (what, limit))
    return ObjectTooLarge("%s is %d bytes, over %s: not read" % (what, size, limit))


def read(reader, max_size=DEFAULT_MAX_SIZE, size=None, what=None, limit_words=None):
    """At most *max_size* bytes of *reader*; ObjectTooLarge when it holds
    more.

    *reader*'s ``read(n)`` returns at most *n* bytes (a file, a streamed
    HTTP body); it is read until *max_size* + 1 bytes or its end. *size* is
    the object's size as its store reported it before any of the body was
    read (None: not reported): over *max_size*, the object is refused
    without reading from *reader*. *what* and *limit_words* name the object and
    the limit in the refusal (default: the metadata object, and
    ``max_metadata_object_size``).
    """
    if size is not None and size > max_size:
        raise _too_large(max_size, size, what, limit_words)
    chunks, count = [], 0
    while count <= max_size:
        chunk = reader.read(max_size + 1 - count)
        if not chunk:
            break
        chunks.append(chunk)
        count += len(chunk)
    if count > max_size:
        raise _too_large(max_size, None, what, limit_words)
    return b"".join(chunks)


def reported_size(content_range=None, content_length=None):
    """An object's size as a GET's answer reports it before the body: the
    total of a ranged answer's ``Content-Range`` (``bytes 0-N/TOTAL``, or
    ``bytes */TOTAL`` when nothing was in range), else the ``Content-Length``
    of a whole one; None when neither says."""
    if content_range:
        total = str(content_range).rpartition("/")[2].strip()
        return int(total) if _DIGITS.match(total) else None
    if content_length is not None and _DIGITS.match(str(content_length).strip()):
        return int(str(content_length).strip())
    return None


def file_size(handle):
    """The size of the regular file open as *handle*, or None (not a file,
    or no descriptor to ask)."""
    try:
        info = os.fstat(handle.fileno())
    except (AttributeError, OSError, TypeError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def loads(data, max_size=DEFAULT_MAX_SIZE):
    """The JSON value of *data* (bytes or str), within the bounds above.

    Raises ObjectTooLarge or ObjectError, never anything else.
    """
    if len(data) > max_size:
        raise _too_large(max_size)
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
