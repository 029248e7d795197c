"""A whole OpenStack on 127.0.0.1, started once per test session.

``tools/dev-cloud start`` (Keystone, Barbican, Glance, Swift, Ceph,
RabbitMQ, PostgreSQL, redis, Cinder with two backup hosts; sealed Swift
backups, ``per_user``) in a new directory; if it cannot start, every test
fails with its output. After the session it is stopped and the stop is
checked: no process of the cloud left, none of its ports listening, the
/etc/ceph keyring copy removed.

``SEALEDMETA_CLOUD_DIR`` names a directory to keep the cloud in between runs
(started when down, left running, not checked).

``SEALEDMETA_CLOUD_DRIVER`` (``sealed``, the default, or ``stock``) is the
``--driver`` of that start: with ``stock`` Cinder runs its own Swift backup
driver (a cloud before the switch) and the tests of what sealing protects
must fail; that is how they are shown to be able to fail.
"""

import os
import shutil
import socket
import tempfile

import pytest

from tests.cloud import tenant
from tests.cloud.helpers import Cloud
from tests.dev_servers import TOP, load_tool, run_tool

DEV_CLOUD = os.path.join(TOP, "tools", "dev-cloud")
# Hang guards only: a first run also builds the venvs (minutes), and other
# test runs on the same cores can make each service ten times slower.
SERVICES_TIMEOUT = 1200
START_TIMEOUT = 3600
STOP_TIMEOUT = 600
DRIVERS = ("sealed", "stock")


def _driver():
    driver = os.environ.get("SEALEDMETA_CLOUD_DRIVER", "sealed")
    if driver not in DRIVERS:
        pytest.fail("SEALEDMETA_CLOUD_DRIVER is %r, not one of %s" % (driver, ", ".join(DRIVERS)),
                    pytrace=False)
    return driver


def _listening(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
    except OSError:
        return False


def _check_stopped(directory, env):
    """What a stop must leave: nothing of this cloud running or listening,
    no file of it outside DIR."""
    tool = load_tool("dev-cloud")
    problems = []
    left = tool.cloud_processes(directory)
    if left:
        problems.append("processes of the cloud still alive: %s" % left)
    ports = sorted(set(env["ports"].values()) | {
        int(url.rsplit(":", 1)[1].split("/")[0]) for url in
        (env["endpoints"][k] for k in ("keystone", "barbican", "swift", "redis", "radosgw"))})
    listening = [p for p in ports if _listening(p)]
    if listening:
        problems.append("ports still listening: %s" % listening)
    if os.path.exists(env["ceph"]["etc_keyring"]):
        problems.append("%s was not removed" % env["ceph"]["etc_keyring"])
    devices = env["swift"]["devices"]
    if not devices.startswith(directory + os.sep) and os.path.exists(devices):
        problems.append("Swift's devices %s (outside DIR) were not removed" % devices)
    return problems


@pytest.fixture(scope="session")
def cloud():
    driver = _driver()
    keep = os.environ.get("SEALEDMETA_CLOUD_DIR")
    directory = os.path.abspath(keep) if keep else tempfile.mkdtemp(prefix="sm-cloud-")
    status, output = run_tool(DEV_CLOUD, "start", "--dir", directory, "--backup", "swift",
                              "--driver", driver, "--timeout", str(SERVICES_TIMEOUT),
                              timeout=START_TIMEOUT)
    if status != 0:
        # start stopped what it had started
        if not keep:
            shutil.rmtree(directory, ignore_errors=True)
        pytest.fail("tools/dev-cloud start failed (exit %s):\n%s" % (status, output),
                    pytrace=False)
    handle = Cloud(directory, output)
    yield handle
    if keep:
        return
    status, output = run_tool(DEV_CLOUD, "stop", "--dir", directory, timeout=STOP_TIMEOUT)
    problems = [] if status == 0 else ["stop exited %s:\n%s" % (status, output)]
    problems += _check_stopped(directory, handle.env)
    shutil.rmtree(directory, ignore_errors=True)
    if problems:
        pytest.fail("tools/dev-cloud stop left things behind:\n" + "\n".join(problems),
                    pytrace=False)


def pytest_terminal_summary(terminalreporter):
    for line in FIGURES:
        terminalreporter.write_line("figure: %s" % line)


FIGURES = []


@pytest.fixture(scope="session", autouse=True)
def _start_figures(cloud):
    """The start's own timings, printed at the end of the run."""
    timings = cloud.env["timings"]
    FIGURES.append("dev-cloud services up in %s s (total %s s)" % (
        timings["services_s"], timings["total_s"]))
    FIGURES.append("dev-cloud per service (s): " + ", ".join(
        "%s %s" % (k[:-2], v) for k, v in timings.items()
        if k.endswith("_s") and not k.endswith("_ready_at_s")
        and k not in ("services_s", "total_s")))


@pytest.fixture(scope="module")
def member(cloud):
    """A member of a new tenant project, for one test module; its volumes
    and backups are deleted after it."""
    with tenant.Tenant(cloud) as made:
        yield made
