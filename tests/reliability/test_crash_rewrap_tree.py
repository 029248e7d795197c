"""SIGKILL of ``sealedmeta rewrap`` over a tree, :data:`KILLS` times.

A tree of :data:`TOTAL` envelopes in four forms (raw bytes, armour with and
without a final newline, Cinder ``*_metadata`` objects) under a file store.
The keyring is rotated every other attempt; each attempt starts the real
``sealedmeta rewrap TREE`` and SIGKILLs it at a random moment of its
expected run. After every kill every file still has its form, and opens with
its context (old version or new). At the end a rerun leaves everything under
the active version, a second rerun changes nothing, and ``verify`` passes;
then, their times set back past the least ``--temp-age``, the temporary
files the kills left are removed by one more rewrap, and only they.
(tests/unit/test_rewrap_sigkill.py does the same with 20 kills over 2,000
envelopes.)
"""

import json
import os
import time

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import armor
from sealedmeta import envelope
from sealedmeta import rewrap

from tests import sm_cli
from tests.reliability import crashkit
from tests.reliability import figures

RING = "kr"
DIRS, PER_DIR = 8, 60
TOTAL = DIRS * PER_DIR
KILLS = 50
MAX_ATTEMPTS = 150


def cinder_object(raw, backup_id, volume_id):
    return json.dumps({"backup_id": backup_id, "volume_id": volume_id,
                       "version": "1.0.0", "objects": [],
                       "volume_meta": armor(raw)}, indent=2).encode()


def make_tree(root, sealer):
    expected = {}
    for d in range(DIRS):
        directory = root / ("d%d" % d)
        directory.mkdir(parents=True)
        for i in range(PER_DIR):
            n = d * PER_DIR + i
            ctx = {"backup_id": "b%04d" % n, "volume_id": "v%d" % (n % 5)}
            raw = sealer.seal({"n": n, "glance": {"billing": "B%d" % n}}, ctx)
            form = n % 4
            if form == 3:
                path = directory / ("volume_v%d_backup_b%04d_metadata" % (n % 5, n))
                data = cinder_object(raw, ctx["backup_id"], ctx["volume_id"])
            else:
                path = directory / ("e%04d" % n)
                data = (raw, (armor(raw) + "\n").encode(), armor(raw).encode())[form]
            path.write_bytes(data)
            expected[str(path)] = (n, ctx, form)
    return expected


def extract(data, form):
    if form == 3:
        return json.loads(data)["volume_meta"]
    return data


def check_all(opener, expected):
    """Every file keeps its form and opens with its context; {version: n}."""
    opener.refresh()
    versions = {}
    for path, (n, ctx, form) in expected.items():
        with open(path, "rb") as handle:
            data = handle.read()
        if form == 0:
            assert data.startswith(envelope.MAGIC), path
        elif form in (1, 2):
            assert data.startswith(b"sealedmeta:"), path
            assert data.endswith(b"\n") == (form == 1), path
        else:
            obj = json.loads(data)
            assert obj["backup_id"] == ctx["backup_id"], path
        sealed = extract(data, form)
        assert opener.open(sealed, ctx)["n"] == n, path
        version = crashkit.header(sealed).key_version
        versions[version] = versions.get(version, 0) + 1
    return versions


def test_sigkill_rewrap_tree_50_times(tmp_path):
    seed, rng = crashkit.new_rng()
    repo = tmp_path / "keys"
    store = FileKeyStore(str(repo))
    store.create_keyring(RING)
    opener = Sealer(store, RING, cache_ttl=0, refresh_interval=0)
    tree = tmp_path / "tree"
    expected = make_tree(tree, opener)
    store.rotate(RING)
    code, out, err = sm_cli.run(["rewrap", str(tree)], tmp_path, repo)
    assert code == 0, err
    assert check_all(opener, expected) == {2: TOTAL}

    kills = mid_run = attempts = finished = 0
    versions = {2: TOTAL}
    while kills < KILLS:
        assert attempts < MAX_ATTEMPTS, (
            "%d attempts gave only %d kills: the runs end before the line"
            " chosen to kill them at" % (attempts, kills))
        attempts += 1
        active = store.get_keyring(RING).active.number
        if versions.get(active, 0) == TOTAL or attempts % 2 == 1:
            store.rotate(RING)
            active += 1
        before = versions.get(active, 0)
        # A moment of the run chosen from its progress: the command logs
        # each file it has replaced (-v -v, while a few more are being
        # written); kill it after a random number of those lines, up to all
        # but the last few the files still to do would give.
        proc = sm_cli.start(["-v", "-v", "rewrap", str(tree)], tmp_path, repo)
        killed, _ = crashkit.kill_at_line(
            proc, rng.randint(1, max(1, TOTAL - before - 10)), rng)
        if killed:
            kills += 1
        else:
            finished += 1
            assert proc.returncode == 0
        versions = check_all(opener, expected)
        assert sum(versions.values()) == TOTAL
        done = versions.get(active, 0) - before
        if 0 < done and versions.get(active, 0) < TOTAL:
            mid_run += 1
    result = figures.record(
        "SIGKILL sealedmeta rewrap (file store, tree)", seed=seed,
        envelopes=TOTAL, attempts=attempts, kills=kills,
        kills_mid_run=mid_run, runs_that_finished_first=finished,
        leftover_temp_files=len(sm_cli.temp_files(tree)),
        versions=store.get_keyring(RING).active.number)
    assert kills >= KILLS, result
    assert mid_run >= 20, result

    code, out, err = sm_cli.run(["rewrap", str(tree), "-f", "json"], tmp_path, repo)
    assert code == 0, err
    active = store.get_keyring(RING).active.number
    assert check_all(opener, expected) == {active: TOTAL}
    digest = sm_cli.tree_digest(tree)
    code, out, err = sm_cli.run(["rewrap", str(tree), "-f", "json"], tmp_path, repo)
    assert code == 0, err
    assert json.loads(out)["already_current"] == TOTAL
    assert sm_cli.tree_digest(tree) == digest
    code, out, err = sm_cli.run(["verify", str(tree), "-f", "json"], tmp_path, repo)
    assert code == 0, err
    assert json.loads(out)["summary"]["counts"]["valid"] == TOTAL
    assert os.listdir(tree)

    leftovers = sorted(sm_cli.temp_files(tree))
    then = time.time() - 2 * rewrap.MIN_TEMP_AGE
    for path in leftovers:
        os.utime(path, (then, then))
    code, out, err = sm_cli.run(["rewrap", str(tree), "--temp-age",
                                 str(rewrap.MIN_TEMP_AGE), "-f", "json"],
                                tmp_path, repo)
    assert code == 0, err
    data = json.loads(out)
    assert (data["already_current"], data["removed_temp"]) == (
        TOTAL, len(leftovers)), result
    assert sorted(e["path"] for e in data["removed_temp_files"]) == leftovers
    assert sm_cli.temp_files(tree) == []
    assert check_all(opener, expected) == {active: TOTAL}
