"""A real one-host Ceph (tools/dev-ceph: mon, OSD, radosgw), started once for
the test process, and the Cinder sandbox of tests/cinder (SQLite, fake RPC,
volumes as files) whose fixtures are reused here."""

import json
import os
import tempfile

import pytest

# The Cinder sandbox (configures Cinder once per process) and its fixtures.
from tests.cinder.conftest import cloud, ctxt, keys, sealedmeta_conf  # noqa: F401
from tests.cinder.conftest import pytest_sessionfinish as _cinder_sessionfinish
from tests.dev_servers import run_tool, TOP

DEV_CEPH = os.path.join(TOP, "tools", "dev-ceph")


class DevCeph:
    """One scratch directory of ``tools/dev-ceph`` and its daemons."""

    def __init__(self, directory):
        self.dir = directory
        self.start_output = None

    @property
    def env(self):
        with open(os.path.join(self.dir, "env.json")) as handle:
            return json.load(handle)

    def start(self):
        status, output = run_tool(DEV_CEPH, "start", "--dir", self.dir, timeout=600)
        self.start_output = output
        if status != 0:
            self.stop()
            pytest.fail("dev-ceph start failed (exit %s):\n%s" % (status, output),
                        pytrace=False)
        return output

    def stop(self):
        return run_tool(DEV_CEPH, "stop", "--dir", self.dir, timeout=120)


_CEPH = {}


@pytest.fixture(scope="session")
def ceph():
    """The running cluster (started on first use, stopped at the end)."""
    if "ceph" not in _CEPH:
        directory = os.environ.get("SEALEDMETA_CEPH_DIR") or tempfile.mkdtemp(
            prefix="sealedmeta-ceph-")
        os.makedirs(directory, exist_ok=True)
        dev = DevCeph(directory)
        _CEPH["ceph"] = dev       # stopped at session end even if start failed
        dev.start()
    return _CEPH["ceph"]


def pytest_sessionfinish(session, exitstatus):
    dev = _CEPH.pop("ceph", None)
    if dev is not None:
        status, output = dev.stop()
        if status != 0:
            print("dev-ceph stop failed: %s" % output)
    _cinder_sessionfinish(session, exitstatus)
