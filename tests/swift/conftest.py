"""Cinder's real Swift backup drivers against a real Swift on 127.0.0.1.

Once per test process: the Cinder of tests/cinder (SQLite in memory, fake:/
RPC), Keystone + Barbican (tools/dev-openstack --keystone), a Swift behind
that Keystone and a Swift with tempauth (tools/dev-swift). A server that
does not start fails the run. Per test: a container of its own in the
account, emptied and removed afterwards, and the [DEFAULT] backup_swift_*
settings of the test's auth mode.
"""

import json
import os
import shutil
import tempfile
import threading
import time
import uuid

import pytest
from oslo_config import cfg

from tests.cinder.conftest import keys  # noqa: F401 - also sets Cinder up
from tests.cinder.conftest import pytest_sessionfinish  # noqa: F401
from tests.cinder.conftest import sealedmeta_conf  # noqa: F401
from tests.dev_servers import DEV_OPENSTACK, TOP, run_tool
from tests.swift import helpers

from cinder import context as cinder_context  # noqa: E402
from sealedmeta.cinder import swift as sealed_swift  # noqa: E402,F401 - its options

CONF = cfg.CONF
DEV_SWIFT = os.path.join(TOP, "tools", "dev-swift")
FIGURES = {}


# Hang guards only, generous: eight test suites may share two cores.
SERVER_TIMEOUT = "300"


def _start(results, key, tool, *args):
    t0 = time.monotonic()
    results[key] = run_tool(tool, *args, "--timeout", SERVER_TIMEOUT,
                            timeout=900) + (time.monotonic() - t0,)


def _rss_mib(env):
    return sum(env["rss_kib"].values()) / 1024


@pytest.fixture(scope="session")
def stores():
    """Keystone, a Keystone-backed Swift and a tempauth Swift, started once.

    SEALEDMETA_SWIFT_DIR names a directory to keep them in between runs
    (started when down, left running); by default a new one, stopped after.
    """
    keep = os.environ.get("SEALEDMETA_SWIFT_DIR")
    base = keep or tempfile.mkdtemp(prefix="sm-swift-")
    ostack, ks_swift, ta_swift = (os.path.join(base, d) for d in ("os", "ks", "ta"))
    results = {}
    started = []
    try:
        # The tempauth Swift needs nothing else: start it alongside Keystone.
        ta = threading.Thread(target=_start, args=(results, "ta", DEV_SWIFT, "start",
                                                   "--dir", ta_swift))
        ta.start()
        started.append(("ta", ta_swift))
        _start(results, "os", DEV_OPENSTACK, "start", "--dir", ostack, "--keystone")
        started.append(("os", ostack))
        if results["os"][0] == 0:
            _start(results, "ks", DEV_SWIFT, "start", "--dir", ks_swift, "--keystone", ostack)
            started.append(("ks", ks_swift))
        ta.join()
        for key, (status, output, _) in results.items():
            if status != 0:
                pytest.fail("starting %s failed (exit %s):\n%s" % (key, status, output),
                            pytrace=False)
        envs = {}
        for key, directory in (("ks", ks_swift), ("ta", ta_swift)):
            with open(os.path.join(directory, "env.json")) as handle:
                envs[key] = json.load(handle)
            FIGURES["%s swift start-up s (dev-swift's own figure)" % key] = (
                envs[key]["timings"].get("start_s"))
            FIGURES["%s swift RSS MiB (4 servers)" % key] = round(_rss_mib(envs[key]))
        yield envs
    finally:
        for key, directory in reversed(started if not keep else ()):
            if key == "os":
                run_tool(DEV_OPENSTACK, "stop", "--dir", directory, timeout=120)
            else:
                run_tool(DEV_SWIFT, "stop", "--dir", directory, "--purge", timeout=120)
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


def pytest_terminal_summary(terminalreporter):
    for name, value in FIGURES.items():
        terminalreporter.write_line("figure: %s = %s" % (name, value))


@pytest.fixture(scope="session")
def tenant(stores):
    """The tenant in Keystone: token, ids, and a swiftclient on its account."""
    return helpers.Tenant(stores["ks"])


@pytest.fixture(params=["per_user", "single_user"])
def mode(request):
    return request.param


@pytest.fixture
def container():
    return "backups-%s" % uuid.uuid4().hex[:12]


def _swift_overrides(stores, mode, container):
    ks, ta = stores["ks"], stores["ta"]
    values = {
        "backup_driver": helpers.SEALED_SWIFT,
        "backup_swift_object_size": helpers.CHUNK,
        "backup_swift_block_size": helpers.SHA_BLOCK,
        "backup_swift_container": container,
        "backup_swift_enable_progress_timer": False,
        "backup_swift_auth": mode,
    }
    if mode == "per_user":
        values["backup_swift_url"] = ks["storage_url_prefix"]
    else:
        values.update({
            "backup_swift_auth_url": ta["auth_url"],
            "backup_swift_auth_version": "1",
            "backup_swift_user": ta["tempauth"]["tester"]["user"],
            "backup_swift_key": ta["tempauth"]["tester"]["key"],
        })
    return values


@pytest.fixture
def cloud(stores, tenant, mode, container, tmp_path, sealedmeta_conf):  # noqa: F811
    overrides = _swift_overrides(stores, mode, container)
    for name, value in overrides.items():
        CONF.set_override(name, value)
    ctxt = cinder_context.RequestContext(
        user_id=tenant.user_id, project_id=tenant.project_id,
        auth_token=tenant.token, is_admin=True)
    conn = tenant.conn() if mode == "per_user" else helpers.tempauth_conn(stores["ta"])
    cloud = helpers.SwiftCloud(ctxt, str(tmp_path / "volumes"), conn, container)
    yield cloud
    cloud.remove_containers()
    for name in overrides:
        CONF.clear_override(name)
