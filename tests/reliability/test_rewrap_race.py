"""``sealedmeta rewrap`` run as root over a tree a real local user can
write, while that user swaps their directories for symbolic links.

The tree holds a directory of the user's (``u``) with two directories of
envelopes they own: ``victim``, whose files are named like the files of a
root-only directory ``outside``, and ``keyvictim``, whose files are named
like the files of the key store's keyring directory (``v1.key``...,
``keyring.json``). A process running as the user exchanges each of them
with a symbolic link to its twin (``renameat2(RENAME_EXCHANGE)``, in a
tight loop) while root rotates the keyring and runs the real command line
(``rewrap TREE -f json``, in this process) :data:`RUNS` times. Nothing
outside the tree may ever be opened for writing, created, renamed, removed
or change owner or mode (inotify on ``outside``), no file of the keyring
directory may change but by the rotations, no ``.tmp-*`` file may appear
outside the tree, and no name from ``outside`` may appear in a report.
The user's files stay theirs. (tests/cinder/test_reseal_race.py races
``cinder reseal`` the same way.)
"""

import json
import os
import shutil
import tempfile

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta.exceptions import SealedMetaError

from tests import race
from tests.reliability import figures
from tests.sm_cli import run_in_process as run_cli

RING = "kr"
RUNS = 200
FILES = 12
SECRET = "root-only-name-7f3a"


def _user_dir(path, uid, gid):
    os.mkdir(path, 0o755)
    os.chown(path, uid, gid)


def _user_file(path, data, uid, gid):
    with open(path, "wb") as handle:
        handle.write(data)
    os.chown(path, uid, gid)
    os.chmod(path, 0o644)


def _temps(directory):
    return [n for n in os.listdir(directory) if n.startswith(".tmp-")]


def test_rewrap_as_root_never_leaves_the_tree(capsys):
    race.require_root()
    base = tempfile.mkdtemp(prefix="sealedmeta-race-")
    os.chmod(base, 0o755)
    try:
        with race.local_user() as (uid, gid):
            _race(capsys, base, uid, gid)
    finally:
        shutil.rmtree(base)


def _race(capsys, base, uid, gid):
    keys = os.path.join(base, "keys")
    store = FileKeyStore(keys)
    store.create_keyring(RING)
    for _ in range(7):
        store.rotate(RING)
    ring_dir = os.path.join(keys, RING)
    key_names = sorted(os.listdir(ring_dir))
    sealer = Sealer(store, keyring=RING, cache_ttl=0)

    outside = os.path.join(base, "outside")
    os.mkdir(outside, 0o700)
    names = ["e%03d" % i for i in range(FILES)]
    for name in names + [SECRET]:
        with open(os.path.join(outside, name), "wb") as handle:
            handle.write(b"root's own data of " + name.encode())
        os.chmod(os.path.join(outside, name), 0o644)

    tree = os.path.join(base, "tree")
    os.mkdir(tree, 0o755)
    user = os.path.join(tree, "u")
    _user_dir(user, uid, gid)
    for sub, files in (("victim", names), ("keyvictim", key_names)):
        _user_dir(os.path.join(user, sub), uid, gid)
        for i, name in enumerate(files):
            raw = sealer.seal({"n": i}, {"backup_id": "%s-%d" % (sub, i)})
            _user_file(os.path.join(user, sub, name), raw, uid, gid)
    os.symlink(outside, os.path.join(user, "link-out"))
    os.symlink(ring_dir, os.path.join(user, "link-keys"))
    os.lchown(os.path.join(user, "link-out"), uid, gid)
    os.lchown(os.path.join(user, "link-keys"), uid, gid)

    before_outside = race.snapshot(outside)
    watch = race.Watch([outside])
    swapper = race.Swapper(user, [("victim", "link-out"),
                                  ("keyvictim", "link-keys")], uid, gid)
    escapes, hits, rewrapped, leaks, runs = [], 0, 0, 0, 0
    try:
        for run in range(RUNS):
            try:
                store.rotate(RING)
            except SealedMetaError as exc:
                escapes.append("the key store broke before run %d: %s" % (run, exc))
                break
            keys_before = race.snapshot(ring_dir)
            code, out, err = run_cli(capsys, "--key-repository", keys, "rewrap",
                                     tree, "-f", "json")
            runs += 1
            if SECRET in out or SECRET in err:
                leaks += 1
                escapes.append("run %d: a name from the root-only directory is"
                               " in the report" % run)
            for event in watch.drain():
                escapes.append("run %d: outside changed: %r" % (run, event))
            keys_after = race.snapshot(ring_dir)
            for name in sorted(set(keys_before) | set(keys_after)):
                if keys_before.get(name) != keys_after.get(name):
                    escapes.append("run %d: key store file %s changed: %r -> %r" % (
                        run, name, keys_before.get(name), keys_after.get(name)))
            if code not in (0, 1) or not out.strip():  # no report
                escapes.append("run %d: rewrap cannot run any more: %s" % (
                    run, err.strip().splitlines()[-1:]))
                break
            summary = json.loads(out)
            rewrapped += summary["rewrapped"]
            hits += sum(1 for f in summary["failures"] + summary["skipped_files"]
                        if "symbolic link" in f["reason"]
                        or "changed while" in f["reason"]
                        or "cannot list" in f["reason"])
    finally:
        swaps = swapper.stop()
        watch.drain()
        watch.close()
    if race.snapshot(outside) != before_outside:
        escapes.append("outside differs at the end")
    escapes += ["temporary file outside the tree: %s" % t
                for t in _temps(outside) + _temps(ring_dir)]
    for sub in ("victim", "keyvictim"):
        for name in os.listdir(os.path.join(user, sub)):
            st = os.lstat(os.path.join(user, sub, name))
            if (st.st_uid, st.st_gid) != (uid, gid) or st.st_mode & 0o7777 != 0o644:
                escapes.append("%s/%s is now %d:%d %o" % (
                    sub, name, st.st_uid, st.st_gid, st.st_mode & 0o7777))
    figures.record("rewrap race as root", runs=runs, swaps=swaps,
                   swapped_state_met=hits, rewrapped_user_files=rewrapped,
                   escapes=len(escapes), name_leaks=leaks)
    assert escapes == [], "%d escapes in %d runs, first: %s" % (
        len(escapes), runs, "\n".join(escapes[:8]))
    assert runs == RUNS
    # The race was live (the walk or a write met a swapped directory) and
    # the user's files were still rewrapped, as that user.
    assert swaps > 0 and hits > 0 and rewrapped > 0
