"""The embedded key store: a private directory on local disk.

Layout (see the admin guide)::

    REPO/               0700, owned by the user running sealedmeta
      .lock             flock()ed around every change, by every process
      NAME/             0700, one per keyring
        keyring.json    0600, the KeyRing description
        v1.key ...      0600, 32 raw bytes per version
        v1.sign ...     0600, signing keyrings only: the version's Ed25519
                        private key (the 32-byte seed)

Every file is replaced atomically and durably, so a crash at any instant
leaves the previous state or the new one. A write that fails (disk full,
file too large, read-only file system, ...) raises KeyStoreError naming the
keyring and the operation, and leaves the keyring as it was: the files the
change had already written (the new version's keys) are removed again. A
repository that group or others can read is refused rather than used, and
so is one below a directory another user could change (every directory
on its path as configured, from ``/`` down, must be root's or ours and
writable by no one else, or sticky like /tmp; a symbolic link on the way
is followed only when root or we own it, and its target is checked the
same way); its directories and files are checked on the open descriptor
(``O_NOFOLLOW``), never by a separate ``lstat``.
"""

import contextlib
import errno
import fcntl
import json
import os
import stat

from sealedmeta import atomic
from sealedmeta import conf as sm_conf
from sealedmeta import crypto
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import names
from sealedmeta import signing
from sealedmeta.keystores import base
from sealedmeta.keystores.base import check_import

_STATE = "keyring.json"
_MAX_STATE = 1024 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_LINKS = 40  # symbolic links followed on the repository's path, as Linux


def _components(path):
    """The components of *path*, the first one last (a stack)."""
    return [part for part in reversed(path.split("/")) if part not in ("", ".")]


class FileKeyStore(base.KeyStore):

    def __init__(self, path):
        self.path = os.path.abspath(os.path.expanduser(path))

    @classmethod
    def from_config(cls, conf):
        return cls(sm_conf.key_repository(conf))

    def __repr__(self):
        return "FileKeyStore(%r)" % self.path

    def describe(self):
        return "file key store %s" % self.path

    # -- checks -----------------------------------------------------------

    def _check_parents(self, existing=False):
        """Refuse the repository unless every directory on its path, as
        configured, from ``/`` down, belongs to root or to us and lets no
        one else rename what it holds (group/other-writable only with the
        sticky bit, as /tmp): otherwise another user could swap the
        repository, or a directory or symbolic link on its way, for one of
        theirs. Walked through directory handles, one component at a time,
        each directory checked on its descriptor before anything in it is
        looked at: a symbolic link is followed only from a directory so
        checked, when it is root's or ours (in a sticky directory its owner
        could replace it), and its target is walked the same way. So what
        is checked is what the kernel resolves when the path is used.
        *existing*: stop, without error, at the first component that does
        not exist (before creating the repository)."""
        fd = os.open("/", _DIR_FLAGS)
        where = []  # the directory fd is, as walked
        todo = _components(os.path.dirname(self.path))
        links = 0
        try:
            self._check_parent(fd, where)
            while todo:
                part = todo.pop()
                if part == "..":
                    sub = os.open("..", _DIR_FLAGS, dir_fd=fd)
                    where = where[:-1]
                else:
                    try:
                        st = os.stat(part, dir_fd=fd, follow_symlinks=False)
                        if stat.S_ISLNK(st.st_mode):
                            links += 1
                            target = self._parent_link(fd, where, part, st, links)
                            todo.extend(_components(target))
                            if target.startswith("/"):
                                sub, where = os.open("/", _DIR_FLAGS), []
                                os.close(fd)
                                fd = sub
                                self._check_parent(fd, where)
                            continue
                        sub = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
                    except FileNotFoundError:
                        if existing:
                            return
                        raise self._cannot_check(where + [part], "No such file"
                                                 " or directory") from None
                    except OSError as exc:
                        raise self._cannot_check(where + [part],
                                                 exc.strerror) from None
                    where = where + [part]
                os.close(fd)
                fd = sub
                self._check_parent(fd, where)
        finally:
            os.close(fd)

    def _cannot_check(self, where, why):
        return exceptions.KeyStoreError(
            "cannot check key repository %s: %s: %s" % (
                self.path, "/" + "/".join(where), why))

    def _parent_link(self, dir_fd, where, name, st, links):
        """The target of the symbolic link *name* on the repository's path,
        in the checked directory *dir_fd*; refused when another user owns
        it or there are too many links."""
        shown = "/" + "/".join(where + [name])
        if links > _MAX_LINKS:
            raise self._cannot_check(where + [name], "Too many levels of"
                                     " symbolic links")
        if st.st_uid not in (0, os.geteuid()):
            raise exceptions.KeyStoreError(
                "refusing key repository %s: the symbolic link %s on its path"
                " is owned by uid %d, who could point it elsewhere" % (
                    self.path, shown, st.st_uid))
        return os.readlink(name, dir_fd=dir_fd)

    def _check_parent(self, fd, where):
        """Refuse the directory *fd* (at *where*) on the repository's path
        unless only root or we can change what it holds."""
        st = os.fstat(fd)
        shown = "/" + "/".join(where)
        if st.st_uid not in (0, os.geteuid()):
            raise exceptions.KeyStoreError(
                "refusing key repository %s: %s above it is owned by"
                " uid %d, who could replace it" % (
                    self.path, shown, st.st_uid))
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise exceptions.KeyStoreError(
                "refusing key repository %s: %s above it has mode %04o:"
                " group or others could replace it" % (
                    self.path, shown, stat.S_IMODE(st.st_mode)))

    def _open_private(self, path, kind):
        """A descriptor of *path*, a directory or regular file (never
        through a symbolic link) owned by us and closed to group and
        others; checked on the descriptor, so it is the one that is read."""
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (
            os.O_DIRECTORY if kind == "dir" else os.O_NONBLOCK)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and os.path.lexists(path):
                raise exceptions.KeyStoreError("%s is not a %s" % (
                    path, "directory" if kind == "dir" else "regular file")) from None
            raise exceptions.KeyStoreError(
                "cannot read key repository %s: %s" % (path, exc.strerror)) from None
        try:
            self._check_private(os.fstat(fd), path, kind)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _check_private(self, st, path, kind):
        if kind == "dir" and not stat.S_ISDIR(st.st_mode):
            raise exceptions.KeyStoreError("%s is not a directory" % path)
        if kind == "file" and not stat.S_ISREG(st.st_mode):
            raise exceptions.KeyStoreError("%s is not a regular file" % path)
        if st.st_uid != os.geteuid():
            raise exceptions.KeyStoreError(
                "refusing key repository %s: owned by uid %d, not by the"
                " current user" % (path, st.st_uid))
        if st.st_mode & 0o077:
            raise exceptions.KeyStoreError(
                "refusing key repository %s: mode %04o lets group or others"
                " in; run chmod %s %s" % (path, stat.S_IMODE(st.st_mode),
                                         "700" if kind == "dir" else "600", path))

    def _check_dir(self, path):
        os.close(self._open_private(path, "dir"))

    def _read_private(self, path, limit):
        """At most *limit* bytes of the private regular file *path*."""
        fd = self._open_private(path, "file")
        with os.fdopen(fd, "rb") as handle:
            return handle.read(limit)

    def _repo(self, create=False):
        if not os.path.isdir(self.path):
            if not create:
                return None
            # Nothing is made below a directory another user controls.
            self._check_parents(existing=True)
            try:
                os.makedirs(self.path, mode=0o700, exist_ok=True)
                os.chmod(self.path, 0o700)
            except OSError as exc:
                raise exceptions.KeyStoreError(
                    "cannot create key repository %s: %s"
                    % (self.path, exc.strerror)) from None
        self._check_parents()
        self._check_dir(self.path)
        return self.path

    def _ring_dir(self, name):
        names.check_keyring_name(name)
        return os.path.join(self.path, name)

    @contextlib.contextmanager
    def _locked(self):
        self._repo(create=True)
        lock_path = os.path.join(self.path, ".lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            raise exceptions.KeyStoreError(
                "cannot open lock %s: %s" % (lock_path, exc.strerror)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # -- reading ----------------------------------------------------------

    def list_keyrings(self):
        if self._repo() is None:
            return []
        return sorted(
            entry for entry in os.listdir(self.path)
            if not entry.startswith(".")
            and os.path.isfile(os.path.join(self.path, entry, _STATE)))

    def get_keyring(self, name):
        directory = self._ring_dir(name)
        if self._repo() is None or not os.path.isfile(
                os.path.join(directory, _STATE)):
            raise exceptions.NoSuchKeyring(
                "no keyring %r in key repository %s" % (name, self.path))
        self._check_dir(directory)
        ring = kr.from_dict(self._read_json(os.path.join(directory, _STATE)))
        if ring.name != name:
            # A copied or edited description: writing it back would land in
            # another keyring's directory.
            raise exceptions.KeyStoreError(
                "keyring description in %s names keyring %r" % (directory, ring.name))
        return ring

    def _read_json(self, path):
        try:
            raw = self._read_private(path, _MAX_STATE + 1)
        except OSError as exc:
            raise exceptions.KeyStoreError(
                "cannot read %s: %s" % (path, exc.strerror)) from None
        if len(raw) > _MAX_STATE:
            raise exceptions.KeyStoreError("%s is over %d bytes" % (path, _MAX_STATE))
        try:
            return json.loads(raw)
        except ValueError:
            raise exceptions.KeyStoreError("%s is not valid JSON" % path) from None

    def get_key(self, name, version):
        ring = self.get_keyring(name)
        current = base.openable_version(ring, version)
        return self._read_key(name, current)

    def get_signing_key(self, name, version):
        ring = self.get_keyring(name)
        current = base.signing_version(ring, version)
        return self._read_signing_key(name, current)

    def export_signing_keys(self, ring):
        return {v.number: self._read_signing_key(ring.name, v)
                for v in ring.versions
                if v.state is not kr.KeyState.DESTROYED
                and v.public_key is not None}

    def _read_signing_key(self, name, current):
        version = current.number
        if current.public_key is None:
            raise exceptions.KeyUnavailable(
                "version %d of keyring %r has no signing key" % (version, name))
        path = os.path.join(self._ring_dir(name), "v%d.sign" % version)
        seed = self._read_private(path, signing.SEED_SIZE + 1)
        if (len(seed) != signing.SEED_SIZE
                or signing.public_key_of(seed) != current.public_key):
            raise exceptions.KeyStoreError(
                "signing key file for version %d of keyring %r does not match"
                " its public key" % (version, name))
        return seed

    def export_keyring(self, name):
        ring = self.get_keyring(name)
        return ring, {v.number: self._read_key(name, v) for v in ring.versions
                      if v.state is not kr.KeyState.DESTROYED}

    def _read_key(self, name, current):
        version = current.number
        path = os.path.join(self._ring_dir(name), "v%d.key" % version)
        key = self._read_private(path, crypto.KEY_SIZE + 1)
        if len(key) != crypto.KEY_SIZE or crypto.key_id(key) != current.key_id:
            raise exceptions.KeyStoreError(
                "key file for version %d of keyring %r does not match its key id"
                % (version, name))
        return key

    # -- changing ---------------------------------------------------------

    @contextlib.contextmanager
    def _changing(self, name, what, before):
        """Run the writes of one change to keyring *name*; *before* is the
        KeyRing as it was (None: it did not exist).

        The body appends to the yielded list every file it writes and the
        keyring's directory if it made it. When the body fails, what it
        wrote that the description on disk does not name is removed again,
        and an OSError (disk full, file too large, read-only, denied...)
        becomes a KeyStoreError that says *what* failed and the state the
        keyring is left in -- never a key.
        """
        written = []
        try:
            yield written
        except BaseException as exc:
            state = self._undo(name, before, written)
            if not isinstance(exc, OSError):
                raise
            raise exceptions.KeyStoreError(
                "cannot %s in key repository %s: %s; %s"
                % (what, self.path, exc.strerror or exc, state)) from None

    def _undo(self, name, before, written):
        """Remove the files in *written* (and a directory made) that the
        keyring description on disk does not name; what state it is in."""
        if not written:
            return "nothing was changed"
        try:
            now = self.get_keyring(name)
        except exceptions.NoSuchKeyring:
            now = None
        except exceptions.KeyStoreError as exc:
            return ("its description cannot be read back (%s), so it may have"
                    " changed: check it with 'sealedmeta keyring show %s'"
                    % (exc, name))
        named = {_STATE}  # replaced atomically: the old one, or the new
        for version in now.versions if now is not None else ():
            if version.state is not kr.KeyState.DESTROYED:
                named.update("v%d.%s" % (version.number, suffix)
                             for suffix in ("key", "sign"))
        left = []
        for path in reversed(written):
            try:
                if os.path.isdir(path):
                    if now is None:
                        os.rmdir(path)
                elif os.path.basename(path) not in named:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            except OSError as exc:
                left.append("%s (%s)" % (path, exc.strerror))
        with contextlib.suppress(OSError):
            atomic.fsync_dir(os.path.dirname(written[0]))
        if now != before:
            return ("the change was written but not completed: check the"
                    " keyring with 'sealedmeta keyring show %s'" % name)
        if left:
            return ("the keyring is unchanged, but files it does not use could"
                    " not be removed: %s" % ", ".join(left))
        return "nothing was changed"

    def _write_key(self, written, directory, number, key):
        written.append(os.path.join(directory, "v%d.key" % number))
        atomic.write_file(written[-1], key)

    def _write_signing_key(self, written, directory, number, seed):
        written.append(os.path.join(directory, "v%d.sign" % number))
        atomic.write_file(written[-1], seed)

    def _write_ring(self, written, ring):
        written.append(os.path.join(self._ring_dir(ring.name), _STATE))
        atomic.write_file(written[-1],
                          json.dumps(ring.as_dict(), indent=1).encode("utf-8"))

    def _make_ring_dir(self, written, directory):
        if not os.path.lexists(directory):
            written.append(directory)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        os.chmod(directory, 0o700)

    def create_keyring(self, name, signing=False):
        return self._create(name, signing)

    def _create(self, name, sign):
        directory = self._ring_dir(name)
        with self._locked():
            if os.path.exists(os.path.join(directory, _STATE)):
                raise exceptions.KeyringExists(
                    "keyring %r already exists in %s" % (name, self.path))
            key = os.urandom(crypto.KEY_SIZE)
            seed = signing.new_seed() if sign else None
            ring = kr.new_keyring(
                name, crypto.key_id(key),
                public_key=None if seed is None else signing.public_key_of(seed))
            with self._changing(name, "create keyring %r" % name,
                                None) as written:
                self._make_ring_dir(written, directory)
                # Keys first, description last: a crash in between leaves no
                # keyring.
                self._write_key(written, directory, 1, key)
                if seed is not None:
                    self._write_signing_key(written, directory, 1, seed)
                self._write_ring(written, ring)
                atomic.fsync_dir(self.path)
            return ring

    def rotate(self, name, signing=False):
        return self._rotate(name, signing)

    def _rotate(self, name, sign):
        with self._locked():
            ring = self.get_keyring(name)
            key = os.urandom(crypto.KEY_SIZE)
            seed = (signing.new_seed() if ring.signing or sign
                    else None)
            new_ring, version = kr.rotated(
                ring, crypto.key_id(key),
                public_key=None if seed is None else signing.public_key_of(seed))
            directory = self._ring_dir(name)
            with self._changing(name, "rotate keyring %r" % name,
                                ring) as written:
                # The new keys are durable before the description names them.
                self._write_key(written, directory, version.number, key)
                if seed is not None:
                    self._write_signing_key(written, directory, version.number,
                                            seed)
                self._write_ring(written, new_ring)
            return version

    _VERBS = {kr.KeyState.RETIRED: "retire",
              kr.KeyState.DECRYPT_ONLY: "reinstate",
              kr.KeyState.PENDING_DESTRUCTION: "schedule the destruction of",
              kr.KeyState.DESTROYED: "destroy"}

    def set_state(self, name, version, state, destroy_after=None):
        with self._locked():
            ring = self.get_keyring(name)
            new_ring = kr.transitioned(ring, version, state, destroy_after)
            updated = new_ring.version(version)
            what = "%s version %d of keyring %r" % (
                self._VERBS.get(updated.state, "change"), version, name)
            with self._changing(name, what, ring) as written:
                self._write_ring(written, new_ring)
            self._sweep(new_ring)
            return updated

    def import_keyring(self, ring, keys, signing_keys=None):
        """Create *ring* as it is, with *keys* (version number -> key bytes).

        Every non-destroyed version needs its key, and each key must match its
        version's key id, so envelopes sealed elsewhere open here. The same
        for *signing_keys* (version number -> seed) and public keys.
        """
        signing_keys = signing_keys or {}
        check_import(ring, keys, signing_keys)
        directory = self._ring_dir(ring.name)
        with self._locked():
            if os.path.exists(os.path.join(directory, _STATE)):
                raise exceptions.KeyringExists(
                    "keyring %r already exists in %s" % (ring.name, self.path))
            with self._changing(ring.name, "import keyring %r" % ring.name,
                                None) as written:
                self._make_ring_dir(written, directory)
                for number, key in sorted(keys.items()):
                    self._write_key(written, directory, number, key)
                for number, seed in sorted(signing_keys.items()):
                    self._write_signing_key(written, directory, number, seed)
                self._write_ring(written, ring)
                atomic.fsync_dir(self.path)
            return ring

    def _sweep(self, ring):
        """Remove the material of destroyed versions (also after a crash)."""
        directory = self._ring_dir(ring.name)
        removed = False
        try:
            for version in ring.versions:
                if version.state is kr.KeyState.DESTROYED:
                    for suffix in ("key", "sign"):
                        try:
                            os.unlink(os.path.join(
                                directory, "v%d.%s" % (version.number, suffix)))
                            removed = True
                        except FileNotFoundError:
                            pass
            if removed:
                atomic.fsync_dir(directory)
        except OSError as exc:
            raise exceptions.KeyStoreError(
                "keyring %r: the key material of its destroyed versions could"
                " not be removed from %s (%s); remove their v*.key and v*.sign"
                " files by hand" % (ring.name, directory, exc.strerror)) from None
