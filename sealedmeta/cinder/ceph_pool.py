"""The envelopes of a Ceph backup pool, read through librados.

Cinder's Ceph backup driver keeps a backup's metadata in the RADOS object
``backup.<backup id>.meta`` of the pool the backup was made in; the sealed
class (:mod:`sealedmeta.cinder.ceph`) writes there the armour of an envelope
bound to ``{backup_id, volume_id}``. :class:`CephPool` lists those objects
and yields one :class:`~sealedmeta.carriers.Item` per object, judged by
:meth:`sealedmeta.audit.Auditor.run` like the files under a PATH, so that
``sealedmeta verify --ceph-pool`` and ``key destroy --ceph-pool`` count the
envelopes of a pool without copying it to files.

* The backup comes from the object's name; its volume from the names of the
  pool's RBD images, as Cinder names them (``volume-<volume id>.backup.<backup
  id>`` for a full copy or the first backup of a differential chain;
  snapshots ``backup.<backup id>.snap.<time>`` of such an image, or of
  ``volume-<volume id>.backup.base``, for the backups of the chain). Both
  bindings, rados and rbd, are needed: without them the pool is not read
  (:class:`CephPoolError`, nothing judged).
* An object whose backup no image of the pool names -- the image is gone,
  or could not be read (an ``rbd.Error`` other than the image being removed
  while listed) -- cannot be judged: which volume its envelope must be
  sealed for is unknown. It is an item that could not be read (status
  ``unreadable``, which holds ``key destroy``), and still carries its
  envelope, so that the report names the key version its header names.
* Each object is stat'ed first and refused unread over the limit
  (``[sealedmeta] max_metadata_object_size``); at most that many bytes
  plus one are read (:func:`read_object`).
* An object whose content is not an armoured envelope (a stock backup's
  plain JSON, or a forgery) is ``unsealed``; one sealed for another backup
  is ``context-mismatch``.

Imports nothing from Cinder; the rados and rbd bindings are imported when
a pool is read.
"""

import re

from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import carriers
from sealedmeta.cinder import carrier as cinder_carrier
from sealedmeta.cinder import metadata_object
from sealedmeta.cinder import volume_meta as vm

# Seconds to wait for the cluster before giving up.
CONNECT_TIMEOUT = 30

_META_NAME = re.compile(r"backup\.([^/]+)\.meta\Z")
_IMAGE_NAME = re.compile(r"volume-([0-9a-fA-F-]{36})\.backup\.(.+)\Z")
_SNAP_NAME = re.compile(r"backup\.(.+)\.snap\.[0-9.]+\Z")
_BASE = "base"


class CephPoolError(exceptions.SealedMetaError):
    """The pool cannot be listed (no bindings, cluster unreachable, no such
    pool, not allowed)."""


class CephMetadataCarrier(cinder_carrier.CinderMetadataCarrier):
    """A Ceph backup's ``backup.<id>.meta`` object: the armour itself."""

    name = "ceph-metadata"

    def sniff(self, path, head):
        # Only CephPool hands objects to this carrier; never a file.
        return False

    def extract_object(self, data, backup_id, volume_id):
        """The Carried envelope of the object *data* of a backup whose
        volume is *volume_id* (None: unknown, and nothing is expected of
        the envelope's context: the caller does not judge it)."""
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            text = None
        if not vm.is_sealed(text):
            raise carriers.Unsealed(
                "Ceph backup metadata object that is not sealed (a backup"
                " made before sealing -- see 'sealedmeta cinder reseal' -- or"
                " a forgery)")
        return self.carried(text, data, None if volume_id is None
                            else vm.context_for(backup_id, volume_id))

    def replace(self, carried, new_envelope):
        return envelope.armor(new_envelope).encode("ascii")


class CephPool:
    """The ``backup.<id>.meta`` objects of one pool, as Items."""

    def __init__(self, pool, conffile=None, user=None,
                 max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                 max_object_size=None):
        self.pool = pool
        self.conffile = conffile
        self.user = user
        self.carrier = CephMetadataCarrier(max_envelope_size, max_object_size)

    def __str__(self):
        return "Ceph pool %s" % self.pool

    def path(self, name):
        return "%s/%s" % (self.pool, name)

    def items(self):
        """One Item per metadata object, in name order. Raises
        CephPoolError when the pool cannot be listed."""
        try:
            import rados
            import rbd
        except ImportError as exc:
            raise CephPoolError("cannot read %s: the %s Python bindings are"
                                " missing (%s)" % (self, exc.name, exc)) from None
        try:
            cluster = rados.Rados(rados_id=self.user, conffile=self.conffile or "")
            cluster.connect(timeout=CONNECT_TIMEOUT)
        except rados.Error as exc:
            raise CephPoolError("cannot connect to the cluster of %s: %s"
                                % (self, exc)) from None
        try:
            try:
                ioctx = cluster.open_ioctx(self.pool)
            except rados.Error as exc:
                raise CephPoolError("cannot open %s: %s" % (self, exc)) from None
            try:
                try:
                    names = sorted(o.key for o in ioctx.list_objects()
                                   if _META_NAME.match(o.key))
                    volumes, unread = _volumes(rbd, ioctx)
                except (rados.Error, rbd.Error) as exc:
                    raise CephPoolError("cannot list %s: %s" % (self, exc)) from None
                items = [self._item(rados, ioctx, name, volumes, unread)
                         for name in names]
            finally:
                ioctx.close()
        finally:
            cluster.shutdown()
        return items

    def _item(self, rados, ioctx, name, volumes, unread):
        path = self.path(name)
        try:
            data = read_object(ioctx, name, self.carrier.max_file_size())
        except metadata_object.ObjectTooLarge as exc:
            return carriers.Item(path, malformed=str(exc))
        except rados.Error as exc:
            return carriers.Item(path, error="cannot read: %s" % exc)
        backup_id = _META_NAME.match(name).group(1)
        volume_id = volumes.get(backup_id)
        try:
            carried = self.carrier.extract_object(data, backup_id, volume_id)
        except carriers.Unsealed as exc:
            return carriers.Item(path, malformed=str(exc), unsealed=True)
        except exceptions.InvalidEnvelope as exc:
            return carriers.Item(path, malformed=str(exc))
        if volume_id is None:
            return carriers.Item(path, carried=carried, error=(
                "cannot be judged: no RBD image of backup %s in the pool names"
                " its volume, which the envelope must be sealed for%s"
                % (backup_id, "; images that could not be read: %s"
                   % "; ".join(unread) if unread else "")))
        return carriers.Item(path, carried=carried)


class _RadosObject:
    """A RADOS object as a reader: ``read(n)`` goes on where the last
    stopped."""

    def __init__(self, ioctx, name):
        self.ioctx, self.name, self.offset = ioctx, name, 0

    def read(self, length):
        data = self.ioctx.read(self.name, length=length, offset=self.offset)
        self.offset += len(data)
        return data


def read_object(ioctx, name, limit):
    """The bytes of the RADOS object *name*, through the one bounded reader
    (:func:`sealedmeta.cinder.metadata_object.read`): over *limit* by its
    ``stat``, refused unread (``ObjectTooLarge``); at most *limit* + 1
    bytes read. Raises the bindings' errors (``ObjectNotFound``, ...)."""
    size, _ = ioctx.stat(name)
    return metadata_object.read(_RadosObject(ioctx, name), limit, size)


def _volumes(rbd, ioctx):
    """``({backup id: volume id}, [image that could not be read: why])``
    from the names of the pool's RBD images. Listing the images raises
    ``rbd.Error``; an image that cannot be opened is named in the second
    list (its backups then cannot be judged), one removed while listed is
    left out."""
    volumes, unread = {}, []
    for image in rbd.RBD().list(ioctx):
        match = _IMAGE_NAME.match(image)
        if match is None:
            continue
        volume_id, backup = match.groups()
        if backup != _BASE:
            volumes[backup] = volume_id
        try:
            with rbd.Image(ioctx, image, read_only=True) as base:
                for snap in base.list_snaps():
                    found = _SNAP_NAME.match(snap["name"])
                    if found is not None:
                        volumes[found.group(1)] = volume_id
        except rbd.ImageNotFound:   # removed while listing
            continue
        except rbd.Error as exc:
            unread.append("%s (%s)" % (image, exc))
    return volumes, unread
