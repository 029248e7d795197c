"""``SealedS3BackupDriver``: Cinder's ``S3BackupDriver`` (S3 object storage),
with sealed metadata.

cinder.conf::

    [DEFAULT]
    backup_driver = sealedmeta.cinder.s3.SealedS3BackupDriver

Needs what the stock driver needs: boto3; without it this module imports,
but the class cannot be instantiated, like the stock one. Backups made by
the stock class before the switch stay restorable, deletable and exportable
(see :func:`sealedmeta.cinder.mixin.claim_legacy_backups`).
"""

from cinder.backup.drivers import s3 as _stock

from sealedmeta.cinder import mixin


class SealedS3BackupDriver(mixin.SealedMetadataMixin, _stock.S3BackupDriver):
    """S3BackupDriver whose backups' ``volume_meta`` is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.s3.S3BackupDriver",
    )


mixin.claim_legacy_backups(SealedS3BackupDriver)
