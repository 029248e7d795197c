"""``SealedPosixBackupDriver``: Cinder's ``PosixBackupDriver`` (a POSIX file system directory),
with sealed metadata.

cinder.conf::

    [DEFAULT]
    backup_driver = sealedmeta.cinder.posix.SealedPosixBackupDriver

Needs what the stock driver needs: nothing beyond Cinder. Backups made by
the stock class before the switch stay restorable, deletable and exportable
(see :func:`sealedmeta.cinder.mixin.claim_legacy_backups`).
"""

import stat

from oslo_config import cfg

from cinder.backup.drivers import posix as _stock

from sealedmeta import safefs
from sealedmeta.cinder import mixin
from sealedmeta.cinder import port

CONF = cfg.CONF


class PosixMetadataPort:
    """The store port (:mod:`sealedmeta.cinder.port`) of a tree of files
    (posix, NFS): the metadata object is replaced atomically."""

    def write_metadata_object(self, backup, metadata):
        """Atomic, durable replacement of the metadata file (below the
        driver's ``backup_path``) keeping the old file's owner and mode,
        through directory handles (:func:`sealedmeta.safefs.replace`: a
        directory swapped for a symbolic link cannot steer the write out of
        the tree; root writes another user's file as that user)."""
        name = self._metadata_filename(backup)
        tree = safefs.Tree(self.backup_path)
        try:
            where = safefs.Location(tree, safefs.split_relative(backup["container"]), name)
            with where.directory() as dir_fd:
                st = where.lstat(dir_fd)
                if not stat.S_ISREG(st.st_mode):
                    raise port.WriteRefused("the metadata object is not a regular file")
                safefs.replace(dir_fd, name, port.encode(metadata), st,
                               timeout=CONF.sealedmeta.user_write_timeout)
        except safefs.FileChanged:
            raise port.WriteRefused("the metadata object changed while being resealed;"
                                    " left alone (run again)") from None
        except safefs.NotOwner as exc:
            raise port.WriteRefused("the metadata object is %s; run reseal as the backup"
                                    " service's user or root" % exc) from None
        except safefs.WriteAbandoned as exc:
            raise port.WriteRefused("the metadata object was not resealed: %s"
                                    % exc) from None
        finally:
            tree.close()


class SealedPosixBackupDriver(PosixMetadataPort, mixin.SealedMetadataMixin,
                              _stock.PosixBackupDriver):
    """PosixBackupDriver whose backups' ``volume_meta`` is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.posix.PosixBackupDriver",
    )
