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
TIME_BUDGET = 120.0

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
    deadline = time.monotonic() + TIME_BUDGET
    last = 1
    while kills < KILLS and time.monotonic() < deadline:
        proc = crashkit.start_python(ROTATOR, [repo, outdir, "k%03d" % kills],
                                     tmp_path)
        crashkit.wait_line(proc, "ready")
        time.sleep(rng.uniform(0.0, 0.05))
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

    # Reruns finish: the CLI and the library rotate again at once (the lock
    # of a killed process is free), the leftovers do not get in the way.
    t0 = time.monotonic()
    code, out, err = sm_cli.run(["rekey", RING, "-f", "json"], tmp_path, repo)
    assert code == 0, err
    assert json.loads(out)["version"] == last + 1
    assert time.monotonic() - t0 < 30
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
    # How long a whole rekey takes, start-up included.
    t0 = time.monotonic()
    code, out, err = sm_cli.run(["rekey", RING], tmp_path, repo)
    assert code == 0, err
    t_full = time.monotonic() - t0
    kills = finished = with_temp = 0
    seen, known_temps = set(), set()
    n = 0
    deadline = time.monotonic() + TIME_BUDGET
    while kills < CLI_KILLS and time.monotonic() < deadline:
        name = "c%04d" % n
        n += 1
        raw = sealer.seal({"n": n, "v": store.get_keyring(RING).active.number},
                          {"backup_id": name})
        (outdir / name).write_bytes(raw)
        before = store.get_keyring(RING).active.number
        started = time.monotonic()
        proc = sm_cli.start(["rekey", RING], tmp_path, repo)
        # The last part of the run, where the rotation happens; the estimate
        # of the run's length follows the runs that ended before the kill.
        killed, ran = crashkit.kill_after(
            proc, rng.uniform(0.7 * t_full, 1.0 * t_full), started)
        if killed:
            kills += 1
        else:
            finished += 1
            if ran is not None:
                t_full = 0.5 * t_full + 0.5 * ran
        temps = set(sm_cli.temp_files(repo))
        with_temp += bool(temps - known_temps)
        known_temps |= temps
        ring, _ = check_store(store, repo)
        assert ring.active.number in (before, before + 1)
        open_all(sealer, outdir, seen)
    result = figures.record(
        "SIGKILL sealedmeta rekey (file store)", seed=seed, kills=kills,
        runs_that_finished_first=finished, kills_inside_an_atomic_write=with_temp,
        envelopes=len(seen), t_full_estimate_s=round(t_full, 2))
    assert kills >= CLI_KILLS, result
    code, out, err = sm_cli.run(["rekey", RING, "-f", "json"], tmp_path, repo)
    assert code == 0, err
    check_store(store, repo)
    assert open_all(sealer, outdir, set()) == len(seen)
