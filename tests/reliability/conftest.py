"""Fixtures of the reliability suite; prints the measured figures at the end.

Real servers on 127.0.0.1, started by the repository's tools (nothing is
mocked, nothing is skipped: a server that cannot start FAILS the tests that
need it, with the tool's output):

* ``keystone_barbican`` -- Barbican behind a real Keystone
  (``tools/dev-openstack start --keystone``): secret hygiene, faults;
* ``fast_barbican`` -- Barbican in its no-auth pipeline (the same Barbican
  server and key store code, no token round trip per process): the SIGKILL
  loops and the load run, where process start-up time matters. Set
  ``SEALEDMETA_RELIABILITY_BARBICAN=keystone`` to run those against the
  Keystone-backed one instead;
* ``redis_server`` -- ``tools/dev-redis``.

Both Barbican modes start in parallel on first use. With
``SEALEDMETA_RELIABILITY_DIR=DIR`` the servers live in ``DIR/keystone``,
``DIR/noauth`` and ``DIR/redis``, are reused when already running, and are
left running at the end (for repeated runs by hand).
"""

import os
import time

import pytest

from tests import dev_servers
from tests.dev_servers import RedisServer
from tests.reliability import figures


# Fixtures that need a server: tests using one run after the others.
SERVER_FIXTURES = ("keystone_barbican", "fast_barbican", "redis_server")


def pytest_collection_modifyitems(items):
    """Tests that need no server first (file order kept within each
    group): they run while the servers start."""
    items.sort(key=lambda item: any(
        name in SERVER_FIXTURES for name in getattr(item, "fixturenames", ())))


def pytest_terminal_summary(terminalreporter):
    lines = figures.lines()
    if lines:
        terminalreporter.section("sealedmeta reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


def fast_mode():
    mode = os.environ.get("SEALEDMETA_RELIABILITY_BARBICAN", "noauth")
    if mode not in ("noauth", "keystone"):
        raise pytest.UsageError("SEALEDMETA_RELIABILITY_BARBICAN must be"
                                " noauth or keystone")
    return mode


@pytest.fixture(scope="session", autouse=True)
def _launcher(request, tmp_path_factory):
    """Starts (in the background, at the first test) the servers the
    collected tests need, so they come up while the local tests run."""
    reuse = os.environ.get("SEALEDMETA_RELIABILITY_DIR")
    needed = dev_servers.modes_needed(request.session.items, {
        "keystone_barbican": ("keystone",), "fast_barbican": (fast_mode(),)})
    base = reuse or (str(tmp_path_factory.mktemp("servers")) if needed else None)
    launcher = dev_servers.BarbicanLauncher(
        lambda mode: os.path.join(base, mode), needed, keep=bool(reuse))
    request.addfinalizer(launcher.stop_all)
    launcher.start_all()   # both modes start in parallel
    return launcher


@pytest.fixture(scope="session")
def keystone_barbican(_launcher):
    return _launcher.get("keystone")


@pytest.fixture(scope="session")
def fast_barbican(_launcher):
    return _launcher.get(fast_mode())


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def unique_name(prefix):
    return "%s-%d-%s" % (prefix, int(time.time()), os.urandom(3).hex())
