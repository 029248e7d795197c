"""``sealedmeta cinder reseal`` (posix driver) run as root while a real
local user who owns the directories of their backups swaps a backup's
container directory for a symbolic link to a root-only directory holding a
file of the metadata object's name.

Root reseals the legacy backups :data:`RUNS` times through the real command
line (in this process, where the Cinder database lives); between runs the
user's process is paused and the backups are made legacy again. Nothing in
the root-only directory may ever be opened for writing, created, renamed,
removed or change owner or mode (inotify), and no ``.tmp-*`` file may
appear there. (tests/reliability/test_rewrap_race.py races ``rewrap``.)
"""

import collections
import contextlib
import json
import os
import signal

from cinder import objects

from tests import race
from tests import tries
from tests.cinder import helpers
from tests.cinder.test_reseal import cinder_conf  # noqa: F401 - fixture
from tests.sm_cli import run_in_process as run_cli

RUNS = 100
BACKUPS = 3


def _give(path, uid, gid):
    for top, dirs, files in os.walk(path):
        os.chown(top, uid, gid)
        for name in files:
            os.chown(os.path.join(top, name), uid, gid)


def test_reseal_as_root_never_leaves_the_backup_tree(
        cloud, capsys, cinder_conf, tmp_path):  # noqa: F811
    race.require_root()
    with race.local_user() as (uid, gid):
        _race(cloud, capsys, cinder_conf, tmp_path, uid, gid)


def _race(cloud, capsys, conf, tmp_path, uid, gid):
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o700)
    legacy, swapped = [], []
    for i in range(BACKUPS):
        src = cloud.volume(glance=helpers.GLANCE, user_meta={"n": str(i)})
        backup = cloud.backup(src, cls=helpers.stock_class())
        container = cloud.container_dir(backup)
        parent, name = os.path.split(container)
        metadata = os.path.basename(cloud.metadata_path(backup))
        # The user owns the backup's container and the directory above it.
        _give(parent, uid, gid)
        target = outside / ("t%d" % i)
        target.mkdir(mode=0o700)
        (target / metadata).write_bytes(b"root's own file %d\n" % i)
        os.chmod(target / metadata, 0o644)
        os.symlink(str(target), os.path.join(parent, name + ".x"))
        os.lchown(os.path.join(parent, name + ".x"), uid, gid)
        legacy.append((backup, cloud.raw_object(backup)))
        swapped.append((parent, name))

    before = {d: race.snapshot(outside / d) for d in os.listdir(outside)}
    watch = race.Watch([str(outside)] + [str(outside / d) for d in before])
    swappers = [race.Swapper(parent, [(name, name + ".x")], uid, gid)
                for parent, name in swapped]
    escapes, resealed, runs = [], 0, 0
    results = collections.Counter()
    try:
        for run in range(RUNS):
            code, out, err = run_cli(capsys, "--config-file", conf,
                                     "cinder", "reseal", "--all", "-f", "json")
            runs += 1
            for event in watch.drain():
                escapes.append("run %d: outside changed: %r" % (run, event))
            assert out.strip(), err
            rows = json.loads(out)
            resealed += sum(1 for r in rows if r["result"] == "resealed")
            results.update((r["result"], (r["reason"] or "")[:70]) for r in rows)
            for swapper in swappers:
                swapper.pause()
            # Legacy again (nothing is swapped while paused).
            for backup, raw in legacy:
                cloud.write_raw_object(backup, raw)
                os.chown(cloud.metadata_path(backup), uid, gid)
                fresh = objects.Backup.get_by_id(cloud.ctxt, backup.id)
                fresh.service = helpers.STOCK_POSIX
                fresh.save()
            for swapper in swappers:
                swapper.resume()
    finally:
        swaps = sum(swapper.stop() for swapper in swappers)
        watch.drain()
        watch.close()
    after = {d: race.snapshot(outside / d) for d in os.listdir(outside)}
    if after != before:
        escapes.append("outside differs at the end: %r" % after)
    for backup, _ in legacy:
        st = os.stat(cloud.metadata_path(backup))
        if (st.st_uid, st.st_gid) != (uid, gid):
            escapes.append("%s is now %d:%d" % (backup.id, st.st_uid, st.st_gid))
    print("cinder reseal race as root: runs=%d swaps=%d resealed=%d escapes=%d"
          " results=%r" % (runs, swaps, resealed, len(escapes), results))
    assert escapes == [], "%d escapes in %d runs, first: %s" % (
        len(escapes), runs, "\n".join(escapes[:8]))
    # The race was live, and the user's backups were still resealed, as
    # that user.
    assert swaps > 0 and resealed > 0


# The user stops the writer --------------------------------------------------

STOPPED = "was stopped (signal %d) and has been killed" % signal.SIGSTOP
LATE = "did not finish within"
# Seconds after which a reseal still running counts as hung: a guard
# against a test that never ends, not a measure of speed.
HANG = 300


class Hung(BaseException):
    """Not an Exception: reseal turns those into a failed backup."""


@contextlib.contextmanager
def _hang_guard(uid, but):
    """After HANG seconds, kill the user's processes (but *but*), which
    frees a parent waiting for a stopped child, and fail."""
    def hung(signum, frame):
        left = race.processes_of(uid, but=but)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
        raise Hung("cinder reseal still running after %d s: hung, with %d"
                   " process(es) of the user stopped" % (HANG, len(left)))
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(HANG)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_reseal_as_root_goes_on_when_the_user_stops_the_writer(
        cloud, capsys, cinder_conf, tmp_path):  # noqa: F811
    """Root reseals a user's backup from a child that has become the user,
    who stops every process of theirs in a loop (``kill(-1, SIGSTOP)``):
    the stopped child held ``cinder reseal --all`` up for good. Now it is
    killed, that backup reported failed, and the others resealed; a try in
    which no child was met stopped says nothing and is repeated with more
    backups (tests/tries.py)."""
    race.require_root()
    with open(cinder_conf, "a") as handle:
        handle.write("user_write_timeout = 10\n")
    with race.local_user() as (uid, gid):
        tries.until_conclusive(
            lambda count, attempt: _stop_try(cloud, capsys, cinder_conf, uid,
                                             gid, count),
            (4, 16, 48))


def _stop_try(cloud, capsys, conf, uid, gid, count):
    theirs, ours = set(), set()
    for i in range(count + 2):
        src = cloud.volume(glance=helpers.GLANCE, user_meta={"n": str(i)})
        backup = cloud.backup(src, cls=helpers.stock_class())
        if 0 < i <= count:  # the first and the last stay root's
            _give(os.path.dirname(cloud.container_dir(backup)), uid, gid)
            theirs.add(backup.id)
        else:
            ours.add(backup.id)
    stopper = race.Stopper(uid, gid)
    try:
        with _hang_guard(uid, (stopper.proc.pid,)):
            code, out, err = run_cli(capsys, "--config-file", conf,
                                     "cinder", "reseal", "--all", "-f", "json")
    finally:
        sent = stopper.stop()
        for pid in race.processes_of(uid):  # only what this test started
            os.kill(pid, signal.SIGKILL)
    assert race.processes_of(uid) == []
    assert out.strip(), err
    rows = {r["backup_id"]: r for r in json.loads(out)
            if r["backup_id"] in theirs | ours}
    assert sorted(rows) == sorted(theirs | ours)
    failed = {b: r["reason"] for b, r in rows.items() if r["result"] != "resealed"}
    assert all(STOPPED in why or LATE in why for why in failed.values()), failed
    assert set(failed) <= theirs, failed
    for backup_id in theirs:
        st = os.stat(cloud.metadata_path(objects.Backup.get_by_id(
            cloud.ctxt, backup_id)))
        assert (st.st_uid, st.st_gid) == (uid, gid)
    print("cinder reseal, the user stopping the writers: backups=%d"
          " sigstops_sent=%d failed=%d" % (count, sent, len(failed)))
    if not failed:
        raise tries.Inconclusive("no writer was met stopped (%d SIGSTOPs"
                                 " reached a process)" % sent)
