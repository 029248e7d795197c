"""sealedmeta.safefs: directory handles that never follow a link, in both
of its ways (openat2, and openat per component where the kernel lacks
openat2), and writes as the file's owner."""

import errno
import os

import pytest

from sealedmeta import safefs


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
