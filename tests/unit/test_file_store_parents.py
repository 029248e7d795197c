"""The file key store refuses a repository another user could swap: every
directory above it, up to ``/``, must be root's or the current user's and
writable by no one else (sticky directories, like /tmp, excepted); and its
files are checked on the descriptor they are read through."""

import os

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import exceptions

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
