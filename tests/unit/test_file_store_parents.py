"""The file key store refuses a repository another user could swap: every
directory above it, up to ``/``, must be root's or the current user's and
writable by no one else (sticky directories, like /tmp, excepted); and its
files are checked on the descriptor they are read through."""

import os
import pathlib
import shutil
import tempfile

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import exceptions

from tests import race

RING = "cinder-backup"


def _store(parent):
    parent.mkdir(mode=0o755, exist_ok=True)
    store = FileKeyStore(str(parent / "keys"))
    store.create_keyring(RING)
    return store


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_parent_writable_by_others_is_refused(tmp_path, mode):
    store = _store(tmp_path / "p")
    os.chmod(tmp_path / "p", mode)
    with pytest.raises(exceptions.KeyStoreError,
                       match="above it has mode %04o: group or others could"
                             " replace it" % mode):
        store.get_keyring(RING)
    with pytest.raises(exceptions.KeyStoreError, match="refusing key repository"):
        Sealer(store, keyring=RING).seal({}, {"backup_id": "b"})


def test_grandparent_writable_by_others_is_refused(tmp_path):
    (tmp_path / "g").mkdir(mode=0o755)
    store = _store(tmp_path / "g" / "p")
    os.chmod(tmp_path / "g", 0o777)
    with pytest.raises(exceptions.KeyStoreError, match="g above it has mode 0777"):
        store.get_keyring(RING)


def test_sticky_parent_is_accepted(tmp_path):
    store = _store(tmp_path / "p")
    os.chmod(tmp_path / "p", 0o1777)
    assert store.get_keyring(RING).active.number == 1


def test_parent_owned_by_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test needs root to give a directory another owner")
    store = _store(tmp_path / "p")
    # That user could rename the repository away and put one of theirs, or
    # another of root's, in its place.
    os.chown(tmp_path / "p", 4242, 4242)
    with pytest.raises(exceptions.KeyStoreError,
                       match="p above it is owned by uid 4242, who could"
                             " replace it"):
        store.get_keyring(RING)
    with pytest.raises(exceptions.KeyStoreError, match="owned by uid 4242"):
        store.rotate(RING)


def test_symlinked_key_file_is_refused(tmp_path):
    store = _store(tmp_path / "p")
    key = tmp_path / "p" / "keys" / RING / "v1.key"
    elsewhere = tmp_path / "elsewhere.key"
    os.rename(key, elsewhere)
    os.symlink(elsewhere, key)
    with pytest.raises(exceptions.KeyStoreError, match="not a regular file"):
        store.get_key(RING, 1)


# The path as configured, symbolic links on it included ----------------------


@pytest.fixture
def base():
    """A directory of root's the second user can reach (pytest's own are
    closed to them)."""
    path = tempfile.mkdtemp(prefix="sealedmeta-parents-")
    os.chmod(path, 0o755)
    yield pathlib.Path(path)
    shutil.rmtree(path)


def _verdict(path):
    """The key store's refusal of the repository *path*, or what it read."""
    try:
        ring = FileKeyStore(path).get_keyring(RING)
    except exceptions.KeyStoreError as exc:
        return str(exc)
    return "accepted: keyring %s with version %d active" % (
        ring.name, ring.active.number)


_POINT = ("import os, sys; os.symlink(sys.argv[2], sys.argv[1] + '.new');"
          " os.rename(sys.argv[1] + '.new', sys.argv[1])")


def test_repository_through_a_symlink_in_a_users_directory_is_refused(base):
    """A real second user owns a directory on the configured path and, in
    it, a symbolic link to root's key repository's directory; they point it
    at an older copy of that repository (root's too, as a backup would be),
    where a version since retired is still active. The path it resolves to
    is all root's: the check of the resolved path accepted both, and root
    then sealed under the retired version. Every directory on the path as
    configured is checked now: refused, before and after the swap."""
    race.require_root()
    good = base / "good"
    good.mkdir(mode=0o755)
    real = FileKeyStore(str(good / "keys"))
    real.create_keyring(RING)
    shutil.copytree(good, base / "old", symlinks=True)  # root's old copy
    real.rotate(RING)
    real.set_state(RING, 1, "retired")
    with race.local_user() as (uid, gid):
        theirs = base / "u"
        theirs.mkdir(mode=0o755)
        os.chown(theirs, uid, gid)
        race.run_as(uid, gid, _POINT, theirs / "link", good)
        configured = str(theirs / "link" / "keys")
        refusal = ("refusing key repository %s: %s above it is owned by uid %d,"
                   " who could replace it" % (configured, theirs, uid))
        verdicts = [_verdict(configured)]
        race.run_as(uid, gid, _POINT, theirs / "link", base / "old")
        verdicts.append(_verdict(configured))
        assert verdicts == [refusal, refusal]
        # Nothing is created below their directory either.
        with pytest.raises(exceptions.KeyStoreError, match="owned by uid %d" % uid):
            FileKeyStore(str(theirs / "new" / "keys")).create_keyring(RING)
        assert sorted(os.listdir(theirs)) == ["link"]
    assert _verdict(str(good / "keys")) == (
        "accepted: keyring %s with version 2 active" % RING)


def test_a_users_symlink_in_a_sticky_directory_is_refused(base):
    race.require_root()
    (base / "good").mkdir(mode=0o755)
    FileKeyStore(str(base / "good" / "keys")).create_keyring(RING)
    sticky = base / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    with race.local_user() as (uid, gid):
        race.run_as(uid, gid, _POINT, sticky / "link", base / "good")
        assert _verdict(str(sticky / "link" / "keys")) == (
            "refusing key repository %s: the symbolic link %s on its path is"
            " owned by uid %d, who could point it elsewhere" % (
                sticky / "link" / "keys", sticky / "link", uid))
    # The same link, root's: followed, and its target checked.
    os.unlink(sticky / "link")
    os.symlink("../good", sticky / "link")
    assert _verdict(str(sticky / "link" / "keys")) == (
        "accepted: keyring %s with version 1 active" % RING)


def test_a_symlink_to_an_unsafe_directory_is_refused(tmp_path):
    (tmp_path / "open").mkdir(mode=0o755)
    FileKeyStore(str(tmp_path / "open" / "keys")).create_keyring(RING)
    os.chmod(tmp_path / "open", 0o777)
    os.symlink("open", tmp_path / "link")
    assert _verdict(str(tmp_path / "link" / "keys")) == (
        "refusing key repository %s: %s above it has mode 0777: group or"
        " others could replace it" % (tmp_path / "link" / "keys",
                                      tmp_path / "open"))


def test_a_symlink_loop_on_the_path_is_an_error(tmp_path):
    os.symlink("b", tmp_path / "a")
    os.symlink("a", tmp_path / "b")
    with pytest.raises(exceptions.KeyStoreError) as caught:
        FileKeyStore(str(tmp_path / "a" / "keys")).create_keyring(RING)
    assert str(caught.value) == (
        "cannot check key repository %s: %s: Too many levels of symbolic"
        " links" % (tmp_path / "a" / "keys", tmp_path / "a"))
