"""A tree deeper than Python's recursion limit: ``verify`` and ``rewrap``
still walk all of it and report every file (the walk was recursive: 1,100
nested directories raised RecursionError and gave no report).

The trees are made and removed through directory handles, one level at a
time: their paths are longer than PATH_MAX, so no path names the deepest
files.
"""

import json
import os

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import safefs

from tests import sm_cli

RING = "kr"


def _deep_tree(top, depth, sealer):
    """*depth* nested directories ``d`` below *top*, an envelope at the top
    and one at the bottom; the bottom's parts."""
    os.mkdir(top)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _envelope_at(fd, "top.env", sealer, "top")
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = sub
        _envelope_at(fd, "bottom.env", sealer, "bottom")
    finally:
        os.close(fd)
    return ("d",) * depth


def _envelope_at(dir_fd, name, sealer, backup_id):
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
    with os.fdopen(fd, "wb") as handle:
        handle.write(sealer.seal({"n": backup_id}, {"backup_id": backup_id}))


def _remove_deep(top):
    """Remove a tree of single ``d`` chains without recursion."""
    depth = 0
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    stack = [fd]
    try:
        while True:
            try:
                sub = os.open("d", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                              dir_fd=stack[-1])
            except FileNotFoundError:
                break
            stack.append(sub)
            depth += 1
        while stack:
            fd = stack.pop()
            for name in os.listdir(fd):
                os.unlink(name, dir_fd=fd)
            os.close(fd)
            if stack:
                os.rmdir("d", dir_fd=stack[-1])
    finally:
        for fd in stack:
            os.close(fd)
    os.rmdir(top)
    return depth


@pytest.fixture
def keys(tmp_path):
    repo = str(tmp_path / "keys")
    store = FileKeyStore(repo)
    store.create_keyring(RING)
    return repo, store


@pytest.mark.parametrize("depth", [1100, 3000])
def test_verify_and_rewrap_report_every_file_of_a_deep_tree(tmp_path, keys, depth):
    repo, store = keys
    top = str(tmp_path / "tree")
    bottom = _deep_tree(top, depth, Sealer(store, keyring=RING))
    deepest = os.path.join(top, *bottom, "bottom.env")
    try:
        code, out, err = sm_cli.run(["verify", top, "-f", "json"], tmp_path, repo)
        assert code == 0, err
        report = json.loads(out)
        assert sorted((e["path"], e["status"]) for e in report["envelopes"]) == sorted([
            (os.path.join(top, "top.env"), "valid"), (deepest, "valid")])
        assert report["skipped"] == []

        store.rotate(RING)
        code, out, err = sm_cli.run(["rewrap", top, "-f", "json"], tmp_path, repo)
        assert code == 0, err
        summary = json.loads(out)
        assert (summary["rewrapped"], summary["failed"], summary["skipped"]) == (
            2, 0, 0), summary
        code, out, err = sm_cli.run(["verify", top, "-f", "json"], tmp_path, repo)
        assert code == 0, err
        assert [(v["version"], v["envelopes"]) for v in json.loads(out)["versions"]
                ] == [(1, 0), (2, 2)]
    finally:
        assert _remove_deep(top) == depth


def test_a_tree_deeper_than_the_limit_is_reported_per_path(tmp_path, keys,
                                                           monkeypatch):
    """Past safefs.MAX_DEPTH directories the walk stops going down, and says
    so for the directory it did not enter: the rest of the tree is walked."""
    _, store = keys
    monkeypatch.setattr(safefs, "MAX_DEPTH", 50)
    top = str(tmp_path / "tree")
    bottom = _deep_tree(top, 60, Sealer(store, keyring=RING))
    try:
        found = list(safefs.walk(safefs.Tree(top)))
    finally:
        _remove_deep(top)
    assert [(p, n) for p, n, _, problem in found if problem is None] == [
        ((), "top.env")]
    assert [(p, n, problem) for p, n, _, problem in found
            if problem is not None] == [
        (bottom[:51], None,
         "deeper than 50 directories below the PATH: not walked")]


def _reference(top):
    """What the walk yields, computed by a recursive walk of paths."""
    out = []

    def visit(parts):
        names = sorted(os.listdir(os.path.join(top, *parts)))
        dirs = [n for n in names if os.path.isdir(os.path.join(top, *parts, n))
                and not os.path.islink(os.path.join(top, *parts, n))]
        out.extend((parts, n) for n in names if n not in dirs)
        for name in dirs:
            visit(parts + (name,))
    visit(())
    return out


def _open_fds():
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize("held", [1, 2, 64])
def test_walk_order_and_handles_of_a_comb(tmp_path, monkeypatch, held):
    """A comb (each level: files, a leaf directory, the next level) walks in
    the order of the recursive walk, whether handles are held or the tree's
    handle is used past the cap, and leaves no descriptor open, also when
    the walk is abandoned half-way."""
    monkeypatch.setattr(safefs, "_MAX_HELD", held)
    top = tmp_path / "comb"
    level = top
    for depth in range(12):
        (level / "leaf").mkdir(parents=True)
        (level / "leaf" / ("f%d" % depth)).write_text("x")
        (level / "a-file").write_text("x")
        (level / "z-file").write_text("x")
        os.symlink("/", level / "link")
        level = level / "next"
    level.mkdir()
    before = _open_fds()
    tree = safefs.Tree(str(top))
    try:
        found = [(p, n) for p, n, _, problem in safefs.walk(tree)
                 if problem is None]
        assert _open_fds() == before + 1  # the tree's own handle
        walker = safefs.walk(tree)
        for _ in range(20):
            next(walker)
        walker.close()
        assert _open_fds() == before + 1
    finally:
        tree.close()
    assert found == _reference(str(top))
    assert len(found) == 12 * 4
