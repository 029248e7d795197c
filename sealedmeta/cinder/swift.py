"""``SealedSwiftBackupDriver``: Cinder's ``SwiftBackupDriver`` (OpenStack Swift),
with sealed metadata.

cinder.conf::

    [DEFAULT]
    backup_driver = sealedmeta.cinder.swift.SealedSwiftBackupDriver

Needs what the stock driver needs: python-swiftclient, which is not a Cinder
dependency; without it this module imports, but the class cannot be
instantiated, like the stock one. Backups made by the stock class before the
switch stay restorable, deletable and exportable (see
:func:`sealedmeta.cinder.mixin.claim_legacy_backups`).
"""

from cinder.backup.drivers import swift as _stock

from sealedmeta.cinder import mixin


class SealedSwiftBackupDriver(mixin.SealedMetadataMixin, _stock.SwiftBackupDriver):
    """SwiftBackupDriver whose backups' ``volume_meta`` is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.swift.SwiftBackupDriver",
    )


mixin.claim_legacy_backups(SealedSwiftBackupDriver)
