"""The Tempest tests run against tools/dev-cloud, for stestr (tools/dev-tempest
runs it with this directory as its test path): all of ``tempest.api.volume``,
three backup modules of cinder-tempest-plugin, and the subclasses of
``no_network`` and ``sealed_records``. Imported only inside the Tempest venv.
"""

import os

import tempest

PLUGIN_MODULES = (
    "cinder_tempest_plugin.api.volume.test_volume_backup",
    "cinder_tempest_plugin.api.volume.admin.test_volume_backup",
    "cinder_tempest_plugin.rbac.v3.test_backups",
)


def load_tests(loader, tests, pattern):
    # As tempest's own test_discover does: discovery inside the installed
    # package, its parent directory as the top level.
    base = os.path.dirname(os.path.dirname(os.path.abspath(tempest.__file__)))
    suite = loader.discover(os.path.join(base, "tempest", "api", "volume"),
                            pattern=pattern or "test*.py", top_level_dir=base)
    local = (__name__ + ".no_network", __name__ + ".sealed_records")
    for name in PLUGIN_MODULES + local:
        suite.addTests(loader.loadTestsFromName(name))
    return suite
