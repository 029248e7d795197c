"""sealedmeta.safefs: directory handles that never follow a link, in both
of its ways (openat2, and openat per component where the kernel lacks
openat2), and writes as the file's owner."""

import contextlib
import errno
import os
import signal
import time

import pytest

from sealedmeta import safefs

from tests import race


@pytest.fixture(params=["openat2", "per-component"])
def resolver(request, monkeypatch):
    if request.param == "per-component":
        monkeypatch.setattr(safefs, "_openat2", False)
    return request.param


def test_a_symlinked_component_is_refused(tmp_path, resolver):
    (tmp_path / "t" / "a").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "t" / "link")
    tree = safefs.Tree(str(tmp_path / "t"))
    fd = safefs.open_beneath(tree.fd, ("a",))
    os.close(fd)
    with pytest.raises(OSError) as caught:
        safefs.open_beneath(tree.fd, ("link",))
    assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
    for parts in (("..",), ("a", ".."), ("",), ("a/b",)):
        with pytest.raises(OSError):
            safefs.open_beneath(tree.fd, parts)


def test_walk_lists_links_and_never_enters_them(tmp_path, resolver):
    (tmp_path / "t" / "d").mkdir(parents=True)
    (tmp_path / "t" / "d" / "f").write_text("x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_text("x")
    os.symlink(tmp_path / "outside", tmp_path / "t" / "link")
    found = [(parts, name) for parts, name, _, _ in
             safefs.walk(safefs.Tree(str(tmp_path / "t")))]
    assert found == [((), "link"), (("d",), "f")]


def test_a_fifo_is_never_opened_for_reading(tmp_path):
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught:
            safefs.open_regular(fd, "fifo")
        assert caught.value.errno == errno.EINVAL
    finally:
        os.close(fd)


def test_root_writes_another_users_file_as_that_user(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test needs root to give files other owners")
    directory = tmp_path / "d"
    directory.mkdir(mode=0o755)
    path = directory / "f"
    path.write_bytes(b"old")
    os.chown(path, 4242, 4343)
    fd = os.open(str(directory), os.O_RDONLY | os.O_DIRECTORY)
    try:
        # The directory belongs to yet another user, who may write it:
        # uid 4242 may not, so the write, made as 4242, is refused.
        os.chown(directory, 4444, 4444)
        with pytest.raises(PermissionError):
            safefs.replace(fd, "f", b"new", os.lstat(path))
        assert path.read_bytes() == b"old"
        # In a directory 4242 may write, it is done, as 4242.
        os.chown(directory, 4242, 4343)
        safefs.replace(fd, "f", b"new", os.lstat(path))
    finally:
        os.close(fd)
    st = os.lstat(path)
    assert (path.read_bytes(), st.st_uid, st.st_gid) == (b"new", 4242, 4343)
    assert [n for n in os.listdir(directory) if n.startswith(".tmp-")] == []


class Hung(Exception):
    pass


@contextlib.contextmanager
def hang_guard(seconds=600):
    """Turn a call that never returns into a failure after *seconds* (a
    guard against a test that never ends, not a measure of speed)."""
    def hung(signum, frame):
        raise Hung("still waiting for the child after %d s" % seconds)
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _need_root():
    if os.geteuid() != 0:
        pytest.fail("this test needs root to run a child as another user")


def _stop_myself():
    os.kill(os.getpid(), signal.SIGSTOP)


def _never_return():
    while True:
        time.sleep(3600)


def test_a_child_that_stops_is_killed_and_reported_at_once():
    """The user the child runs as may stop it (here it stops itself): the
    parent sees the stop, kills the child and raises, with a deadline far
    longer than the guard, so only seeing the stop can end the wait."""
    _need_root()
    with hang_guard(), pytest.raises(
            safefs.WriteAbandoned,
            match=r"the write as uid 4242 was stopped \(signal %d\) and has"
                  r" been killed; the file holds its old content or the new"
                  r" one" % signal.SIGSTOP):
        safefs.as_user(4242, 4343, _stop_myself, timeout=24 * 3600)
    assert race.processes_of(4242) == []


def test_a_child_past_its_deadline_is_killed_and_reported():
    _need_root()
    with hang_guard(), pytest.raises(
            safefs.WriteAbandoned,
            match=r"the write as uid 4242 did not finish within 0.2 s and has"
                  r" been killed"):
        safefs.as_user(4242, 4343, _never_return, timeout=0.2)
    assert race.processes_of(4242) == []


def test_a_changed_file_is_left_alone(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"old")
    before = os.lstat(path)
    os.unlink(path)
    path.write_bytes(b"other")
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(safefs.FileChanged):
            safefs.replace(fd, "f", b"new", before)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"other"


@pytest.mark.parametrize("path, why", [
    ("a//b", "an empty component"), ("a/", "an empty component"),
    ("./a", "a '.' component"), ("a/../b", "a '..' component"),
    ("/a", "not a relative path"), ("a\0b", "a '/' or NUL in a name")])
def test_split_relative_refuses_rather_than_normalises(path, why):
    with pytest.raises(OSError, match=why):
        safefs.split_relative(path)


def test_make_beneath_makes_what_is_missing_and_follows_no_link(tmp_path):
    (tmp_path / "t").mkdir()
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", tmp_path / "t" / "link")
    tree = safefs.Tree(str(tmp_path / "t"))
    try:
        os.close(safefs.make_beneath(tree.fd, ("a", "b"), 0o750))
        assert (tmp_path / "t" / "a" / "b").stat().st_mode & 0o777 == 0o750
        with pytest.raises(OSError) as caught:
            safefs.make_beneath(tree.fd, ("link", "x"), 0o750)
        # O_NOFOLLOW | O_DIRECTORY on a link: ENOTDIR (ELOOP by openat2)
        assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)
    finally:
        tree.close()
    assert os.listdir(tmp_path / "outside") == []


def test_write_regular_creates_or_empties_a_file_and_nothing_else(tmp_path):
    (tmp_path / "old").write_bytes(b"old")
    os.symlink(tmp_path / "old", tmp_path / "link")
    os.mkfifo(tmp_path / "fifo")
    fd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in ("new", "old"):
            with os.fdopen(safefs.write_regular(fd, name, 0o640), "wb") as f:
                f.write(b"x")
            assert (tmp_path / name).read_bytes() == b"x"
            assert (tmp_path / name).stat().st_mode & 0o777 == 0o640
        for name in ("link", "fifo"):
            with pytest.raises(OSError) as caught:
                safefs.write_regular(fd, name, 0o640)
            assert caught.value.errno == errno.EINVAL
    finally:
        os.close(fd)
