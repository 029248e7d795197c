"""The names the sealed Swift driver puts in request paths, checked.

``sealedmeta cinder reseal`` and the fleet audit act in each tenant's Swift
account as a service user holding Swift's reseller admin role, who may act
in every account. Every name they put in a request path is the tenant's to
write: the backup's container (chosen at backup creation), the archive
container its ``X-History-Location`` / ``X-Versions-Location`` names, the
names that archive's listing returns, object version ids. swiftclient
percent-encodes a name but keeps its ``/`` and its dot segments, and the
HTTP client under it removes dot segments (RFC 3986): an archive entry named
``<prefix>../../../../../AUTH_victim/c/o`` reaches another account. So a
name is used only when it has the shape checked here, and is refused
(:class:`UnsafeName`) otherwise:

* a container: 1 to 256 UTF-8 bytes, no ``/``, not ``.`` or ``..``;
* an object: 1 to 1024 UTF-8 bytes, and no segment between its ``/`` is
  empty, ``.`` or ``..``;
* an archived version: exactly :func:`archive_prefix` of the object's own
  name followed by a timestamp as Swift's versioned writes name them
  (``<3 hex digits of the name's length><name>/<timestamp>``);
* a version id (object versioning): ``null`` or such a timestamp.

No NUL anywhere (Swift refuses it too). With these, every request path is
``<the driver's account>/<container>/<object>`` after any normalisation.
Imports nothing from Cinder or swiftclient.
"""

import re
import urllib.parse

# Swift's default constraints (max_container_name_length,
# max_object_name_length).
MAX_CONTAINER = 256
MAX_OBJECT = 1024
# Timestamp.internal: "%016.05f", then "_%016x" when it has an offset.
_TIMESTAMP = r"[0-9]{10}\.[0-9]{5}(?:_[0-9a-f]{16})?"
_ARCHIVED = re.compile(_TIMESTAMP + r"\Z")
_VERSION_ID = re.compile(r"(?:null|%s)\Z" % _TIMESTAMP)
_DOT_SEGMENTS = ("", ".", "..")


class UnsafeName(ValueError):
    """A name that could take a request outside the backup's account and
    containers: never put in a path."""


def _text(name, what, limit):
    if type(name) is not str or not name:
        raise UnsafeName("%s name %r is not a non-empty string" % (what, name))
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        raise UnsafeName("%s name %r is not UTF-8" % (what, name)) from None
    if size > limit:
        raise UnsafeName("%s name of %d bytes is over Swift's %d" % (what, size, limit))
    if "\0" in name:
        raise UnsafeName("%s name %r holds a NUL" % (what, name))
    return name


def container(name):
    """*name*, a container name that stays one path segment."""
    _text(name, "container", MAX_CONTAINER)
    if "/" in name or name in _DOT_SEGMENTS:
        raise UnsafeName("container name %r is not one path segment" % name)
    return name


def object_name(name):
    """*name*, an object name none of whose segments a client removes."""
    _text(name, "object", MAX_OBJECT)
    if any(part in _DOT_SEGMENTS for part in name.split("/")):
        raise UnsafeName("object name %r has an empty, '.' or '..' segment" % name)
    return name


def archive_container(location):
    """The container an ``X-History-Location`` / ``X-Versions-Location``
    value names, as Swift's versioned writes take it (unquoted, up to its
    first ``/``), checked."""
    if type(location) is not str:
        raise UnsafeName("archive location %r is not a string" % (location,))
    return container(urllib.parse.unquote(location).split("/")[0])


def archive_prefix(name):
    """The prefix of the archived versions of object *name*: Swift counts
    its length in bytes."""
    return "%03x%s/" % (len(name.encode("utf-8")), name)


def is_archived_version(entry, name):
    """True when *entry* (a name from an archive's listing) is a version of
    object *name* as Swift names it, and nothing else."""
    prefix = archive_prefix(name)
    return (type(entry) is str and entry.startswith(prefix)
            and _ARCHIVED.match(entry[len(prefix):]) is not None)


def version_query(version_id):
    """The ``version-id=`` query string of *version_id*, checked."""
    if type(version_id) is not str or not _VERSION_ID.match(version_id):
        raise UnsafeName("version id %r is not one Swift makes" % (version_id,))
    return "version-id=%s" % version_id
