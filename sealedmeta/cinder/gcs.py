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

from cinder.backup.drivers import gcs as _stock

from sealedmeta.cinder import mixin


class SealedGoogleBackupDriver(mixin.SealedMetadataMixin, _stock.GoogleBackupDriver):
    """GoogleBackupDriver whose backups' ``volume_meta`` is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.gcs.GoogleBackupDriver",
        "cinder.backup.drivers.google.GoogleBackupDriver",
    )
