"""Fixtures of the functional tests that run against REAL servers.

Barbican (alone, and behind a real Keystone) is started on 127.0.0.1 by
``tools/dev-openstack`` once per test session, in scratch directories under
pytest's base temporary directory, and stopped when the session ends. A
server that cannot start makes every test that needs it fail with the tool's
output (it prints the end of the server log): nothing is ever skipped.

Both modes are started in parallel, and only when a collected test needs
them. Helpers the tests use are attributes of the fixtures; the server handle
itself lives in ``tests/dev_servers.py``, shared with tests/reliability:

* ``barbican_noauth`` / ``barbican_keystone`` -> :class:`DevOpenStack`;
  ``barbican`` is the same, parametrized over both modes;
* ``agents`` -> :class:`Agents`: long-running Python processes, each holding
  its own key store object and :class:`sealedmeta.Sealer` (its own cache),
  driven over stdin/stdout with one JSON object per line;
* ``sealedmeta_cli`` -> runs the ``sealedmeta`` console script.
"""

import base64
import json
import os
import queue
import re
import subprocess
import sys
import threading
import uuid

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if TOP not in sys.path:  # tests/functional is not a package: reach tests.*
    sys.path.insert(0, TOP)

from tests import dev_servers  # noqa: E402
from tests import sm_cli  # noqa: E402
AGENT_TIMEOUT = 120      # seconds for one agent request


def _local_only():
    """Keep every HTTP client of this process and its children off any
    configured proxy: the servers are on 127.0.0.1."""
    for var in ("no_proxy", "NO_PROXY"):
        hosts = [h for h in os.environ.get(var, "").split(",") if h]
        for host in ("127.0.0.1", "localhost"):
            if host not in hosts:
                hosts.append(host)
        os.environ[var] = ",".join(hosts)


_local_only()

# Fixtures that need Barbican, and the modes each may need.
BARBICAN_FIXTURES = {"barbican_noauth": ("noauth",),
                     "barbican_keystone": ("keystone",),
                     "barbican": dev_servers.MODES}


@pytest.fixture(scope="session")
def _dev_openstack(request, tmp_path_factory):
    """Both modes start in parallel, at the first test that needs one."""
    launcher = dev_servers.BarbicanLauncher(
        lambda mode: tmp_path_factory.mktemp("dev-openstack-%s" % mode),
        dev_servers.modes_needed(request.session.items, BARBICAN_FIXTURES))
    request.addfinalizer(launcher.stop_all)
    return launcher


@pytest.fixture(scope="session")
def barbican_noauth(_dev_openstack):
    """Barbican without Keystone (X-Project-Id / X-Roles headers)."""
    return _dev_openstack.get("noauth")


@pytest.fixture(scope="session")
def barbican_keystone(_dev_openstack):
    """Barbican behind a real Keystone (castellan keystone_password auth)."""
    return _dev_openstack.get("keystone")


@pytest.fixture(params=dev_servers.MODES)
def barbican(request, _dev_openstack):
    """Each test runs against both modes."""
    return _dev_openstack.get(request.param)


@pytest.fixture
def ring_name(request):
    """A keyring name unique to the test (all tests share the servers)."""
    base = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    return "ft-%s-%s" % (base, uuid.uuid4().hex[:8])


# ---------------------------------------------------------------------------
# agents: long-running processes, each with its own Sealer and cache

AGENT_SRC = r'''
import base64, collections, json, sys, time

from sealedmeta import exceptions, inspect, keystores
from sealedmeta.cmd.main import SealedMetaApp
from sealedmeta.sealer import Sealer

conf_file, keyring = sys.argv[1], sys.argv[2]
cache_ttl, refresh_interval = float(sys.argv[3]), float(sys.argv[4])


class Counting:
    """Counts get_keyring calls (the Sealer's cache refreshes)."""

    def __init__(self, inner):
        self.inner, self.loads = inner, 0

    def get_keyring(self, name):
        self.loads += 1
        return self.inner.get_keyring(name)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def ring_doc(ring):
    return [v.as_dict() for v in ring.versions]


try:
    conf = SealedMetaApp.load_conf([conf_file])
    store = Counting(keystores.load(conf))
    sealer = Sealer(store, keyring=keyring, cache_ttl=cache_ttl,
                    refresh_interval=refresh_interval, clock=time.monotonic)
except Exception as exc:
    out({"error": type(exc).__name__, "message": str(exc), "startup": True})
    sys.exit(1)
out({"ready": True, "pid": __import__("os").getpid()})


def seal_one(metadata, context):
    env = sealer.seal(metadata, context)
    return base64.b64encode(env).decode(), inspect(env).key_version


for line in sys.stdin:
    req = json.loads(line)
    op = req.pop("op")
    age = (None if sealer._loaded_at is None
           else time.monotonic() - sealer._loaded_at)
    loads_before = store.loads
    t0 = time.monotonic()
    try:
        if op == "seal":
            env, version = seal_one(req["metadata"], req["context"])
            res = {"envelope": env, "version": version}
        elif op == "seal_many":
            # keep: return the envelopes; tolerate: go on after an error
            # (recorded) instead of answering with it; interval: seconds
            # between two seals.
            versions = collections.Counter()
            envs, errors = [], []
            for i in range(req["n"]):
                if i and req.get("interval"):
                    time.sleep(req["interval"])
                ctx = dict(req["context"], i=str(i))
                try:
                    env, version = seal_one({"i": i, "pad": "x" * 64}, ctx)
                except Exception as exc:
                    if not req.get("tolerate"):
                        raise
                    errors.append([type(exc).__name__, str(exc)])
                    continue
                versions[version] += 1
                if req.get("keep"):
                    envs.append([env, ctx])
            res = {"versions": {str(k): v for k, v in versions.items()},
                   "envelopes": envs, "errors": errors}
        elif op == "open":
            res = {"metadata": sealer.open(base64.b64decode(req["envelope"]),
                                           req["context"])}
        elif op == "open_many":
            failures = []
            for i, (env, ctx) in enumerate(req["items"]):
                try:
                    sealer.open(base64.b64decode(env), ctx)
                except Exception as exc:
                    failures.append([i, type(exc).__name__, str(exc)])
            res = {"failures": failures}
        elif op == "refresh":
            res = {"ring": ring_doc(sealer.refresh())}
        elif op == "ring":
            res = {"ring": ring_doc(store.inner.get_keyring(keyring))}
        elif op == "create":
            res = {"ring": ring_doc(store.inner.create_keyring(keyring))}
        elif op == "rotate":
            res = {"version": store.inner.rotate(keyring).as_dict()}
        elif op == "set_state":
            res = {"version": store.inner.set_state(
                keyring, req["version"], req["state"]).as_dict()}
        elif op == "token":
            sess = getattr(getattr(store.inner, "session", None), "ks_session", None)
            res = {"token": sess.get_token() if sess is not None and
                   getattr(sess, "auth", None) is not None and
                   hasattr(sess.auth, "get_access") else None}
        elif op == "exit":
            out({"bye": True})
            break
        else:
            raise ValueError("unknown op %r" % op)
    except Exception as exc:
        res = {"error": type(exc).__name__, "message": str(exc),
               "classes": [c.__name__ for c in type(exc).__mro__]}
    res.update(age=age, loads=store.loads - loads_before,
               seconds=time.monotonic() - t0)
    out(res)
'''


class AgentError(AssertionError):
    pass


class Agent:
    """One agent process: ``call(op, **args)`` -> the answer (a dict)."""

    def __init__(self, name, conf_path, keyring, cache_ttl, refresh_interval,
                 log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, "agent-%s.log" % name)
        self._log = open(self.log_path, "w")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", AGENT_SRC, conf_path, keyring,
             str(cache_ttl), str(refresh_interval)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            text=True, bufsize=1, cwd=log_dir, env=env)
        self.cache_ttl = cache_ttl
        self._lines = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.ready = None

    def wait_ready(self):
        if self.ready is None:
            self.ready = self._answer(AGENT_TIMEOUT)
            if not self.ready.get("ready"):
                raise AgentError("agent %s did not start: %r\n%s"
                                 % (self.name, self.ready, self.log_tail()))
        return self

    @property
    def pid(self):
        return self.proc.pid

    def _read(self):
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def log_tail(self, lines=30):
        self._log.flush()
        try:
            with open(self.log_path) as handle:
                return "\n".join(handle.read().splitlines()[-lines:])
        except OSError:
            return ""

    def _answer(self, timeout):
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AgentError("agent %s gave no answer in %ss\n%s"
                             % (self.name, timeout, self.log_tail())) from None
        if line is None:
            raise AgentError("agent %s exited (status %s)\n%s"
                             % (self.name, self.proc.wait(), self.log_tail()))
        return json.loads(line)

    def send(self, op, **args):
        self.proc.stdin.write(json.dumps(dict(args, op=op)) + "\n")
        self.proc.stdin.flush()

    def receive(self, timeout=AGENT_TIMEOUT):
        return self._answer(timeout)

    def call(self, op, timeout=AGENT_TIMEOUT, **args):
        """The answer; errors come back as {"error": ..., "message": ...}."""
        self.send(op, **args)
        return self.receive(timeout)

    def ok(self, op, timeout=AGENT_TIMEOUT, **args):
        """The answer of a call that must succeed."""
        answer = self.call(op, timeout=timeout, **args)
        if "error" in answer:
            raise AgentError("agent %s: %s failed: %s: %s" % (
                self.name, op, answer["error"], answer["message"]))
        return answer

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("exit")
                self.proc.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Agents:
    def __init__(self, log_dir):
        self.log_dir = str(log_dir)
        self.started = []

    def start(self, name, conf_path, keyring, cache_ttl=300,
              refresh_interval=1.0):
        return self.start_many([name], conf_path, keyring, cache_ttl,
                               refresh_interval)[0]

    def start_many(self, names, conf_path, keyring, cache_ttl=300,
                   refresh_interval=1.0):
        """Start several agents at once (their imports overlap)."""
        new = []
        for name in names:
            agent = Agent(name, conf_path, keyring, cache_ttl,
                          refresh_interval, self.log_dir)
            self.started.append(agent)
            new.append(agent)
        return [agent.wait_ready() for agent in new]

    def close(self):
        for agent in self.started:
            agent.close()


@pytest.fixture
def agents(tmp_path):
    group = Agents(tmp_path)
    yield group
    group.close()


# ---------------------------------------------------------------------------
# the sealedmeta CLI

class CLI:
    """The ``sealedmeta`` console script in a child process."""

    def __init__(self, tmp_path):
        self.command = [sm_cli.console_script()]
        # Keep the file store's defaults (and default lock directory) out of
        # the user's home.
        self.env = sm_cli.cli_env(tmp_path)

    def run(self, *args, check=True, timeout=120):
        proc = subprocess.run(self.command + list(args), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL, timeout=timeout,
                              env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError("sealedmeta %s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), proc.returncode, proc.stdout,
                                    proc.stderr))
        return proc


@pytest.fixture
def sealedmeta_cli(tmp_path):
    return CLI(tmp_path)


def b64(data):
    return base64.b64encode(data).decode()


# ---------------------------------------------------------------------------
# key stores in the test process

@pytest.fixture
def open_store():
    """``open_store(conf_path)`` -> a key store built from that file."""
    from sealedmeta import keystores
    from sealedmeta.cmd.main import SealedMetaApp
    opened = []

    def factory(conf_path):
        store = keystores.load(SealedMetaApp.load_conf([str(conf_path)]))
        opened.append(store)
        return store
    yield factory
    for store in opened:
        store.close()


@pytest.fixture
def rotate_in_new_process(sealedmeta_cli):
    """``rotate_in_new_process(conf_path, name)`` -> (how, new version)."""
    return lambda conf_path, name: _rotate_in_new_process(
        sealedmeta_cli, conf_path, name)


def _rotate_in_new_process(cli, conf_path, name):
    """Rotate *name* with ``sealedmeta rekey`` in a process of its own.

    Returns (how, new version number).
    """
    proc = cli.run("--config-file", str(conf_path), "rekey", name, "-f", "json")
    return "sealedmeta rekey", int(json.loads(proc.stdout)["version"])
