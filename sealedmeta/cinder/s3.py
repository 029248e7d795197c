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

from oslo_config import cfg

from cinder.backup.drivers import s3 as _stock

from sealedmeta.cinder import metadata_object
from sealedmeta.cinder import mixin

CONF = cfg.CONF


@_stock._wrap_exception
def _call(method, **kwargs):
    # Errors as the stock reader raises them: S3ClientError (wrapping
    # botocore's ClientError), S3ConnectionFailure.
    return method(**kwargs)


class _Body:
    """A streamed body whose errors are the stock reader's."""

    def __init__(self, body):
        self.body = body

    def read(self, size):
        return _call(self.body.read, amt=size)


def _invalid_range(exc):
    cause = exc.__context__
    return (isinstance(cause, _stock.boto_exc.ClientError)
            and cause.response.get("Error", {}).get("Code") == "InvalidRange")


class S3MetadataPort:
    """The store port (:mod:`sealedmeta.cinder.port`) of S3: a bounded
    ranged read, and the noncurrent versions of a versioned bucket."""

    def read_object_bounded(self, bucket, name, limit):
        """One ranged GET (``Range: bytes=0-<limit>``), streamed: an object
        whose size (``ContentRange``) is over *limit* is refused before a
        byte of its body is read, and the store sends at most *limit* + 1
        bytes of any object."""
        args = {"Bucket": bucket, "Key": name}
        if (CONF.backup_s3_sse_customer_algorithm
                and CONF.backup_s3_sse_customer_key):   # as the stock reader
            args.update(SSECustomerAlgorithm=CONF.backup_s3_sse_customer_algorithm,
                        SSECustomerKey=CONF.backup_s3_sse_customer_key)
        try:
            response = _call(self.conn.get_object, Range="bytes=0-%d" % limit, **args)
        except _stock.S3ClientError as exc:
            # An empty object has no byte 0: the range is not satisfiable.
            if (_invalid_range(exc)
                    and _call(self.conn.head_object, **args).get("ContentLength") == 0):
                return b""
            raise
        body = response["Body"]
        try:
            return metadata_object.read(_Body(body), limit, metadata_object.reported_size(
                response.get("ContentRange"), response.get("ContentLength")))
        finally:
            body.close()

    def remove_superseded_metadata(self, backup):
        """After the metadata object was rewritten: remove its older
        versions in the backup's bucket when it is versioned, which would
        keep the old contents readable by version id. Returns ``(removed,
        left)``: version ids, and ``"<version id> (<why>)"`` for each
        version that could not be removed."""
        bucket = backup["container"]
        name = self._metadata_filename(backup)
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


class SealedS3BackupDriver(S3MetadataPort, mixin.SealedMetadataMixin,
                           _stock.S3BackupDriver):
    """S3BackupDriver whose backups' ``volume_meta`` is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.s3.S3BackupDriver",
    )
