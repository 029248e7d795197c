"""Requirement 8: the file key store on a real directory."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import atomic
from sealedmeta import crypto
from sealedmeta import exceptions
from sealedmeta import keyring as kr

from tests import sm_cli
from tests.unit.helpers import file_size_limit
from tests.unit.helpers import snapshot

NAME = "cinder-backup"


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def ring_dir(repo, name=NAME):
    return os.path.join(repo, name)


def key_path(repo, number, name=NAME):
    return os.path.join(repo, name, "v%d.key" % number)


def test_modes_of_everything_created(store, repo):
    store.create_keyring(NAME)
    store.rotate(NAME)
    assert mode(repo) == 0o700
    assert mode(ring_dir(repo)) == 0o700
    for name in ("keyring.json", "v1.key", "v2.key"):
        assert mode(os.path.join(ring_dir(repo), name)) == 0o600, name
    assert mode(os.path.join(repo, ".lock")) == 0o600
    for dirpath, dirnames, filenames in os.walk(repo):
        for d in dirnames:
            assert mode(os.path.join(dirpath, d)) == 0o700
        for f in filenames:
            assert mode(os.path.join(dirpath, f)) == 0o600


def test_modes_do_not_depend_on_umask(tmp_path):
    old = os.umask(0)
    try:
        store = FileKeyStore(str(tmp_path / "keys"))
        store.create_keyring(NAME)
    finally:
        os.umask(old)
    assert mode(store.path) == 0o700
    assert mode(key_path(store.path, 1)) == 0o600
    assert mode(os.path.join(ring_dir(store.path), "keyring.json")) == 0o600


def test_key_files_hold_the_keys_of_their_ids(store, repo):
    store.create_keyring(NAME)
    for _ in range(3):
        store.rotate(NAME)
    ring = store.get_keyring(NAME)
    for v in ring.versions:
        with open(key_path(repo, v.number), "rb") as handle:
            key = handle.read()
        assert len(key) == 32
        assert crypto.key_id(key) == v.key_id
        assert store.get_key(NAME, v.number) == key
    assert len({v.key_id for v in ring.versions}) == 4
    with open(os.path.join(ring_dir(repo), "keyring.json"), "rb") as handle:
        assert kr.from_dict(json.load(handle)) == ring


@pytest.mark.parametrize("bad_mode", [0o755, 0o750, 0o705, 0o701, 0o710, 0o770])
def test_repository_open_to_others_refused(store, repo, bad_mode):
    store.create_keyring(NAME)
    os.chmod(repo, bad_mode)
    try:
        for call in (lambda: store.get_keyring(NAME), store.list_keyrings,
                     lambda: store.rotate(NAME), lambda: store.create_keyring("other"),
                     lambda: store.get_key(NAME, 1)):
            with pytest.raises(exceptions.KeyStoreError, match="chmod 700"):
                call()
        with pytest.raises(exceptions.KeyStoreError, match="chmod"):
            Sealer(store, keyring=NAME).seal({}, {})
    finally:
        os.chmod(repo, 0o700)
    assert store.get_keyring(NAME).active.number == 1  # nothing was changed


def test_ring_directory_open_to_others_refused(store, repo):
    store.create_keyring(NAME)
    os.chmod(ring_dir(repo), 0o755)
    with pytest.raises(exceptions.KeyStoreError, match="chmod 700"):
        store.get_keyring(NAME)


@pytest.mark.parametrize("bad_mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_open_to_others_refused(store, repo, bad_mode):
    store.create_keyring(NAME)
    os.chmod(key_path(repo, 1), bad_mode)
    with pytest.raises(exceptions.KeyStoreError, match="chmod 600") as info:
        store.get_key(NAME, 1)
    assert key_path(repo, 1) in str(info.value)
    with pytest.raises(exceptions.KeyStoreError, match="chmod 600"):
        Sealer(store, keyring=NAME).seal({}, {})


def test_keyring_json_open_to_others_refused(store, repo):
    store.create_keyring(NAME)
    os.chmod(os.path.join(ring_dir(repo), "keyring.json"), 0o644)
    with pytest.raises(exceptions.KeyStoreError, match="chmod 600"):
        store.get_keyring(NAME)


def test_symlinked_key_file_refused(store, repo, tmp_path):
    store.create_keyring(NAME)
    outside = tmp_path / "outside.key"
    shutil.copy(key_path(repo, 1), outside)
    os.chmod(outside, 0o600)
    os.unlink(key_path(repo, 1))
    os.symlink(outside, key_path(repo, 1))
    with pytest.raises(exceptions.KeyStoreError):
        store.get_key(NAME, 1)


def test_create_twice(store, repo):
    first = store.create_keyring(NAME)
    before = snapshot(repo)
    with pytest.raises(exceptions.KeyringExists):
        store.create_keyring(NAME)
    assert issubclass(exceptions.KeyringExists, exceptions.KeyStoreError)
    assert snapshot(repo) == before
    assert store.get_keyring(NAME) == first


def test_retire_keeps_the_key_file_and_destroy_removes_it(store, repo):
    # The states themselves: tests/keystore_contract.py.
    store.create_keyring(NAME)
    store.rotate(NAME)
    store.set_state(NAME, 1, "retired")
    assert os.path.exists(key_path(repo, 1))
    store.set_state(NAME, 1, "destroyed")
    assert not os.path.exists(key_path(repo, 1))
    assert sorted(os.listdir(ring_dir(repo))) == ["keyring.json", "v2.key"]


def test_key_file_swapped_for_another_key(store, repo):
    store.create_keyring(NAME)
    store.rotate(NAME)
    shutil.copy(key_path(repo, 2), key_path(repo, 1))
    os.chmod(key_path(repo, 1), 0o600)
    with pytest.raises(exceptions.KeyStoreError, match="does not match"):
        store.get_key(NAME, 1)
    with open(key_path(repo, 1), "wb") as handle:
        handle.write(os.urandom(32))
    with pytest.raises(exceptions.KeyStoreError):
        store.get_key(NAME, 1)


@pytest.mark.parametrize("content", [b"", b"\x00" * 31, b"\x00" * 33, b"\x00" * 64])
def test_key_file_of_wrong_size(store, repo, content):
    store.create_keyring(NAME)
    with open(key_path(repo, 1), "wb") as handle:
        handle.write(content)
    with pytest.raises(exceptions.KeyStoreError):
        store.get_key(NAME, 1)


def test_missing_key_file(store, repo):
    store.create_keyring(NAME)
    os.unlink(key_path(repo, 1))
    with pytest.raises(exceptions.KeyStoreError):
        store.get_key(NAME, 1)


@pytest.mark.parametrize("content", [
    b"", b"{", b"not json", b"[]", b"null", b'{"name": "cinder-backup"}',
    b'{"name": "cinder-backup", "versions": []}',
    b'{"name": "cinder-backup", "versions": [{"version": 1}]}',
    b"\xff\xfe", b'{"name": "other-name", "versions": []}', b"{}" + b" " * (1024 * 1024),
], ids=lambda c: repr(c[:30]))
def test_corrupt_keyring_json(store, repo, content):
    store.create_keyring(NAME)
    with open(os.path.join(ring_dir(repo), "keyring.json"), "wb") as handle:
        handle.write(content)
    for call in (lambda: store.get_keyring(NAME), lambda: store.get_key(NAME, 1),
                 lambda: store.rotate(NAME)):
        with pytest.raises(exceptions.KeyStoreError):
            call()


def test_keyring_json_naming_another_keyring(store, repo):
    """A description copied from another keyring is refused, not followed."""
    store.create_keyring(NAME)
    store.create_keyring("other")
    shutil.copy(os.path.join(ring_dir(repo, "other"), "keyring.json"),
                os.path.join(ring_dir(repo), "keyring.json"))
    before = snapshot(repo)
    with pytest.raises(exceptions.KeyStoreError):
        store.get_keyring(NAME)
    with pytest.raises(exceptions.KeyStoreError):
        store.rotate(NAME)
    after = snapshot(repo)
    after.pop(".lock", None)
    before.pop(".lock", None)
    assert after == before


def test_atomic_writes_leave_no_temp_files(store, repo):
    store.create_keyring(NAME)
    for _ in range(3):
        store.rotate(NAME)
    store.set_state(NAME, 1, "retired")
    store.set_state(NAME, 1, "destroyed")
    store.create_keyring("second")
    assert sm_cli.temp_files(repo) == []
    assert sorted(os.listdir(ring_dir(repo))) == ["keyring.json", "v2.key", "v3.key", "v4.key"]


def test_failed_write_leaves_the_old_file_and_no_temp(store, repo, monkeypatch):
    store.create_keyring(NAME)
    before = store.get_keyring(NAME)
    state_path = os.path.join(ring_dir(repo), "keyring.json")
    with open(state_path, "rb") as handle:
        old_bytes = handle.read()

    def failing_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(exceptions.KeyStoreError,
                       match="cannot rotate keyring 'cinder-backup' in key"
                             " repository .*: No space left on device; nothing"
                             " was changed"):
        store.rotate(NAME)
    monkeypatch.undo()
    assert sm_cli.temp_files(repo) == []
    with open(state_path, "rb") as handle:
        assert handle.read() == old_bytes
    assert store.get_keyring(NAME) == before
    assert sorted(os.listdir(ring_dir(repo))) == ["keyring.json", "v1.key"]
    # the store still works afterwards
    assert store.rotate(NAME).number == 2


# A change run in a child process whose writes of regular files fail past a
# size limit (EFBIG, whoever runs it): prints what the store raised.
_CHANGE_CHILD = """
import json, sys
from sealedmeta import FileKeyStore
request = json.loads(sys.stdin.read())
store = FileKeyStore(request["repo"])
name = request["name"]
try:
    if request["op"] == "create":
        store.create_keyring(name, signing=request["signing"])
    elif request["op"] == "rotate":
        store.rotate(name)
    elif request["op"] == "set_state":
        store.set_state(name, request["version"], request["state"])
    else:
        source = FileKeyStore(request["source"])
        ring, keys = source.export_keyring(name)
        store.import_keyring(ring, keys, source.export_signing_keys(ring))
except Exception as exc:
    print(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
else:
    print(json.dumps({"type": None}))
"""


def change_with_file_size_limit(limit, **request):
    proc = subprocess.run(
        [sys.executable, "-c", _CHANGE_CHILD], input=json.dumps(request).encode(),
        capture_output=True, timeout=60, preexec_fn=file_size_limit(limit))
    assert proc.returncode == 0, proc.stderr.decode()
    return json.loads(proc.stdout)


def _retired(store, signing=False):
    store.create_keyring(NAME, signing=signing)
    store.rotate(NAME)
    store.set_state(NAME, 1, "retired")


# (id, setup, request, size limit, what the error names). Key files are 32
# bytes and descriptions well over 64: at 64 bytes the keys of a change are
# written and the description that would name them is not; at 16 the first
# key cannot be written.
WRITE_FAILURES = [
    ("create", lambda s: None, dict(op="create", name="new-ring", signing=False),
     64, "cannot create keyring 'new-ring'"),
    ("create-signing", lambda s: None,
     dict(op="create", name="new-ring", signing=True), 64,
     "cannot create keyring 'new-ring'"),
    ("create-first-key", lambda s: None,
     dict(op="create", name="new-ring", signing=True), 16,
     "cannot create keyring 'new-ring'"),
    ("rotate", lambda s: s.create_keyring(NAME), dict(op="rotate", name=NAME),
     64, "cannot rotate keyring 'cinder-backup'"),
    ("rotate-signing", lambda s: s.create_keyring(NAME, signing=True),
     dict(op="rotate", name=NAME), 64, "cannot rotate keyring 'cinder-backup'"),
    ("retire", lambda s: (s.create_keyring(NAME), s.rotate(NAME)),
     dict(op="set_state", name=NAME, version=1, state="retired"), 64,
     "cannot retire version 1 of keyring 'cinder-backup'"),
    ("reinstate", _retired,
     dict(op="set_state", name=NAME, version=1, state="decrypt-only"), 64,
     "cannot reinstate version 1 of keyring 'cinder-backup'"),
    ("destroy", lambda s: _retired(s, signing=True),
     dict(op="set_state", name=NAME, version=1, state="destroyed"), 64,
     "cannot destroy version 1 of keyring 'cinder-backup'"),
    ("import", None, dict(op="import", name=NAME), 64,
     "cannot import keyring 'cinder-backup'"),
]


@pytest.mark.parametrize("setup,request_,limit,what",
                         [case[1:] for case in WRITE_FAILURES],
                         ids=[case[0] for case in WRITE_FAILURES])
def test_failed_write_is_a_store_error_and_changes_nothing(
        tmp_path, store, repo, setup, request_, limit, what):
    """A write that really fails (EFBIG) during any change: one KeyStoreError
    naming the keyring and the operation, never a key, and the repository
    exactly as it was: no key file of the change left, no temporary file."""
    store.create_keyring("other")  # the repository and its lock exist
    secrets = []
    if setup is None:  # import: from another repository
        source = FileKeyStore(str(tmp_path / "source"))
        _retired(source, signing=True)
        source.set_state(NAME, 1, "destroyed")
        request_ = dict(request_, source=source.path)
        stores = (store, source)
    else:
        setup(store)
        stores = (store,)
    for each in stores:
        for name in each.list_keyrings():
            ring, keys = each.export_keyring(name)
            secrets += list(keys.values())
            secrets += list(each.export_signing_keys(ring).values())
    last = {name: store.get_keyring(name).versions[-1].number
            for name in store.list_keyrings()}
    before = snapshot(repo)
    got = change_with_file_size_limit(limit, repo=repo, **request_)
    assert got["type"] == "KeyStoreError", got
    message = got["message"]
    assert message.startswith(what + " in key repository %s: " % repo), message
    assert message.endswith(": File too large; nothing was changed"), message
    assert not re.search("[0-9a-f]{32}", message)
    for secret in secrets:
        assert secret.hex() not in message and repr(secret) not in message
    assert sm_cli.temp_files(repo) == []
    assert snapshot(repo) == before
    # Nothing left in the way: the same change goes through afterwards.
    if request_["op"] == "create":
        store.create_keyring(request_["name"], signing=request_["signing"])
    elif request_["op"] == "rotate":
        assert store.rotate(NAME).number == last[NAME] + 1
    elif request_["op"] == "set_state":
        assert store.set_state(NAME, 1, request_["state"]).state.value == (
            request_["state"])
    else:
        source = FileKeyStore(request_["source"])
        ring, keys = source.export_keyring(NAME)
        assert store.import_keyring(ring, keys,
                                    source.export_signing_keys(ring)) == ring


def test_change_in_place_but_not_synced_keeps_its_keys(store, repo,
                                                      monkeypatch):
    """The new description replaced the old one, then syncing the directory
    failed: the change took effect, so the new version's key stays, and the
    error says the change was written."""
    store.create_keyring(NAME)
    sync_dir = atomic.fsync_dir

    def failing_fsync_dir(path):
        with open(os.path.join(ring_dir(repo), "keyring.json")) as handle:
            if len(json.load(handle)["versions"]) == 2:
                raise OSError(5, "Input/output error")
        sync_dir(path)
    monkeypatch.setattr(atomic, "fsync_dir", failing_fsync_dir)
    with pytest.raises(exceptions.KeyStoreError,
                       match="cannot rotate keyring 'cinder-backup' in key"
                             " repository .*: Input/output error; the change"
                             " was written but not completed: check the"
                             " keyring with 'sealedmeta keyring show"
                             " cinder-backup'"):
        store.rotate(NAME)
    monkeypatch.undo()
    assert store.get_keyring(NAME).active.number == 2
    sealer = Sealer(store, keyring=NAME)
    assert sealer.open(sealer.seal({"a": 1}, {"b": "c"}), {"b": "c"}) == {"a": 1}


def test_destroyed_material_that_cannot_be_removed_is_reported(store, repo):
    """The description says destroyed, but the key file cannot go: said
    plainly (a store error naming the keyring), not left unnoticed."""
    _retired(store)
    os.unlink(key_path(repo, 1))
    os.mkdir(key_path(repo, 1))  # unlink() of a directory fails, even for root
    with pytest.raises(exceptions.KeyStoreError,
                       match="keyring 'cinder-backup': the key material of its"
                             " destroyed versions could not be removed from"):
        store.set_state(NAME, 1, "destroyed")
    assert store.get_keyring(NAME).version(1).state is kr.KeyState.DESTROYED


def test_atomic_write_file(tmp_path):
    path = tmp_path / "f"
    atomic.write_file(str(path), b"one")
    atomic.write_file(str(path), b"two", mode=0o640)
    assert path.read_bytes() == b"two"
    assert mode(path) == 0o640
    assert sm_cli.temp_files(str(tmp_path)) == []


def test_import_writes_the_keys_it_is_given_and_no_other(tmp_path, store):
    # What an import does and refuses: tests/keystore_contract.py.
    store.create_keyring(NAME)
    store.rotate(NAME)
    store.rotate(NAME)
    store.set_state(NAME, 1, "retired")
    store.set_state(NAME, 1, "destroyed")
    ring, keys = store.export_keyring(NAME)
    other = FileKeyStore(str(tmp_path / "elsewhere"))
    other.import_keyring(ring, keys)
    assert sorted(os.listdir(ring_dir(other.path))) == [
        "keyring.json", "v2.key", "v3.key"]
    assert mode(key_path(other.path, 2)) == 0o600
    third = FileKeyStore(str(tmp_path / "third"))
    with pytest.raises(exceptions.KeyStoreError):
        third.import_keyring(ring, {2: keys[2]})
    assert not os.path.exists(ring_dir(third.path))


def test_store_errors_never_carry_key_material(store, repo):
    store.create_keyring(NAME)
    store.rotate(NAME)
    key1 = store.get_key(NAME, 1)
    shutil.copy(key_path(repo, 2), key_path(repo, 1))
    with pytest.raises(exceptions.KeyStoreError) as info:
        store.get_key(NAME, 1)
    text = str(info.value) + repr(info.value)
    for key in (key1, store.get_key(NAME, 2)):
        assert key.hex() not in text and repr(key) not in text
