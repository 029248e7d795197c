"""Tempest's volume test classes that set ``create_default_network = True``
and so skip as a whole when Neutron is absent, although only their tests
marked ``@utils.services('compute')`` need a server (and those still skip
here, through ``[service_available] nova = false``). Each subclass only turns
the default network off; the upstream classes still run and skip, as
listed in tests/cloud/tempest-skips.txt.

Not listed: VolumesExtendAttachedTest and EncryptedVolumesExtendAttachedTest,
whose every test attaches a volume to a server.
"""

from tempest.api.volume import test_volumes_actions
from tempest.api.volume import test_volumes_backup
from tempest.api.volume import test_volumes_snapshots
from tempest.api.volume.admin import test_snapshot_manage
from tempest.api.volume.admin import test_volumes_actions as admin_actions


class VolumesActionsNoNetworkTest(test_volumes_actions.VolumesActionsTest):
    create_default_network = False


class VolumesBackupsNoNetworkTest(test_volumes_backup.VolumesBackupsTest):
    create_default_network = False


class VolumesSnapshotNoNetworkTest(test_volumes_snapshots.VolumesSnapshotTestJSON):
    create_default_network = False


class SnapshotManageAdminNoNetworkTest(test_snapshot_manage.SnapshotManageAdminTest):
    create_default_network = False


class VolumesActionsAdminNoNetworkTest(admin_actions.VolumesActionsTest):
    create_default_network = False
