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

import json
import os
import subprocess
import sys
import time

import pytest

from tests.dev_servers import ACCESS_RE  # noqa: F401
from tests.dev_servers import DEV_OPENSTACK
from tests.dev_servers import DEV_REDIS
from tests.dev_servers import PROBE_AGENT  # noqa: F401
from tests.dev_servers import START_TIMEOUT  # noqa: F401
from tests.dev_servers import TOP  # noqa: F401
from tests.dev_servers import DevOpenStack
from tests.dev_servers import run_tool
from tests.reliability import figures



def pytest_terminal_summary(terminalreporter):
    lines = figures.lines()
    if lines:
        terminalreporter.section("sealedmeta reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


class _Launcher:
    def __init__(self, base, reuse):
        self.base = str(base) if base else None
        self.reuse = reuse
        self.procs = {}
        self.ready = {}

    def directory(self, mode):
        return os.path.join(self.base, mode)

    def kick(self, mode):
        if mode in self.procs or mode in self.ready:
            return
        args = [sys.executable, DEV_OPENSTACK, "start", "--dir",
                self.directory(mode)] + (["--keystone"] if mode == "keystone" else [])
        self.procs[mode] = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, cwd=TOP)

    def get(self, mode):
        if mode in self.ready:
            if isinstance(self.ready[mode], str):
                pytest.fail(self.ready[mode], pytrace=False)
            return self.ready[mode]
        self.kick(mode)
        proc = self.procs[mode]
        try:
            output, _ = proc.communicate(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            output = "timed out after %ss\n%s" % (START_TIMEOUT, proc.communicate()[0])
        if proc.returncode != 0:
            self.ready[mode] = ("cannot start Barbican (%s mode): dev-openstack"
                                " start --dir %s exited %s:\n%s"
                                % (mode, self.directory(mode), proc.returncode,
                                   output))
            pytest.fail(self.ready[mode], pytrace=False)
        env = DevOpenStack(mode, self.directory(mode))
        sys.stderr.write("\n[%s] %s\n" % (mode, output.strip().splitlines()[-1]))
        self.ready[mode] = env
        return env

    def stop_all(self):
        if self.reuse:
            return
        for mode, proc in self.procs.items():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
            status, output = run_tool(DEV_OPENSTACK, "stop", "--dir",
                                      self.directory(mode), timeout=120)
            if status != 0:
                sys.stderr.write("dev-openstack stop --dir %s failed: %s\n"
                                 % (self.directory(mode), output))


def fast_mode():
    mode = os.environ.get("SEALEDMETA_RELIABILITY_BARBICAN", "noauth")
    if mode not in ("noauth", "keystone"):
        raise pytest.UsageError("SEALEDMETA_RELIABILITY_BARBICAN must be"
                                " noauth or keystone")
    return mode


def _modes_needed(items):
    needed = set()
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "keystone_barbican" in names:
            needed.add("keystone")
        if "fast_barbican" in names:
            needed.add(fast_mode())
    return needed


@pytest.fixture(scope="session", autouse=True)
def _launcher(request, tmp_path_factory):
    """Starts (in the background, at the first test) the servers the
    collected tests need, so they come up while the local tests run."""
    reuse = os.environ.get("SEALEDMETA_RELIABILITY_DIR")
    needed = _modes_needed(request.session.items)
    base = reuse or (tmp_path_factory.mktemp("servers") if needed else None)
    launcher = _Launcher(base, bool(reuse))
    request.addfinalizer(launcher.stop_all)
    for mode in sorted(needed):
        launcher.kick(mode)   # both start in parallel
    return launcher


@pytest.fixture(scope="session")
def keystone_barbican(_launcher):
    return _launcher.get("keystone")


@pytest.fixture(scope="session")
def fast_barbican(_launcher):
    return _launcher.get(fast_mode())


class RedisServer:
    def __init__(self, directory):
        self.dir = str(directory)
        self.url = None

    def start(self):
        code, output = run_tool(DEV_REDIS, "start", "--dir", self.dir, timeout=120)
        if code != 0:
            pytest.fail("redis-server did not start (tools/dev-redis start):\n%s"
                        % output, pytrace=False)
        with open(os.path.join(self.dir, "redis.json")) as handle:
            self.url = json.load(handle)["url"]
        return self

    def stop(self):
        code, output = run_tool(DEV_REDIS, "stop", "--dir", self.dir, timeout=120)
        assert code == 0, output


@pytest.fixture
def redis_server(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


def unique_name(prefix):
    return "%s-%d-%s" % (prefix, int(time.time()), os.urandom(3).hex())
