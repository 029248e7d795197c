"""The store port of the sealed backup drivers: the only way restore,
export, ``mark-legacy``, the audit and ``reseal`` reach a backup's metadata
object, whatever the store.

:class:`MetadataPort` says what a store gives:

``read_metadata_object(backup)``
    the stored metadata, bounded (read by the one reader,
    :func:`sealedmeta.cinder.metadata_object.read`), unjudged: a dict whose
    ``volume_meta`` is the stored value. ``InvalidBackup`` naming the object
    when it is missing, too large or not a JSON object; the store's own
    errors otherwise.
``write_metadata_object(backup, metadata)``
    replace the object whole with *metadata* (what the read gave, with
    ``volume_meta`` changed); :class:`WriteRefused` saying why when the
    store refuses to (the object changed meanwhile, another owner).
``list_backup_objects(backup)``
    the names of the data objects stored under the backup's prefix, which
    the object's chunk list must name; None where the metadata object holds
    no identity or chunk list (Ceph).
``remove_superseded_metadata(backup)``
    after a rewrite: delete the older versions of the object that a
    versioned store keeps and that are not sealed. ``(removed, left)``:
    what was removed, and each version left with the reason.

and, for the tools that read every tenant's backups with the service's own
credentials (reseal, the audit):

``project_drivers()`` (a class method)
    None when one driver reaches every backup; else a function
    ``project_id -> driver`` acting in that project (Swift ``per_user``).
``connect_as_service()``
    connect a driver made for the service's admin context, where the
    store connects only for a user's request (Swift).

:class:`ChunkedObjectPort` implements it for Cinder's chunked drivers
through their own object readers and writers (one PUT replaces an object on
Swift, S3 and GCS); each store's module (``posix``/``nfs``, ``swift``,
``s3``, ``gcs``, ``ceph``) overrides what its store does otherwise. Cinder's
private driver methods are called here and in those modules only.
"""

import abc
import json

from oslo_config import cfg

from cinder import exception
from sealedmeta import exceptions
from sealedmeta.cinder import metadata_object

CONF = cfg.CONF


class WriteRefused(exceptions.SealedMetaError):
    """The store refused to replace a metadata object: the message says why."""


class MetadataPort(abc.ABC):
    """What a sealed driver class implements for its store (see the module).
    Abstract (Cinder's drivers are ABCs too): a class that misses a method
    of the port cannot be made."""

    @abc.abstractmethod
    def read_metadata_object(self, backup):
        """The stored metadata, bounded and unjudged."""

    @abc.abstractmethod
    def write_metadata_object(self, backup, metadata):
        """Replace the object whole with *metadata*."""

    @abc.abstractmethod
    def list_backup_objects(self, backup):
        """The data objects under the backup's prefix (None: not kept)."""

    def remove_superseded_metadata(self, backup):
        # Unversioned stores (posix, NFS: a rename replaced the file).
        return [], []

    @classmethod
    def project_drivers(cls):
        return None

    def connect_as_service(self):  # noqa: B027 - a default, not a gap
        """Nothing by default: the store's driver connected when it was
        made (Swift overrides it)."""


class ChunkedObjectPort(MetadataPort):
    """The ``<prefix>_metadata`` JSON object of a ``ChunkedBackupDriver``."""

    def read_metadata_object(self, backup):
        filename = self._metadata_filename(backup)
        limit = CONF.sealedmeta.max_metadata_object_size
        try:
            data = self.read_object_bounded(backup["container"], filename, limit)
            metadata = metadata_object.loads(data, limit)
        except metadata_object.ObjectError as exc:
            raise exception.InvalidBackup(
                reason="metadata object %s of backup %s: %s"
                % (filename, backup["id"], exc))
        except Exception as exc:
            if metadata_object.missing(exc):
                raise exception.InvalidBackup(
                    reason="metadata object %s of backup %s is missing from"
                    " %s of the backup store"
                    % (filename, backup["id"], backup["container"]))
            raise
        if not isinstance(metadata, dict):
            raise exception.InvalidBackup(
                reason="the metadata object of backup %s is not a JSON object" % backup["id"])
        return metadata

    def read_object_bounded(self, container, name, limit):
        """The bytes of object *name* of *container* by
        :func:`metadata_object.read`: at most *limit*, or ``ObjectTooLarge``
        -- unread when the store reports the size first. Here through the
        driver's own reader, a file (posix, NFS: ``fstat``, then a bounded
        read); the classes of stores whose readers return a whole object
        (Swift, S3, GCS) override it."""
        with self._get_object_reader(container, name) as reader:
            return metadata_object.read(reader, limit, metadata_object.file_size(reader))

    def write_metadata_object(self, backup, metadata):
        # One PUT replaces an object whole on Swift, S3 and GCS.
        with self._get_object_writer(backup["container"],
                                     self._metadata_filename(backup)) as writer:
            writer.write(encode(metadata))

    def list_backup_objects(self, backup):
        prune = {self._metadata_filename(backup), self._sha256_filename(backup)}
        return [name for name in self._generate_object_names(backup)
                if name not in prune]


def encode(metadata):
    """The bytes of a rewritten ``_metadata`` object."""
    return json.dumps(metadata, sort_keys=True, indent=2).encode("utf-8")
