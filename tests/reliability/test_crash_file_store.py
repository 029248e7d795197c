"""SIGKILL of file-store rotation at random moments.

(a) A process loops ``store.rotate`` and seals one envelope under each new
version; it is killed :data:`KILLS` times at a random moment. (b) The real
``sealedmeta rekey`` is killed :data:`CLI_KILLS` times at a random moment of
its run. After every kill: the keyring loads, with exactly one active
version and contiguous numbers; every version's key file is there and
matches its key id; every envelope sealed so far opens with its context; the
lock is free (the next rotation does not wait). At the end a rerun of
``sealedmeta rekey`` and of ``store.rotate`` finishes.

Printed: kills, kills that left a temporary file (killed inside an atomic
write), kills that left a key file the description does not list yet
(killed between the two writes of a rotation), rotations, envelopes.
"""

import json
import os
import re
import time

from sealedmeta import FileKeyStore
from sealedmeta import Sealer

from tests import sm_cli
from tests.reliability import crashkit
from tests.reliability import figures

RING = "kr"
KILLS = 50
CLI_KILLS = 20
# Attempts allowed for CLI_KILLS kills (a rekey that ends before its kill
# costs one more).
CLI_ATTEMPTS = 5 * CLI_KILLS

ROTATOR = r'''
import os, sys
from sealedmeta import FileKeyStore, Sealer, atomic
repo, outdir, tag = sys.argv[1:4]
store = FileKeyStore(repo)
sealer = Sealer(store, "kr", cache_ttl=0)
print("ready", flush=True)
n = 0
while True:
    version = store.rotate("kr")
    name = "%s-%05d" % (tag, n)
    raw = sealer.seal({"n": n, "v": version.number}, {"backup_id": name})
    atomic.write_file(os.path.join(outdir, name), raw, durable=False)
    n += 1
    print("rotated", n, flush=True)
'''


def key_files(repo):
    directory = os.path.join(str(repo), RING)
    return sorted(int(m.group(1)) for m in (
        re.match(r"v(\d+)\.key\Z", f) for f in os.listdir(directory)) if m)


def open_all(opener, outdir, seen):
    """Open every envelope in *outdir*; returns how many."""
    opener.refresh()
    count = 0
    for name in sorted(os.listdir(outdir)):
        if name.startswith(".tmp-"):
            continue
        with open(os.path.join(outdir, name), "rb") as handle:
            raw = handle.read()
        meta = opener.open(raw, {"backup_id": name})
        assert crashkit.header(raw).key_version == meta["v"], name
        seen.add(name)
        count += 1
    return count


def check_store(store, repo):
    ring = crashkit.check_ring(store.get_keyring(RING))
    numbers = [v.number for v in ring.versions]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    files = key_files(repo)
    assert set(numbers) <= set(files), "a listed version has no key file"
    orphans = [n for n in files if n not in numbers]
    # Only the next number can be a leftover: the key written before the
    # description that would have listed it.
    assert orphans in ([], [numbers[-1] + 1]), orphans
    _, keys = store.export_keyring(RING)   # reads and checks every key
    assert sorted(keys) == numbers
    return ring, orphans


def test_sigkill_looping_rotation(tmp_path):
    seed, rng = crashkit.new_rng()
    repo = tmp_path / "keys"
    outdir = tmp_path / "sealed"
    outdir.mkdir()
    store = FileKeyStore(str(repo))
    store.create_keyring(RING)
    opener = Sealer(store, RING, cache_ttl=0, refresh_interval=0)
    kills = with_temp = with_orphan_key = 0
    seen, known_temps = set(), set()
    last = 1
    while kills < KILLS:
        proc = crashkit.start_python(ROTATOR, [repo, outdir, "k%03d" % kills],
                                     tmp_path)
        assert crashkit.read_lines(proc, 1, stream=proc.stdout) == ["ready"], \
            crashkit.child_stderr(proc)
        # After its first, second or third rotation (as it says), plus up to
        # as long again as its last rotation took: anywhere in the next one.
        crashkit.read_lines(proc, rng.randint(0, 2), stream=proc.stdout)
        started = time.monotonic()
        crashkit.read_lines(proc, 1, stream=proc.stdout)
        time.sleep(rng.uniform(0.0, time.monotonic() - started))
        assert crashkit.kill(proc), "the rotator ended by itself: %s" % (
            crashkit.child_stderr(proc))
        kills += 1
        temps = set(sm_cli.temp_files(repo))
        with_temp += bool(temps - known_temps)
        known_temps |= temps
        ring, orphans = check_store(store, repo)
        with_orphan_key += bool(orphans)
        assert ring.active.number >= last   # a finished rotation never undone
        last = ring.active.number
        open_all(opener, outdir, seen)
    rotations = last - 1
    result = figures.record(
        "SIGKILL file-store rotation loop", seed=seed, kills=kills,
        kills_inside_an_atomic_write=with_temp,
        kills_between_key_and_description=with_orphan_key,
        rotations=rotations, envelopes_opened_after_last_kill=len(seen))
    assert kills >= KILLS, result
    assert rotations >= kills, result       # the kills landed mid-loop

    # Reruns finish: the CLI and the library rotate again (the lock of a
    # killed process is free: rekey refuses, exit 1, when it cannot have
    # the lock within [coordination] lock_timeout), the leftovers do not get
    # in the way.
    code, out, err = sm_cli.run(["rekey", RING, "-f", "json"], tmp_path, repo)
    assert code == 0, err
    assert json.loads(out)["version"] == last + 1
    assert store.rotate(RING).number == last + 2
    check_store(store, repo)
    assert open_all(opener, outdir, set()) == len(seen)
    assert store.list_keyrings() == [RING]


def test_sigkill_sealedmeta_rekey(tmp_path):
    seed, rng = crashkit.new_rng()
    repo = tmp_path / "keys"
    outdir = tmp_path / "sealed"
    outdir.mkdir()
    store = FileKeyStore(str(repo))
    store.create_keyring(RING)
    sealer = Sealer(store, RING, cache_ttl=0, refresh_interval=0)
    # How long the rotation takes after the lock: between the two lines of
    # a whole run.
    proc = sm_cli.start(["-v", "-v", "rekey", RING], tmp_path, repo)
    crashkit.read_lines(proc, 1)
    locked = time.monotonic()
    lines, code, _ = crashkit.count_lines(proc)
    gap = time.monotonic() - locked
    assert code == 0 and "rotated keyring" in lines[0], lines
    kills = finished = with_temp = attempts = 0
    seen, known_temps = set(), set()
    n = 0
    while kills < CLI_KILLS:
        assert attempts < CLI_ATTEMPTS, (
            "%d attempts gave only %d kills: %d rekeys ended before the kill"
            % (attempts, kills, finished))
        attempts += 1
        name = "c%04d" % n
        n += 1
        raw = sealer.seal({"n": n, "v": store.get_keyring(RING).active.number},
                          {"backup_id": name})
        (outdir / name).write_bytes(raw)
        before = store.get_keyring(RING).active.number
        # A moment chosen from the command's progress: at the line saying
        # it holds the keyring's lock (the rotation comes next), or up to as
        # long after it as the rotation took in the last run that finished
        # (measured between its own two lines).
        proc = sm_cli.start(["-v", "-v", "rekey", RING], tmp_path, repo)
        lines = crashkit.read_lines(proc, 1)
        assert lines and "acquired lock" in lines[0], lines
        locked = time.monotonic()
        time.sleep(rng.choice((0, rng.uniform(0, gap), rng.uniform(0, gap))))
        if crashkit.kill(proc):
            kills += 1
        else:
            finished += 1
            assert proc.returncode == 0
            gap = time.monotonic() - locked
        temps = set(sm_cli.temp_files(repo))
        with_temp += bool(temps - known_temps)
        known_temps |= temps
        ring, _ = check_store(store, repo)
        assert ring.active.number in (before, before + 1)
        open_all(sealer, outdir, seen)
    result = figures.record(
        "SIGKILL sealedmeta rekey (file store)", seed=seed, kills=kills,
        runs_that_finished_first=finished, kills_inside_an_atomic_write=with_temp,
        envelopes=len(seen), attempts=attempts,
        rotation_after_lock_s=round(gap, 4))
    assert kills >= CLI_KILLS, result
    code, out, err = sm_cli.run(["rekey", RING, "-f", "json"], tmp_path, repo)
    assert code == 0, err
    check_store(store, repo)
    assert open_all(sealer, outdir, set()) == len(seen)
