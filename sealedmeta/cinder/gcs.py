"""``SealedGoogleBackupDriver``: Cinder's ``GoogleBackupDriver`` (Google Cloud Storage),
with sealed metadata.

cinder.conf::

    [DEFAULT]
    backup_driver = sealedmeta.cinder.gcs.SealedGoogleBackupDriver

Needs what the stock driver needs: google-api-python-client;
cinder.backup.drivers.gcs itself does not import without it, and so neither
does this module (the other sealed classes are not affected). Backups made
by the stock class before the switch stay restorable, deletable and
exportable (see :func:`sealedmeta.cinder.mixin.claim_legacy_backups`).
"""

import io

from cinder.backup.drivers import gcs as _stock

from sealedmeta.cinder import metadata_object
from sealedmeta.cinder import mixin


class SealedGoogleBackupDriver(mixin.SealedMetadataMixin, _stock.GoogleBackupDriver):
    """GoogleBackupDriver whose backups' ``volume_meta`` is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.gcs.GoogleBackupDriver",
        "cinder.backup.drivers.google.GoogleBackupDriver",
    )

    def read_object_bounded(self, bucket, name, limit):
        """One ranged GET (``bytes=0-<limit>``, Cinder's own downloader and
        retries): the object's size comes with it (``Content-Range``), and
        an object over *limit* is refused having received at most *limit* +
        1 bytes; the rest of its body is never asked for."""
        received, size = self._first_range(bucket, name, limit)
        return metadata_object.read(received, limit, size)

    @_stock.gcs_logger
    def _first_range(self, bucket, name, limit):
        received = io.BytesIO()
        request = self.conn.objects().get_media(bucket=bucket, object=name)
        # Cinder's downloader asks for bytes=<done>-<done + chunksize>.
        downloader = _stock.GoogleMediaIoBaseDownload(received, request,
                                                      chunksize=limit)
        status, _ = downloader.next_chunk(num_retries=self.num_retries)
        received.seek(0)
        return received, getattr(status, "total_size", None)

