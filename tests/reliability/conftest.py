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

import configparser
import json
import os
import re
import subprocess
import sys
import time

import pytest

from tests.reliability import figures

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEV_OPENSTACK = os.path.join(TOP, "tools", "dev-openstack")
DEV_REDIS = os.path.join(TOP, "tools", "dev-redis")
START_TIMEOUT = 300
PROBE_AGENT = "sealedmeta-dev-openstack"
ACCESS_RE = re.compile(r'"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) ')


def pytest_terminal_summary(terminalreporter):
    lines = figures.lines()
    if lines:
        terminalreporter.section("sealedmeta reliability figures")
        for line in lines:
            terminalreporter.write_line(line)


def run_tool(tool, *args, timeout=START_TIMEOUT):
    """(exit status, combined output) of a tools/ script."""
    try:
        proc = subprocess.run([sys.executable, tool] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True,
                              timeout=timeout, cwd=TOP)
    except subprocess.TimeoutExpired as exc:
        return -1, "timed out after %ss\n%s" % (timeout, exc.output or "")
    return proc.returncode, proc.stdout


class DevOpenStack:
    """One scratch directory of tools/dev-openstack and its servers."""

    def __init__(self, mode, directory):
        self.mode = mode
        self.dir = str(directory)

    @property
    def env(self):
        with open(os.path.join(self.dir, "env.json")) as handle:
            return json.load(handle)

    @property
    def conf_path(self):
        return os.path.join(self.dir, "sealedmeta.conf")

    @property
    def keystone(self):
        return self.mode == "keystone"

    @property
    def barbican_url(self):
        return self.env["barbican_url"]

    def passwords(self):
        env = self.env
        return [env[k]["password"] for k in
                ("admin", "sealedmeta", "norole", "barbican_service_user")
                if env.get(k)]

    def write_conf(self, path, changes=None, remove=()):
        """A copy of sealedmeta.conf with {(section, option): value} set."""
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        parser.read(self.conf_path)
        for (section, option), value in (changes or {}).items():
            if not parser.has_section(section):
                parser.add_section(section)
            parser.set(section, option, str(value))
        for section, option in remove:
            parser.remove_option(section, option)
        with open(path, "w") as handle:
            parser.write(handle)
        os.chmod(path, 0o600)
        return str(path)

    def access_lines(self, service="barbican"):
        path = os.path.join(self.dir, "%s-access.log" % service)
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            return []
        return [line for line in lines
                if ACCESS_RE.search(line) and PROBE_AGENT not in line]

    def start(self):
        status, output = run_tool(DEV_OPENSTACK, "start", "--dir", self.dir)
        if status != 0:
            pytest.fail("dev-openstack start --dir %s failed (exit %s):\n%s"
                        % (self.dir, status, output), pytrace=False)
        return output

    def stop(self, only=None):
        args = ["stop", "--dir", self.dir] + (["--only", only] if only else [])
        status, output = run_tool(DEV_OPENSTACK, *args, timeout=120)
        if status != 0:
            pytest.fail("dev-openstack %s failed (exit %s):\n%s"
                        % (" ".join(args), status, output), pytrace=False)
        return output

    def barbican_client(self):
        """python-barbicanclient straight to this Barbican (no sealedmeta)."""
        from barbicanclient import client as bc_client
        from keystoneauth1 import session as ks_session
        env = self.env
        if self.keystone:
            from keystoneauth1 import identity
            cred = env["sealedmeta"]
            auth = identity.Password(
                auth_url=cred["auth_url"], username=cred["username"],
                password=cred["password"],
                user_domain_name=cred.get("user_domain_name", "Default"),
                project_name=cred["project_name"],
                project_domain_name=cred.get("project_domain_name", "Default"))
            sess = ks_session.Session(auth=auth)
        else:
            sess = ks_session.Session(additional_headers=env["noauth_headers"])
        return bc_client.Client(session=sess, endpoint=env["barbican_url"],
                                version="v1", microversion="1.1",
                                project_id=env.get("project_id"))


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
