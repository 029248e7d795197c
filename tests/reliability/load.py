"""Load: N agent processes seal and open against one real Barbican while
another process rekeys every few seconds.

::

    python tests/reliability/load.py [--dir DEV_OPENSTACK_DIR | --keystone]
        [--agents 4] [--ops 2000] [--rate 0] [--rekey-interval 3]
        [--cache-ttl 5] [--refresh-interval 1] [--json FILE]

Without ``--dir`` a Barbican (``--keystone``: behind Keystone) is started
with tools/dev-openstack in a temporary directory and stopped at the end.

Each agent is its own process with its own key store object and
:class:`sealedmeta.Sealer` (its own cache, as a backup agent has). One
operation = seal a Cinder-like metadata mapping for a fresh backup context,
open it again, publish it for the next agent, and open the last envelope the
previous agent published (sealed by another process, possibly under a
version this one has not seen yet). ``--rate`` paces each agent (operations
per second; 0 = as fast as it goes). The rekeyer process calls
``sealedmeta.admin.rekey`` (under the configured coordination lock, as
``sealedmeta rekey`` does) every ``--rekey-interval`` seconds.

Printed (and written as JSON): operations, seals, opens, failures by type,
versions sealed under, rotations, throughput (operations/s, total and per
agent), seal/open latency percentiles, and the requests Barbican (and
Keystone) received during the run, from their access logs, by method and
path. Exit status 1 when any seal or open failed.
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEV_OPENSTACK = os.path.join(TOP, "tools", "dev-openstack")
ACCESS_RE = re.compile(r'"(?P<method>\S+) (?P<path>\S+) [^"]*" (?P<status>\d{3}) ')
PROBE_AGENT = "sealedmeta-dev-openstack"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")

AGENT = r'''
import collections, json, os, sys, time
from sealedmeta import Sealer, atomic, inspect, keystores
from sealedmeta.cmd.main import SealedMetaApp

conf, ring, index, agents, ops, rate, ttl, interval, shared, go = sys.argv[1:11]
index, agents, ops = int(index), int(agents), int(ops)
rate, ttl, interval = float(rate), float(ttl), float(interval)
store = keystores.load(SealedMetaApp.load_conf([conf]))
sealer = Sealer(store, ring, cache_ttl=ttl, refresh_interval=interval)
sealer.open(sealer.seal({}, {}), {})   # warm: keyring read, key fetched
mine = os.path.join(shared, "agent-%d" % index)
peer = os.path.join(shared, "agent-%d" % ((index - 1) % agents))
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
failures = collections.Counter()
examples = {}
versions = collections.Counter()
seal_ms, open_ms = [], []
seals = opens = peer_opens = 0


def fail(kind, exc):
    name = "%s %s" % (kind, type(exc).__name__)
    failures[name] += 1
    examples.setdefault(name, str(exc)[:300])


t0 = time.monotonic()
for i in range(ops):
    if rate:
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    ctx = {"backup_id": "a%d-%06d" % (index, i), "volume_id": "v%d" % (i % 17)}
    meta = {"volume_id": ctx["volume_id"], "size": i, "glance": {
        "image_id": "img-%d" % (i % 5), "os_distro": "debian",
        "billing_code": "BC-%d" % i}}
    t = time.perf_counter()
    try:
        raw = sealer.seal(meta, ctx)
    except Exception as exc:
        fail("seal", exc)
        continue
    seal_ms.append((time.perf_counter() - t) * 1000)
    seals += 1
    versions[inspect(raw).key_version] += 1
    t = time.perf_counter()
    try:
        assert sealer.open(raw, ctx) == meta
        opens += 1
    except Exception as exc:
        fail("open", exc)
    open_ms.append((time.perf_counter() - t) * 1000)
    atomic.write_file(mine, json.dumps([raw.hex(), ctx]).encode(), durable=False)
    try:
        with open(peer) as handle:
            other_hex, other_ctx = json.load(handle)
    except (OSError, ValueError):
        continue
    try:
        sealer.open(bytes.fromhex(other_hex), other_ctx)
        peer_opens += 1
    except Exception as exc:
        fail("peer open", exc)
elapsed = time.monotonic() - t0


def pct(values, p):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(p / 100 * len(values)))], 3) \
        if values else None


print(json.dumps({
    "agent": index, "ops": ops, "seals": seals, "opens": opens,
    "peer_opens": peer_opens, "failures": dict(failures), "examples": examples,
    "versions": {str(k): v for k, v in sorted(versions.items())},
    "elapsed_s": elapsed,
    "seal_ms": {"p50": pct(seal_ms, 50), "p99": pct(seal_ms, 99),
                "max": pct(seal_ms, 100)},
    "open_ms": {"p50": pct(open_ms, 50), "p99": pct(open_ms, 99),
                "max": pct(open_ms, 100)},
}), flush=True)
'''

REKEYER = r'''
import json, os, sys, time
from sealedmeta import admin, coordination, keystores
from sealedmeta.cmd.main import SealedMetaApp

conf_path, ring, interval, go, stop = sys.argv[1:6]
interval = float(interval)
conf = SealedMetaApp.load_conf([conf_path])
store = keystores.load(conf)
print("ready", flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
rotations, errors, durations = [], [], []
next_at = time.monotonic() + interval
while not os.path.exists(stop):
    if time.monotonic() < next_at:
        time.sleep(0.01)
        continue
    next_at += interval
    t = time.monotonic()
    try:
        with coordination.Coordinator.from_config(conf) as coord:
            rotations.append(admin.rekey(store, ring, coord).version.number)
        durations.append(time.monotonic() - t)
    except Exception as exc:
        errors.append("%s: %s" % (type(exc).__name__, exc))
print(json.dumps({"rotations": rotations, "errors": errors,
                  "rotate_s_max": max(durations) if durations else None}),
      flush=True)
'''


def access_lines(directory, service):
    path = os.path.join(directory, "%s-access.log" % service)
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    except FileNotFoundError:
        return []


def classify(lines):
    counts = collections.Counter()
    for line in lines:
        if PROBE_AGENT in line:
            continue
        m = ACCESS_RE.search(line)
        if m:
            path = UUID_RE.sub("ID", m.group("path").split("?")[0].rstrip("/"))
            counts["%s %s" % (m.group("method"), path or "/")] += 1
    return counts


def child_env():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = TOP + (os.pathsep + env["PYTHONPATH"]
                               if env.get("PYTHONPATH") else "")
    return env


def wait_ready(proc, what):
    line = proc.stdout.readline()
    if line.strip() != "ready":
        raise SystemExit("%s did not start: %r\n%s" % (what, line, proc.stderr.read()))


def run(args):
    started_dir = None
    directory = args.dir
    if directory is None:
        started_dir = directory = tempfile.mkdtemp(prefix="sealedmeta-load-")
        cmd = [sys.executable, DEV_OPENSTACK, "start", "--dir", directory]
        if args.keystone:
            cmd.append("--keystone")
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
        if proc.returncode != 0:
            raise SystemExit("dev-openstack start failed:\n%s" % proc.stdout)
    work = tempfile.mkdtemp(prefix="sealedmeta-load-work-")
    try:
        return _run(args, directory, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if started_dir:
            subprocess.run([sys.executable, DEV_OPENSTACK, "stop", "--dir",
                            started_dir], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            shutil.rmtree(started_dir, ignore_errors=True)


def _run(args, directory, work):
    with open(os.path.join(directory, "env.json")) as handle:
        mode = "keystone" if json.load(handle).get("keystone_url") else "noauth"
    conf = os.path.join(work, "sealedmeta.conf")
    with open(os.path.join(directory, "sealedmeta.conf")) as handle:
        text = handle.read()
    with open(conf, "w") as handle:
        handle.write(text + "\n[coordination]\nbackend_url = file://%s\n"
                     % os.path.join(work, "locks"))
    os.chmod(conf, 0o600)
    sys.path.insert(0, TOP)
    from sealedmeta import keystores
    from sealedmeta.cmd.main import SealedMetaApp
    ring = args.keyring or "load-%d-%s" % (time.time(), os.urandom(3).hex())
    store = keystores.load(SealedMetaApp.load_conf([conf]))
    store.create_keyring(ring)
    first_version = store.get_keyring(ring).active.number
    shared = os.path.join(work, "shared")
    os.mkdir(shared)
    go, stop = os.path.join(work, "go"), os.path.join(work, "stop")
    env = child_env()
    rekeyer = subprocess.Popen(
        [sys.executable, "-c", REKEYER, conf, ring, str(args.rekey_interval),
         go, stop], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env)
    agents = [subprocess.Popen(
        [sys.executable, "-c", AGENT, conf, ring, str(i), str(args.agents),
         str(args.ops), str(args.rate), str(args.cache_ttl),
         str(args.refresh_interval), shared, go],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for i in range(args.agents)]
    for i, proc in enumerate(agents):
        wait_ready(proc, "agent %d" % i)
    wait_ready(rekeyer, "rekeyer")
    services = ["barbican"] + (["keystone"] if mode == "keystone" else [])
    before = {s: len(access_lines(directory, s)) for s in services}
    t0 = time.monotonic()
    open(go, "w").close()
    results = []
    for proc in agents:
        out, err = proc.communicate(timeout=args.timeout)
        if proc.returncode != 0:
            raise SystemExit("an agent failed (exit %d):\n%s" % (proc.returncode, err))
        results.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.monotonic() - t0
    open(stop, "w").close()
    out, err = rekeyer.communicate(timeout=args.timeout)
    if rekeyer.returncode != 0:
        raise SystemExit("the rekeyer failed:\n%s" % err)
    rekey = json.loads(out.strip().splitlines()[-1])
    requests = {}
    for service in services:
        lines = access_lines(directory, service)[before[service]:]
        requests[service] = dict(sorted(classify(lines).items()))
    failures = collections.Counter()
    versions = collections.Counter()
    for r in results:
        failures.update(r["failures"])
        versions.update(r["versions"])
    ops = sum(r["seals"] for r in results)
    summary = {
        "mode": mode, "agents": args.agents, "ops_per_agent": args.ops,
        "rate_per_agent": args.rate or "unpaced",
        "rekey_interval_s": args.rekey_interval, "cache_ttl_s": args.cache_ttl,
        "refresh_interval_s": args.refresh_interval,
        "wall_s": round(wall, 2),
        "seals": ops, "opens": sum(r["opens"] for r in results),
        "peer_opens": sum(r["peer_opens"] for r in results),
        "failures": dict(failures), "failed_opens": sum(
            v for k, v in failures.items() if "open" in k),
        "failure_examples": {k: v for r in results for k, v in r["examples"].items()},
        "ops_per_s_total": round(ops / wall, 1),
        "ops_per_s_per_agent": [round(r["seals"] / r["elapsed_s"], 1)
                                for r in results],
        "seal_ms_p50_p99_max": [[r["seal_ms"]["p50"], r["seal_ms"]["p99"],
                                 r["seal_ms"]["max"]] for r in results],
        "open_ms_p50_p99_max": [[r["open_ms"]["p50"], r["open_ms"]["p99"],
                                 r["open_ms"]["max"]] for r in results],
        "rotations": len(rekey["rotations"]), "rekey_errors": rekey["errors"],
        "rotate_s_max": rekey["rotate_s_max"],
        "versions_sealed_under": dict(sorted(versions.items(), key=lambda kv: int(kv[0]))),
        "first_version": first_version,
        "barbican_requests": sum(requests["barbican"].values()),
        "requests": requests,
    }
    store.close()
    return summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", help="a running tools/dev-openstack directory")
    parser.add_argument("--keystone", action="store_true",
                        help="without --dir: start Barbican behind Keystone")
    parser.add_argument("--keyring", help="keyring name (default: a new one)")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--ops", type=int, default=2000,
                        help="seal/open operations per agent (default 2000)")
    parser.add_argument("--rate", type=float, default=0,
                        help="operations per second per agent (0: unpaced)")
    parser.add_argument("--rekey-interval", type=float, default=3.0)
    parser.add_argument("--cache-ttl", type=float, default=5.0)
    parser.add_argument("--refresh-interval", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args(argv)
    summary = run(args)
    print(json.dumps(summary, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(summary, handle, indent=2)
    bad = summary["failures"] or summary["rekey_errors"]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
