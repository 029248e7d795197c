"""The test suites' handle on the real servers that tools/ starts.

Shared by every suite that needs a server: :func:`run_tool` runs a tools/
script; :class:`BarbicanLauncher` starts ``tools/dev-openstack`` in the
modes a session needs, in the background, once each; :class:`DevOpenStack`
is one of its scratch directories; :class:`RedisServer` is one of
``tools/dev-redis``. A server that cannot start fails the tests that need
it, with the tool's output: nothing is skipped.
"""

import configparser
import importlib.machinery
import importlib.util
import json
import os
import re
import subprocess
import sys
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEV_OPENSTACK = os.path.join(TOP, "tools", "dev-openstack")
DEV_REDIS = os.path.join(TOP, "tools", "dev-redis")
PROBE_AGENT = "sealedmeta-dev-openstack"
ACCESS_RE = re.compile(r'"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) ')
START_TIMEOUT = 900      # seconds for a `start` (includes a one-off venv build)
# Seconds dev-openstack waits for each server to answer (its own default, 90,
# is too short for a first Keystone start on a loaded machine: 99 s seen
# with a load average of 17 on 2 cores). Hang guards, not speed limits.
SERVER_TIMEOUT = "300"


def load_tool(name):
    """A file of tools/ (a script without .py suffix, or a module) as a
    module, e.g. to test a script's functions without running it."""
    module = "_tool_" + re.sub(r"\W", "_", name)
    loader = importlib.machinery.SourceFileLoader(module, os.path.join(TOP, "tools", name))
    spec = importlib.util.spec_from_loader(module, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def run_tool(tool, *args, timeout=START_TIMEOUT):
    """(exit status, combined output) of a tools/ script."""
    # sys.executable: the tools need only the standard library, and the
    # same Python version keeps the hash of the cached server venv stable.
    try:
        proc = subprocess.run([sys.executable, tool] + list(args),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True,
                              timeout=timeout, cwd=TOP)
    except subprocess.TimeoutExpired as exc:
        return -1, "timed out after %ss\n%s" % (timeout, exc.output or "")
    return proc.returncode, proc.stdout


class DevOpenStack:
    """One scratch directory of ``tools/dev-openstack`` and its servers."""

    def __init__(self, mode, directory):
        self.mode = mode
        self.dir = str(directory)
        self.start_output = None

    # -- files --------------------------------------------------------------

    @property
    def env(self):
        """env.json, read afresh (a restart may change it)."""
        with open(os.path.join(self.dir, "env.json")) as handle:
            return json.load(handle)

    @property
    def conf_path(self):
        return os.path.join(self.dir, "sealedmeta.conf")

    @property
    def barbican_url(self):
        return self.env["barbican_url"]

    @property
    def keystone(self):
        return self.mode == "keystone"

    def secrets(self):
        """Every password of env.json: none may ever appear in a message."""
        env = self.env
        found = []
        for key in ("admin", "sealedmeta", "norole", "peer",
                    "barbican_service_user"):
            if env.get(key):
                found.append(env[key]["password"])
        return found

    def write_conf(self, path, changes=None, remove=()):
        """A copy of sealedmeta.conf with ``{(section, option): value}`` set
        and ``(section, option)`` pairs removed; returns *path*."""
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

    # -- access logs ------------------------------------------------------

    def access_lines(self, service="barbican"):
        """Request lines of DIR/<service>-access.log, probes left out."""
        path = os.path.join(self.dir, "%s-access.log" % service)
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except FileNotFoundError:
            return []
        return [line for line in lines
                if ACCESS_RE.search(line) and PROBE_AGENT not in line]

    def count(self, service):
        return len(self.access_lines(service))

    def counts(self, settle=0.5):
        """{service: request lines} after *settle* seconds (lines are
        written before each response, the wait is only a safety margin)."""
        if settle:
            time.sleep(settle)
        services = ["barbican"] + (["keystone"] if self.keystone else [])
        return {s: self.count(s) for s in services}

    # -- servers ------------------------------------------------------------

    def stop(self, only=None):
        args = ["stop", "--dir", self.dir] + (["--only", only] if only else [])
        status, output = run_tool(DEV_OPENSTACK, *args, timeout=120)
        if status != 0:
            pytest.fail("dev-openstack %s failed (exit %s):\n%s"
                        % (" ".join(args), status, output), pytrace=False)
        return output

    def start(self):
        """Start what is stopped (same DIR, database, port when free)."""
        before = self.barbican_url if os.path.exists(
            os.path.join(self.dir, "env.json")) else None
        args = ["start", "--dir", self.dir, "--timeout", SERVER_TIMEOUT]
        status, output = run_tool(DEV_OPENSTACK, *args)
        if status != 0:
            pytest.fail("dev-openstack %s failed (exit %s):\n%s"
                        % (" ".join(args), status, output), pytrace=False)
        after = self.barbican_url
        if before is not None and after != before:
            pytest.fail("Barbican came back on another port (%s, was %s): the"
                        " old one was taken; the running agents cannot follow"
                        % (after, before), pytrace=False)
        return output

    def status(self):
        return run_tool(DEV_OPENSTACK, "status", "--dir", self.dir, timeout=60)

    # -- direct clients (no sealedmeta code) ---------------------------------

    def barbican_client(self, user="sealedmeta"):
        """python-barbicanclient, straight to this Barbican, as *user*
        (a key of env.json: "sealedmeta", the store's user, or "peer",
        another member of its project)."""
        from barbicanclient import client as bc_client
        from keystoneauth1 import session as ks_session
        env = self.env
        if self.keystone:
            from keystoneauth1 import identity
            cred = env[user]
            auth = identity.Password(
                auth_url=cred["auth_url"], username=cred["username"],
                password=cred["password"],
                user_domain_name=cred["user_domain_name"],
                project_name=cred["project_name"],
                project_domain_name=cred["project_domain_name"])
            sess = ks_session.Session(auth=auth)
            return bc_client.Client(session=sess, endpoint=env["barbican_url"],
                                    version="v1", microversion="1.1")
        headers = dict(env["noauth_headers"],
                       **{"X-User-Id": env["noauth_user_ids"][user]})
        sess = ks_session.Session(additional_headers=headers)
        return bc_client.Client(session=sess, endpoint=env["barbican_url"],
                                project_id=env["project_id"], version="v1",
                                microversion="1.1")


MODES = ("noauth", "keystone")


def modes_needed(items, fixtures):
    """The dev-openstack modes the collected test *items* need. *fixtures*
    maps a fixture name to the modes it may give; a test parametrized over
    that fixture needs only its own parameter's mode."""
    needed = set()
    for item in items:
        names = getattr(item, "fixturenames", ())
        callspec = getattr(item, "callspec", None)
        for fixture, modes in fixtures.items():
            if fixture in names:
                param = callspec.params.get(fixture) if callspec else None
                needed.update([param] if param in modes else modes)
    return needed


class BarbicanLauncher:
    """Starts ``tools/dev-openstack`` in each mode of *needed* ("noauth",
    "keystone") in parallel, in the background, once; :meth:`get` waits for
    one. *directory(mode)* gives a mode's scratch directory. With *keep*,
    the servers are left running at the end (a directory reused by hand)."""

    def __init__(self, directory, needed=(), keep=False):
        self._directory = directory
        self.needed = set(needed)
        self.keep = keep
        self.procs = {}
        self.dirs = {}
        self.ready = {}   # mode -> DevOpenStack, or the failure's message

    def start_all(self):
        for mode in sorted(self.needed):
            if mode in self.procs:
                continue
            self.dirs[mode] = str(self._directory(mode))
            args = [sys.executable, DEV_OPENSTACK, "start", "--dir", self.dirs[mode],
                    "--timeout", SERVER_TIMEOUT]
            if mode == "keystone":
                args.append("--keystone")
            self.procs[mode] = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, text=True, cwd=TOP)

    def get(self, mode):
        if mode not in self.ready:
            self.needed.add(mode)
            self.start_all()
            self.ready[mode] = self._wait(mode)
        if isinstance(self.ready[mode], str):
            pytest.fail(self.ready[mode], pytrace=False)
        return self.ready[mode]

    def _wait(self, mode):
        proc = self.procs[mode]
        try:
            output, _ = proc.communicate(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            output = "timed out after %ss\n%s" % (START_TIMEOUT, proc.communicate()[0])
        if proc.returncode != 0:
            return ("cannot start Barbican (%s mode): dev-openstack start --dir %s"
                    " exited %s:\n%s" % (mode, self.dirs[mode], proc.returncode,
                                         output))
        env = DevOpenStack(mode, self.dirs[mode])
        env.start_output = output
        sys.stderr.write("\n[%s] %s\n" % (mode, output.strip().splitlines()[-1]))
        return env

    def stop_all(self):
        if self.keep:
            return
        for mode, proc in self.procs.items():
            if proc.poll() is None:
                # SIGTERM: `start` then stops what it had started.
                proc.terminate()
                try:
                    proc.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.communicate()
            status, output = run_tool(DEV_OPENSTACK, "stop", "--dir",
                                      self.dirs[mode], timeout=120)
            if status != 0:
                sys.stderr.write("dev-openstack stop --dir %s failed: %s\n"
                                 % (self.dirs[mode], output))


class RedisServer:
    """One scratch directory of ``tools/dev-redis``; *url* once started."""

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
