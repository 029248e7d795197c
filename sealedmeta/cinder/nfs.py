"""``SealedNFSBackupDriver``: Cinder's ``NFSBackupDriver`` (an NFS share),
with sealed metadata.

cinder.conf::

    [DEFAULT]
    backup_driver = sealedmeta.cinder.nfs.SealedNFSBackupDriver

Needs what the stock driver needs: nothing beyond Cinder (and an NFS client
to mount the share). Backups made by the stock class before the switch stay
restorable, deletable and exportable (see
:func:`sealedmeta.cinder.mixin.claim_legacy_backups`).
"""

from cinder.backup.drivers import nfs as _stock

from sealedmeta.cinder import mixin
from sealedmeta.cinder import posix


class SealedNFSBackupDriver(posix.PosixTree, posix.PosixMetadataPort,
                            mixin.SealedMetadataMixin, _stock.NFSBackupDriver):
    """NFSBackupDriver whose backups' ``volume_meta`` is sealed (its
    metadata object replaced atomically, its files reached under checked
    names through directory handles, as posix's)."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.nfs.NFSBackupDriver",
    )
