"""SIGKILL the real ``sealedmeta rewrap`` at random moments over 2,000
envelopes: after every kill each envelope opens with its context; a final
rerun leaves them all under the active version, and one more changes
nothing; once old enough, the temporary files the kills left are removed by
a rewrap."""

import json
import os
import random
import signal
import sys
import time

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import armor
from sealedmeta import envelope
from sealedmeta import inspect
from sealedmeta import rewrap

from tests import sm_cli
from tests.unit.helpers import set_age
from tests.unit.helpers import temp_file

RING = "kr"
DIRS, PER_DIR = 20, 100            # 2,000 envelopes
WANTED_MID_RUN_KILLS = 20
MAX_ATTEMPTS = 150


def make_tree(root, sealer):
    """{path: (context, form)}; forms: raw, armour+newline, armour."""
    expected = {}
    for d in range(DIRS):
        directory = root / ("d%02d" % d)
        directory.mkdir(parents=True)
        for i in range(PER_DIR):
            n = d * PER_DIR + i
            context = {"backup_id": "b%05d" % n, "volume_id": "v%d" % (n % 7)}
            raw = sealer.seal({"n": n, "image": {"os_distro": "debian",
                                                 "licence": "L%d" % n}}, context)
            form = n % 3
            data = (raw, (armor(raw) + "\n").encode(), armor(raw).encode())[form]
            path = directory / ("e%05d" % n)
            path.write_bytes(data)
            expected[str(path)] = (context, form)
    return expected


def check_all(store, expected):
    """Open every envelope with its context; {version: count}."""
    opener = Sealer(store, keyring=RING)
    versions = {}
    for path, (context, form) in expected.items():
        with open(path, "rb") as handle:
            data = handle.read()
        # The file keeps its form (raw / armour with or without newline).
        assert data.startswith(envelope.MAGIC) == (form == 0), path
        if form:
            assert data.endswith(b"\n") == (form == 1), path
        meta = opener.open(data, context)
        assert meta["n"] == int(os.path.basename(path)[1:]), path
        version = inspect(data).key_version
        versions[version] = versions.get(version, 0) + 1
    return versions


def test_sigkill_rewrap_at_random_moments(tmp_path):
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    repo = tmp_path / "keys"
    store = FileKeyStore(str(repo))
    store.create_keyring(RING)
    tree = tmp_path / "tree"
    expected = make_tree(tree, Sealer(store, keyring=RING))
    total = len(expected)
    assert total == 2000

    # How long a full rewrap of everything takes (reported).
    store.rotate(RING)
    t_full = sm_cli.timed_run(["rewrap", str(tree)], tmp_path, repo)
    assert check_all(store, expected) == {2: total}

    kills = mid_run = attempts = 0
    log = []
    versions = {2: total}
    while mid_run < WANTED_MID_RUN_KILLS:
        assert attempts < MAX_ATTEMPTS, (
            "%d attempts gave only %d kills in the middle of a run (kills,"
            " lines waited for, done): %s" % (attempts, mid_run, log))
        attempts += 1
        if attempts % 2 == 1:
            store.rotate(RING)  # new work; even attempts resume the last one
        active = store.get_keyring(RING).active.number
        before = versions.get(active, 0)
        if before == total:
            continue
        # A random moment in the middle of the run: the command logs each
        # file it has replaced (-v -v, in walk order, while up to 8 more are
        # being written); wait for a random number of those lines, then a
        # random fraction of a millisecond, and kill it.
        wanted = rng.randint(1, max(1, (total - before) // 2))
        proc = sm_cli.start(["-v", "-v", "rewrap", str(tree)], tmp_path, repo)
        seen = 0
        while seen < wanted:
            line = sm_cli.read_lines(proc, 1)
            if not line:
                break  # finished (or failed) before that many
            seen += line[0].startswith("sealedmeta: rewrapped ")
        delay = rng.uniform(0, 0.002)
        time.sleep(delay)
        killed = proc.poll() is None
        if killed:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
        if killed:
            assert proc.returncode == -signal.SIGKILL
        # Every envelope opens with its context, old or new.
        versions = check_all(store, expected)
        assert sum(versions.values()) == total
        done = versions.get(active, 0) - before
        if killed and 0 < done and versions.get(active, 0) < total:
            mid_run += 1
        log.append((wanted, round(delay, 4), killed, done))

    figures = ("seed=%d envelopes=%d attempts=%d kills=%d mid_run_kills=%d"
               " t_full=%.2fs leftover_temp_files=%d"
               % (seed, total, attempts, kills, mid_run, t_full,
                  len(sm_cli.temp_files(tree))))
    sys.stdout.write("\nSIGKILL test: %s\n" % figures)
    assert kills >= 20, figures
    assert mid_run >= WANTED_MID_RUN_KILLS, "%s %s" % (figures, log)

    # The rerun finishes the job...
    code, out, err = sm_cli.run(["rewrap", str(tree), "-f", "json"], tmp_path, repo)
    assert code == 0, err
    active = store.get_keyring(RING).active.number
    assert check_all(store, expected) == {active: total}
    # ...and running again changes nothing.
    digest = sm_cli.tree_digest(tree)
    code, out, err = sm_cli.run(["rewrap", str(tree), "-f", "value", "-c",
                                 "already_current"], tmp_path, repo)
    assert (code, out.strip()) == (0, str(total)), err
    assert sm_cli.tree_digest(tree) == digest
    # verify agrees (stray .tmp-* files of killed runs are skipped).
    code, out, err = sm_cli.run(["verify", str(tree), "-f", "json"], tmp_path, repo)
    assert code == 0, err

    # The temporary files the kills left (and one made as write_file makes
    # them, so that there is always one), once last written longer ago than
    # the least --temp-age, are removed by a rewrap, and only they.
    leftovers = sorted(sm_cli.temp_files(tree) + [temp_file(tree / "d07", 0)])
    for path in leftovers:
        set_age(path, 2 * rewrap.MIN_TEMP_AGE)
    code, out, err = sm_cli.run(["rewrap", str(tree), "--temp-age",
                                 str(rewrap.MIN_TEMP_AGE), "-f", "json"],
                                tmp_path, repo)
    assert code == 0, err
    data = json.loads(out)
    assert (data["already_current"], data["removed_temp"], data["skipped"],
            data["failed"]) == (total, len(leftovers), 0, 0), figures
    assert sorted(e["path"] for e in data["removed_temp_files"]) == leftovers
    assert sm_cli.temp_files(tree) == []
    assert check_all(store, expected) == {active: total}
    code, out, err = sm_cli.run(["verify", str(tree), "-f", "json"], tmp_path, repo)
    assert code == 0, err
    assert json.loads(out)["summary"]["counts"]["valid"] == total
