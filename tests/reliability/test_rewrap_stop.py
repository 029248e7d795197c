"""``sealedmeta rewrap`` run as root while a real local user stops every
process of theirs (``kill(-1, SIGSTOP)`` in a loop).

Root replaces a file another user owns, in a directory that user can
change, from a forked child that has become that user; the user may signal
that child. Stopped, it held the root process up for good: the parent read
the child's pipe and waited for it with no deadline. Now the parent sees the
stop, kills the child, reports that file and goes on.

The tree holds the user's directory of envelopes they own between two
root-only directories of envelopes (walked before and after it). The real
console script runs as root with ``user_write_timeout`` set, under an outer
guard (:data:`HANG`: a run still going then hung; it is killed, with every
process of the user). The verdict: the run ends with a report; each of the
user's files is rewrapped or reported failed as stopped (or past the
deadline) and still opens; every root file is rewrapped; no process of the
user is left. Whether the loop meets a child at all is a matter of
scheduling: a try in which no child was stopped says nothing and is
repeated with more files (tests/tries.py).
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile

from sealedmeta import FileKeyStore
from sealedmeta import Sealer

from tests import race
from tests import sm_cli
from tests import tries
from tests.reliability import figures

RING = "kr"
ROOT_FILES = 4
# User files per try; a try in which no child was stopped is repeated
# with more.
USER_FILES = (16, 64, 256)
# Seconds after which a rewrap still running counts as hung: a guard
# against a test that never ends, not a measure of speed (the run takes a
# few seconds).
HANG = 300
STOPPED = "was stopped (signal %d) and has been killed" % signal.SIGSTOP
LATE = "did not finish within"


def test_rewrap_as_root_goes_on_when_the_user_stops_the_writer():
    race.require_root()
    base = tempfile.mkdtemp(prefix="sealedmeta-stop-")
    os.chmod(base, 0o755)
    try:
        with race.local_user() as (uid, gid):
            tries.until_conclusive(
                lambda files, attempt: _try(base, attempt, files, uid, gid),
                USER_FILES)
    finally:
        shutil.rmtree(base)


def _file(path, data, owner):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chown(path, *owner)
    os.chmod(path, 0o644)


def _try(base, attempt, user_files, uid, gid):
    work = pathlib.Path(base, "try%d" % attempt)
    work.mkdir(0o755)
    keys = os.path.join(work, "keys")
    store = FileKeyStore(keys)
    store.create_keyring(RING)
    sealer = Sealer(store, keyring=RING, cache_ttl=0)
    tree = os.path.join(work, "tree")
    os.mkdir(tree, 0o755)
    expect = {}  # path -> owner
    for sub, owner, count in (("a-root", (0, 0), ROOT_FILES),
                              ("u", (uid, gid), user_files),
                              ("z-root", (0, 0), ROOT_FILES)):
        directory = os.path.join(tree, sub)
        os.mkdir(directory, 0o700 if owner == (0, 0) else 0o755)
        os.chown(directory, *owner)
        for i in range(count):
            path = os.path.join(directory, "e%03d" % i)
            _file(path, sealer.seal({"n": i}, {"backup_id": "%s-%d" % (sub, i)}),
                  owner)
            expect[path] = owner
    store.rotate(RING)
    config = os.path.join(work, "sealedmeta.conf")
    with open(config, "w") as handle:
        handle.write("[sealedmeta]\nuser_write_timeout = 10\n")

    stopper = race.Stopper(uid, gid)
    proc = sm_cli.start(["rewrap", tree, "-f", "json"], work, keys, config)
    try:
        out, err = proc.communicate(timeout=HANG)
    except subprocess.TimeoutExpired:
        proc.kill()
        left = race.processes_of(uid, but=(stopper.proc.pid,))
        for pid in left:  # they hold the output pipes open
            os.kill(pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError(
            "rewrap still running after %d s: hung, with %d process(es) of"
            " the user left (stopped writers)" % (HANG, len(left)))
    finally:
        sent = stopper.stop()
        for pid in race.processes_of(uid):  # only what this test started
            os.kill(pid, signal.SIGKILL)
    left = race.processes_of(uid)
    out, err = out.decode(), err.decode()
    assert proc.returncode in (0, 1) and out.strip(), err
    summary = json.loads(out)

    failed = {f["path"]: f["reason"] for f in summary["failures"]}
    stopped = [p for p, why in failed.items() if STOPPED in why]
    late = [p for p, why in failed.items() if LATE in why]
    figures.record("rewrap as root, the user stopping the writers",
                   user_files=user_files, sigstops_sent=sent,
                   reported_stopped=len(stopped), reported_late=len(late),
                   rewrapped=summary["rewrapped"])
    # Every file but those is rewrapped, the root files after the user's
    # directory included; nothing else failed or was skipped.
    assert sorted(failed) == sorted(stopped + late), failed
    assert all(expect[p] == (uid, gid) for p in failed), failed
    assert summary["rewrapped"] == len(expect) - len(failed), summary
    assert summary["skipped"] == 0, summary["skipped_files"]
    assert left == [], "processes of the user left: %s" % left
    # Every file still opens (old or new envelope), and keeps its owner.
    code, out, err = sm_cli.run(["verify", tree, "-f", "json"], work, keys,
                                timeout=HANG)
    report = json.loads(out)
    assert sorted(e["path"] for e in report["envelopes"]
                  if e["status"] == "valid") == sorted(expect), err
    for path, owner in expect.items():
        st = os.lstat(path)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == owner + (0o644,)
    if not stopped + late:
        raise tries.Inconclusive(
            "no writer was met stopped (%d SIGSTOPs reached a process)" % sent)
    return len(stopped)
