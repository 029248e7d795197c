"""``SealedPosixBackupDriver``: Cinder's ``PosixBackupDriver`` (a POSIX file system directory),
with sealed metadata.

cinder.conf::

    [DEFAULT]
    backup_driver = sealedmeta.cinder.posix.SealedPosixBackupDriver

Needs what the stock driver needs: nothing beyond Cinder. Backups made by
the stock class before the switch stay restorable, deletable and exportable
(see :func:`sealedmeta.cinder.mixin.claim_legacy_backups`).
"""

from cinder.backup.drivers import posix as _stock

from sealedmeta.cinder import mixin


class SealedPosixBackupDriver(mixin.SealedMetadataMixin, _stock.PosixBackupDriver):
    """PosixBackupDriver whose backups' ``volume_meta`` is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.posix.PosixBackupDriver",
    )
