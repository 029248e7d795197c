"""Files in trees other users can write, handled through directory handles.

A scan or a rewrap run as root over a tree a user can write must never be
steered out of it: between two system calls the user can swap a directory
of theirs for a symbolic link (``renameat2`` with ``RENAME_EXCHANGE``). So
nothing here re-resolves a path: a :class:`Tree` is a directory the admin
named, opened once; everything below it is reached from that descriptor one
component at a time, refusing symbolic links (``openat2`` with
``RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`` where the kernel has it, else
``openat`` with ``O_NOFOLLOW | O_DIRECTORY`` per component); files are
opened with ``O_PATH | O_NOFOLLOW`` and checked to be regular on the
descriptor before they are opened for reading, so no device node or FIFO is
ever opened; temporary files are created with ``O_EXCL | O_NOFOLLOW`` in the
directory's descriptor and renamed within it, after a last check that the
name still holds the file that was read (device and inode).

Owners: a process never gives a file it created to another user in a
directory that user (or anyone but it) can change. A file owned by the
running user is replaced by it. When root replaces another user's file, it
writes the new file itself only in a directory that is root's and writable
by no one else (nobody can tamper with that write); anywhere else the write
runs in a forked child that has become the file's owner (its uid and gid, no
supplementary groups), so the kernel allows exactly what that user could do
themself. Any other user's file is refused (:class:`NotOwner`).

That child is the user's, so the user may signal it: stopped (SIGSTOP), it
would hold up the process waiting for it. The parent therefore waits for
the child to exit *or stop*, kills it as soon as it stops, and kills it too
when it is still running after a deadline (the ``user_write_timeout``
option, :data:`DEFAULT_USER_WRITE_TIMEOUT` seconds by default); either way
that file's write fails (:class:`WriteAbandoned`) and the caller goes on.
"""

import contextlib
import ctypes
import dataclasses
import errno
import os
import signal
import stat
import threading

from sealedmeta import atomic
from sealedmeta import exceptions

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC

# openat2(2): Linux 5.6.
_SYS_OPENAT2 = 437
_RESOLVE_NO_MAGICLINKS = 0x02
_RESOLVE_NO_SYMLINKS = 0x04
_RESOLVE_BENEATH = 0x08
_openat2 = None  # ctypes function, False when the kernel lacks it
_PATH_MAX = 4095  # bytes of a path openat2 takes, without the final NUL

# Seconds a write made as another user (see as_user) may take.
DEFAULT_USER_WRITE_TIMEOUT = 60

# How deep below a PATH the walk goes: a directory deeper than this is
# reported, not listed (far past any real backup tree; it bounds what a
# user's tree can cost a scan, as a file is read from the tree's handle
# through every directory above it).
MAX_DEPTH = 4096
# Directory handles the walk keeps open at once (one per directory on the
# current path that has subdirectories left): well below the usual limit
# of 1,024 open files.
_MAX_HELD = 64


class FileChanged(exceptions.SealedMetaError):
    """The name no longer holds the file that was read."""


class NotOwner(exceptions.SealedMetaError):
    """The file belongs to another user and we may not write as that user."""


class WriteAbandoned(Exception):
    """The child writing as another user stopped or ran past its deadline,
    and was killed."""


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def _check_parts(parts):
    for part in parts:
        if part in ("", ".", ".."):
            why = "an empty component" if not part else "a %r component" % part
        elif "/" in part or "\0" in part:
            why = "a '/' or NUL in a name"
        else:
            continue
        # What is wrong, not the name: a caller may quote it once.
        raise OSError(errno.EINVAL, "not a plain directory name: %s" % why)


def split_relative(path):
    """The components of the relative *path* (e.g. a Cinder container);
    OSError for an absolute path, a NUL, or an empty, ``.`` or ``..``
    component (a doubled or trailing ``/`` included): nothing is dropped or
    normalised, so one directory has one name."""
    if path.startswith("/"):
        raise OSError(errno.EINVAL, "not a relative path")
    parts = tuple(path.split("/"))
    _check_parts(parts)
    return parts


def _openat2_fn():
    global _openat2
    if _openat2 is None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.syscall
            fn.restype = ctypes.c_long
            _openat2 = fn
        except (OSError, AttributeError):
            _openat2 = False
    return _openat2


def _open_beneath2(fn, dir_fd, relative):
    how = _OpenHow(_DIR_FLAGS, 0, _RESOLVE_BENEATH | _RESOLVE_NO_SYMLINKS
                   | _RESOLVE_NO_MAGICLINKS)
    fd = fn(ctypes.c_long(_SYS_OPENAT2), ctypes.c_int(dir_fd),
            ctypes.c_char_p(os.fsencode(relative)), ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)))
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), relative)
    return fd


def _chunks(parts):
    """*parts* in runs whose joined path fits in PATH_MAX (openat2 takes
    no longer path; a name is at most 255 bytes)."""
    chunk, size = [], 0
    for part in parts:
        length = len(os.fsencode(part)) + 1
        if chunk and size + length > _PATH_MAX:
            yield chunk
            chunk, size = [], 0
        chunk.append(part)
        size += length
    if chunk:
        yield chunk


def _open_beneath_chunks(fn, dir_fd, parts):
    """openat2 one run of *parts* at a time, each from the last one's
    descriptor (each run beneath it, no link anywhere)."""
    fd = None
    try:
        for chunk in _chunks(parts):
            sub = _open_beneath2(fn, dir_fd if fd is None else fd, "/".join(chunk))
            if fd is not None:
                os.close(fd)
            fd = sub
    except BaseException:
        if fd is not None:
            os.close(fd)
        raise
    return fd


def open_beneath(dir_fd, parts):
    """A new descriptor of the directory *parts* below *dir_fd*, reached
    without following any symbolic link (OSError, e.g. ELOOP, otherwise)."""
    global _openat2
    _check_parts(parts)
    if not parts:
        return os.open(".", _DIR_FLAGS, dir_fd=dir_fd)
    fn = _openat2_fn()
    if fn:
        try:
            return _open_beneath_chunks(fn, dir_fd, parts)
        except OSError as exc:
            if exc.errno in (errno.ENOSYS, errno.EPERM, errno.E2BIG):
                _openat2 = False  # no openat2 here (or a seccomp filter)
            elif exc.errno != errno.EAGAIN:  # EAGAIN: a rename raced; retry below
                raise
    fd = os.open(".", _DIR_FLAGS, dir_fd=dir_fd)
    try:
        for part in parts:
            sub = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = sub
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_beneath(dir_fd, parts, mode):
    """A descriptor of the directory *parts* below *dir_fd*, creating what
    is missing of it (``mkdirat``, then entered with ``O_NOFOLLOW``: a
    symbolic link is never followed, made or not by us); a directory this
    call created last is given *mode*. OSError otherwise."""
    _check_parts(parts)
    fd = os.open(".", _DIR_FLAGS, dir_fd=dir_fd)
    try:
        for n, part in enumerate(parts):
            created = False
            try:
                os.mkdir(part, 0o777, dir_fd=fd)
                created = True
            except FileExistsError:  # made meanwhile, or there before
                pass
            sub = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = sub
            if created and n == len(parts) - 1:
                os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


class Tree:
    """A directory named by the admin (symbolic links in that name are
    followed, as the admin asked for it), held open; the root of every
    operation on the files found below it."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, _DIR_FLAGS)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __del__(self):
        self.close()


@dataclasses.dataclass(frozen=True)
class Location:
    """Where a file sits: *name* in directory *parts* below *tree*."""

    tree: Tree
    parts: tuple
    name: str

    @contextlib.contextmanager
    def directory(self):
        """The descriptor of the file's directory, for the with block."""
        fd = open_beneath(self.tree.fd, self.parts)
        try:
            yield fd
        finally:
            os.close(fd)

    def lstat(self, dir_fd):
        return os.stat(self.name, dir_fd=dir_fd, follow_symlinks=False)


def location_of(path):
    """The :class:`Location` of a file named by the admin."""
    directory, name = os.path.split(os.path.abspath(path))
    return Location(Tree(directory), (), name)


def walk(tree):
    """``(parts, name, lstat, problem)`` for every entry below *tree* that
    is not a directory (symbolic links included, never followed), files of
    a directory in name order before its subdirectories, depth first.
    A directory that cannot be opened or listed (a symbolic link swapped in
    meanwhile among them), or that lies deeper than :data:`MAX_DEPTH`
    directories, gives ``(its parts, None, None, why)``.

    Iterative, so a deep tree costs no Python stack. A directory is opened
    by its name in its parent's handle (``O_NOFOLLOW | O_DIRECTORY``),
    which is kept open while the parent has subdirectories left to walk;
    past :data:`_MAX_HELD` such handles, from the tree's handle
    (:func:`open_beneath`).
    """
    walker = _Walker(tree)
    try:
        yield from walker.run()
    finally:
        walker.close()


class _Walker:
    def __init__(self, tree):
        self.tree = tree
        self.stack = []  # per directory with subdirectories left: [parts, fd, names]
        self.held = 0    # frames of the stack holding their fd

    def close(self):
        for frame in self.stack:
            if frame[1] is not None:
                os.close(frame[1])
                frame[1] = None

    def run(self):
        try:
            fd = open_beneath(self.tree.fd, ())
        except OSError as exc:
            yield (), None, None, _cannot_list(exc)
            return
        yield from self._list((), fd)
        while self.stack:
            frame = self.stack[-1]
            parts, parent_fd, left = frame
            sub = parts + (left.pop(),)
            if not left:  # its last subdirectory: the parent is done
                self.stack.pop()
            try:
                fd = self._open(sub, parent_fd)
            finally:
                if not left and parent_fd is not None:
                    os.close(parent_fd)
                    frame[1] = None
                    self.held -= 1
            if isinstance(fd, str):
                yield sub, None, None, fd
            else:
                yield from self._list(sub, fd)

    def _open(self, parts, parent_fd):
        """A descriptor of the directory *parts*, or why not."""
        if len(parts) > MAX_DEPTH:
            return "deeper than %d directories below the PATH: not walked" % (
                MAX_DEPTH)
        try:
            if parent_fd is not None:
                return os.open(parts[-1], _DIR_FLAGS | os.O_NOFOLLOW,
                               dir_fd=parent_fd)
            return open_beneath(self.tree.fd, parts)
        except OSError as exc:
            return _cannot_list(exc)

    def _list(self, parts, fd):
        """Yield the entries of directory *fd* (*parts*) that are not
        directories; push its subdirectories. Owns *fd*."""
        keep = False
        try:
            try:
                with os.scandir(fd) as entries:
                    listed = sorted((e.name, e.is_dir(follow_symlinks=False))
                                    for e in entries)
            except OSError as exc:
                yield parts, None, None, _cannot_list(exc)
                return
            for name, is_dir in listed:
                if is_dir:
                    continue
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except OSError as exc:
                    yield parts, name, None, "cannot examine: %s" % (
                        exc.strerror or exc)
                    continue
                yield parts, name, st, None
            subdirs = [name for name, is_dir in reversed(listed) if is_dir]
            if subdirs:
                keep = self.held < _MAX_HELD
                self.held += keep
                self.stack.append([parts, fd if keep else None, subdirs])
        finally:
            if not keep:
                os.close(fd)


def _cannot_list(exc):
    return "cannot list directory: %s" % (exc.strerror or exc)


def open_regular(dir_fd, name, flags=os.O_RDONLY):
    """``(fd, fstat)``: *name* in *dir_fd* opened with *flags* (for reading
    by default) when it is a regular file (never a link, device node or
    FIFO: those are not even opened); OSError otherwise."""
    path_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        st = os.fstat(path_fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        try:
            # The very inode the O_PATH descriptor holds.
            fd = os.open("/proc/self/fd/%d" % path_fd, flags | os.O_CLOEXEC)
        except FileNotFoundError:  # no /proc: by name, and compare
            fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC, dir_fd=dir_fd)
    finally:
        os.close(path_fd)
    got = os.fstat(fd)
    if (got.st_dev, got.st_ino) != (st.st_dev, st.st_ino):
        os.close(fd)
        raise OSError(errno.EAGAIN, "replaced while being opened")
    return fd, got


def write_regular(dir_fd, name, mode):
    """A descriptor open for writing of *name* in *dir_fd*: a new file
    (``O_EXCL | O_NOFOLLOW``) or, when the name is taken, the regular file
    it holds, emptied (as :func:`open_regular` opens it: never a link,
    device node or FIFO); given *mode* either way."""
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except FileExistsError:
        fd, _ = open_regular(dir_fd, name, os.O_WRONLY | os.O_TRUNC)
    try:
        os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_same(dir_fd, name, expect, content=True):
    """Raise FileChanged unless *name* in *dir_fd* is still the regular
    file *expect* (an lstat) describes: same device and inode, and with
    *content*, same size and modification time."""
    try:
        now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise FileChanged("gone") from None
    key = (now.st_dev, now.st_ino)
    old = (expect.st_dev, expect.st_ino)
    if content:
        key += (now.st_size, now.st_mtime_ns)
        old += (expect.st_size, expect.st_mtime_ns)
    if key != old or not stat.S_ISREG(now.st_mode):
        raise FileChanged("changed")
    return now


def _private(dir_fd):
    """Whether only this process's user can change the directory."""
    st = os.fstat(dir_fd)
    return st.st_uid == os.geteuid() and not st.st_mode & 0o022


def replace(dir_fd, name, data, expect, durable=True,
            timeout=DEFAULT_USER_WRITE_TIMEOUT):
    """Atomically replace *name* in *dir_fd*, the regular file *expect*
    describes, with *data*, keeping its mode and owner (see the module's
    documentation for who writes). Raises FileChanged (nothing written),
    NotOwner, WriteAbandoned (a write as another user that stopped or took
    longer than *timeout* seconds), or OSError."""
    check_same(dir_fd, name, expect)
    mode = stat.S_IMODE(expect.st_mode)
    uid, gid = expect.st_uid, expect.st_gid
    euid = os.geteuid()
    if uid == euid:
        owner = None if gid == os.getegid() else (-1, gid)
        atomic.write_at(dir_fd, name, data, mode, durable, owner,
                        lambda: check_same(dir_fd, name, expect, content=False))
    elif euid == 0 and _private(dir_fd):
        atomic.write_at(dir_fd, name, data, mode, durable, (uid, gid),
                        lambda: check_same(dir_fd, name, expect, content=False))
    elif euid == 0:
        as_user(uid, gid, atomic.write_at, dir_fd, name, data, mode, durable,
                None, lambda: check_same(dir_fd, name, expect, content=False),
                timeout=timeout)
    else:
        raise NotOwner("owned by uid %d: only that user or root can replace it"
                       % uid)


def remove(dir_fd, name, expect):
    """Unlink *name* in *dir_fd* if it is still the file *expect* describes
    (FileChanged otherwise). Only the name, in that directory, goes."""
    check_same(dir_fd, name, expect)
    os.unlink(name, dir_fd=dir_fd)


def as_user(uid, gid, fn, *args, timeout=DEFAULT_USER_WRITE_TIMEOUT):
    """Run ``fn(*args)`` in a forked child that is user *uid*, group *gid*
    and nothing else; re-raise its OSError or FileChanged here.

    That user may signal the child (it is theirs): a child that stops
    (SIGSTOP, SIGTSTP, ...) is killed as soon as it stops, and one still
    running after *timeout* seconds is killed then; both raise
    :class:`WriteAbandoned`, so a user can fail the write of their own
    file but never hold up the process that asked for it.
    """
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: plain system calls only, then _exit
        code = 0
        try:
            os.close(read_end)
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            fn(*args)
        except FileChanged:
            os.write(write_end, b"C")
            code = 1
        except OSError as exc:
            os.write(write_end, b"E%d" % (exc.errno or 0))
            code = 1
        except BaseException:
            os.write(write_end, b"X")
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    try:
        status = _wait_child(pid, uid, timeout)
        # The child has exited: what it said is in the pipe (a sibling forked
        # by another thread meanwhile may still hold its write end open, so
        # do not wait for the end of the pipe).
        os.set_blocking(read_end, False)
        try:
            said = os.read(read_end, 64)
        except BlockingIOError:
            said = b""
    finally:
        os.close(read_end)
    if said.startswith(b"C"):
        raise FileChanged("changed")
    if said.startswith(b"E"):
        err = int(said[1:] or 0)
        raise OSError(err, os.strerror(err))
    if said or not os.WIFEXITED(status) or os.WEXITSTATUS(status):
        raise OSError(errno.EIO, "the write as uid %d failed" % uid)


def _wait_child(pid, uid, timeout):
    """The wait status of child *pid* once it has exited; kills it and
    raises WriteAbandoned when it stops first or outlives *timeout*.

    ``waitid(WEXITED | WSTOPPED | WNOWAIT)`` returns as soon as the child
    exits or stops, and leaves it unreaped, so its pid cannot be another
    process's when the deadline's timer kills it.
    """
    expired = threading.Event()

    def expire():
        expired.set()
        os.kill(pid, signal.SIGKILL)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    stopped = None
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WSTOPPED | os.WNOWAIT)
        timer.cancel()
        timer.join()  # it has run, or never will: the pid is still the child
        if info.si_code in (os.CLD_STOPPED, os.CLD_TRAPPED):
            stopped = info.si_status
            os.kill(pid, signal.SIGKILL)
    except BaseException:
        timer.cancel()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    _, status = os.waitpid(pid, 0)
    kept = "the file holds its old content or the new one"
    if stopped is not None:
        raise WriteAbandoned(
            "the write as uid %d was stopped (signal %d) and has been killed;"
            " %s" % (uid, stopped, kept))
    if expired.is_set():
        raise WriteAbandoned(
            "the write as uid %d did not finish within %g s and has been"
            " killed; %s" % (uid, timeout, kept))
    return status
