"""A killed ``sealedmeta cinder audit --state`` resumes without reading
again what it finished.

The real command line runs in a child process over a Cinder database in an
SQLite file: one real sealed posix backup and copies of its row, each with
a metadata object sealed for it (the fleet builder of
``benchmarks/audit_memory.py``, run in a child of its own). The audit is
SIGKILLed at a moment chosen from its own progress -- once its state file
holds a chosen number of finished rows -- and run again with the same
state file.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BACKUPS = 600
HANG = 600       # a hang guard only, never a speed limit
ATTEMPTS = 5     # kills that came too late (the audit had finished) allowed

BUILD = """
import json, sys
sys.path.insert(0, %(benchmarks)r)
import audit_memory
fleet = audit_memory.Fleet(%(workdir)r)
fleet.grow(%(backups)d)
print(json.dumps({"conf": fleet.cinder_conf(%(conf)r),
                  "posix": fleet.conf.backup_posix_path}))
"""


@pytest.fixture(scope="module")
def fleet_db(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("fleet")
    out = subprocess.run(
        [sys.executable, "-c", BUILD % {
            "benchmarks": os.path.join(TOP, "benchmarks"), "workdir": str(workdir),
            "backups": BACKUPS, "conf": str(workdir / "cinder.conf")}],
        capture_output=True, text=True, timeout=HANG)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def audit_cmd(conf, state):
    return [os.path.join(os.path.dirname(sys.executable), "sealedmeta"),
            "--config-file", conf, "cinder", "audit", "--workers", "2",
            "--state", state, "-f", "json"]


def run(conf, state, report):
    with open(report, "w") as out:
        proc = subprocess.run(audit_cmd(conf, state), stdout=out,
                              stderr=subprocess.PIPE, text=True, timeout=HANG)
    with open(report) as handle:
        return proc.returncode, {row["backup_id"]: row for row in json.load(handle)}


def state_rows(state):
    """Backup ids of the whole rows of a state file (header excluded)."""
    ids = []
    with open(state, "rb") as handle:
        for line in handle.read().split(b"\n")[1:]:
            try:
                ids.append(json.loads(line)["backup_id"])
            except (ValueError, KeyError):
                pass   # the half-written last line of a kill
    return ids


def lines_in(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().count(b"\n")
    except FileNotFoundError:
        return 0


def kill_after(conf, state, rows, report):
    """Start the audit; SIGKILL it once *state* has *rows* finished rows.
    False when it finished first."""
    with open(report, "w") as out:
        proc = subprocess.Popen(audit_cmd(conf, state), stdout=out,
                                stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + HANG
    try:
        while lines_in(state) < rows + 1 and proc.poll() is None:
            assert time.monotonic() < deadline, "the audit hung"
            time.sleep(0.002)
        if proc.poll() is not None:
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=HANG)
        return proc.returncode == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_killed_audit_resumes_without_reading_finished_backups(fleet_db, tmp_path):
    conf = fleet_db["conf"]
    code, whole = run(conf, str(tmp_path / "whole.state"), str(tmp_path / "whole.json"))
    assert code == 0 and len(whole) == BACKUPS
    assert {row["class"] for row in whole.values()} == {"valid"}

    rng = random.Random()
    state = str(tmp_path / "killed.state")
    for attempt in range(ATTEMPTS):
        if os.path.exists(state):
            os.unlink(state)
        if kill_after(conf, state, rng.randint(BACKUPS // 10, BACKUPS // 2),
                      str(tmp_path / "killed.json")):
            break
    else:
        pytest.fail("the audit finished before each of %d kills" % ATTEMPTS)
    finished = state_rows(state)
    assert 0 < len(finished) < BACKUPS

    # Proof that the rerun does not read them: their objects are gone, so a
    # read would report them missing.
    removed = 0
    for backup_id in finished:
        path = os.path.join(fleet_db["posix"], "fleet", backup_id[:2],
                            "backup_%s_metadata" % backup_id)
        if os.path.exists(path):     # the one real backup lives elsewhere
            os.unlink(path)
            removed += 1
    assert removed >= len(finished) - 1

    code, resumed = run(conf, state, str(tmp_path / "resumed.json"))
    assert code == 0
    assert resumed == whole
    # Each backup recorded once: the killed run's rows, then the rest.
    assert sorted(state_rows(state)) == sorted(whole)
