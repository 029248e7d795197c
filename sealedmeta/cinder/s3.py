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


class _S3Objects:
    """How the sealed S3 class reads and replaces its metadata object."""

    def remove_superseded_versions(self, backup, name):
        """After *name* was rewritten: remove its older versions in the
        backup's bucket when it is versioned, which would keep the old
        contents readable by version id. Returns ``(removed, left)``:
        version ids, and ``"<version id> (<why>)"`` for each version that
        could not be removed."""
        bucket = backup["container"]
        removed, left = [], []
        paginator = self.conn.get_paginator("list_object_versions")
        for page in paginator.paginate(Bucket=bucket, Prefix=name):
            for version in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if version.get("Key") != name or version.get("IsLatest"):
                    continue
                version_id = version["VersionId"]
                try:
                    self.conn.delete_object(Bucket=bucket, Key=name,
                                            VersionId=version_id)
                except _stock.boto_exc.ClientError as exc:
                    left.append("%s (%s)" % (version_id, exc.response.get(
                        "Error", {}).get("Code") or exc))
                else:
                    removed.append(version_id)
        return removed, left


class SealedS3BackupDriver(mixin.SealedMetadataMixin, _S3Objects,
                           _stock.S3BackupDriver):
    """S3BackupDriver whose backups' ``volume_meta`` is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.s3.S3BackupDriver",
    )
