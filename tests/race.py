"""A real local user racing a root process: directory swaps, and what they
reached.

Shared by the ``rewrap`` race (tests/reliability) and the ``cinder reseal``
race (tests/cinder). Needs root (CI runs as root): the tests FAIL otherwise.

* :func:`local_user` creates an unprivileged user (``useradd``) and removes
  it afterwards;
* :class:`Swapper` runs, as that user, a loop exchanging directory entries
  with ``renameat2(RENAME_EXCHANGE)`` (a directory of theirs with a symbolic
  link to a root-only directory), through a directory descriptor it is
  handed, so it needs no access to the test's paths;
* :class:`Watch` counts every change the kernel reports (inotify) in
  directories nobody should write to;
* :func:`snapshot` records owner, mode, inode and content of a directory's
  files;
* :class:`Stopper` runs, as that user, a loop sending SIGSTOP to every
  process of theirs (``kill(-1, SIGSTOP)``): any child root forks to write
  as that user is stopped as soon as the loop meets it.
"""

import contextlib
import ctypes
import hashlib
import os
import shutil
import struct
import subprocess
import sys
import time

import pytest

_SWAPPER = r"""
import ctypes, os, select, sys
libc = ctypes.CDLL(None, use_errno=True)
RENAME_EXCHANGE = 2
fd = int(sys.argv[1])
pairs = [(sys.argv[i].encode(), sys.argv[i + 1].encode())
         for i in range(2, len(sys.argv), 2)]
ctl = sys.stdin.fileno()
os.set_blocking(ctl, False)
state = [False] * len(pairs)
swaps = 0
def swap(i):
    global swaps
    a, b = pairs[i]
    if libc.renameat2(fd, a, fd, b, RENAME_EXCHANGE) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    state[i] = not state[i]
    swaps += 1
def restore():
    for i in range(len(pairs)):
        if state[i]:
            swap(i)
paused = False
while True:
    try:
        cmd = os.read(ctl, 1)
    except BlockingIOError:
        cmd = None
    if cmd in (b"", b"q"):
        break
    if cmd == b"p":
        restore()
        paused = True
        os.write(1, b"k")
    elif cmd == b"r":
        paused = False
    if paused:
        select.select([ctl], [], [])
        continue
    for i in range(len(pairs)):
        swap(i)
restore()
os.write(1, b"%d\n" % swaps)
"""


_STOPPER = r"""
import os, signal, sys
os.set_blocking(0, False)
sent = 0
while True:
    try:
        if os.read(0, 1) in (b"", b"q"):
            break
    except BlockingIOError:
        pass
    try:
        os.kill(-1, signal.SIGSTOP)  # every process of ours but this one
        sent += 1
    except ProcessLookupError:  # none
        pass
os.write(1, b"%d\n" % sent)
"""


def require_root():
    if os.geteuid() != 0:
        pytest.fail("this test races a second local user against root: run it"
                    " as root (CI does)")
    for tool in ("useradd", "userdel"):
        if shutil.which(tool) is None and not os.path.exists("/usr/sbin/" + tool):
            pytest.fail("%s is missing (Debian package passwd)" % tool)


def _tool(name):
    return shutil.which(name) or "/usr/sbin/" + name


@contextlib.contextmanager
def local_user():
    """``(uid, gid)`` of a fresh unprivileged user, deleted afterwards."""
    require_root()
    name = "smrace%d" % os.getpid()
    # useradd refuses while another process holds /etc/passwd's lock (exit
    # 10): another test run on the machine may be adding its own user.
    for attempt in range(50):
        done = subprocess.run([_tool("useradd"), "--system", "--no-create-home",
                               "--shell", "/usr/sbin/nologin", "--user-group",
                               name], capture_output=True)
        if done.returncode != 10:
            break
        time.sleep(0.2)
    done.check_returncode()
    try:
        import pwd
        entry = pwd.getpwnam(name)
        yield entry.pw_uid, entry.pw_gid
    finally:
        subprocess.run([_tool("userdel"), name], capture_output=True)


def _python():
    # An interpreter the user can run whatever the checkout's permissions.
    return "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


def run_as(uid, gid, code, *args):
    """Run the Python *code* (argv: *args*) as user *uid*, group *gid*."""
    subprocess.run([_python(), "-c", code] + [str(a) for a in args],
                   user=uid, group=gid, extra_groups=[], cwd="/", env={},
                   check=True, capture_output=True)


class Swapper:
    """As user *uid*, exchange each pair of entries of the directory *path*
    (owned by that user) in a tight loop until paused or stopped."""

    def __init__(self, path, pairs, uid, gid):
        self._dir = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        argv = [_python(), "-c", _SWAPPER, str(self._dir)]
        for a, b in pairs:
            argv += [a, b]
        self.proc = subprocess.Popen(
            argv, user=uid, group=gid, extra_groups=[], cwd="/",
            pass_fds=(self._dir,), stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={})
        self.swaps = None

    def pause(self):
        """Return once every pair is back as it was and the loop waits."""
        self.proc.stdin.write(b"p")
        self.proc.stdin.flush()
        ack = self.proc.stdout.read(1)
        assert ack == b"k", self.proc.stderr.read().decode()

    def resume(self):
        self.proc.stdin.write(b"r")
        self.proc.stdin.flush()

    def stop(self):
        """Swaps made in all (every pair back as it was)."""
        if self.swaps is None:
            out, err = self.proc.communicate(b"q", timeout=600)
            os.close(self._dir)
            assert self.proc.returncode == 0, err.decode()
            self.swaps = int(out.strip())
        return self.swaps


class Stopper:
    """As user *uid*, stop every other process of that user, again and
    again, until stopped."""

    def __init__(self, uid, gid):
        self.uid = uid
        self.proc = subprocess.Popen(
            [_python(), "-c", _STOPPER], user=uid, group=gid, extra_groups=[],
            cwd="/", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={})
        self.sent = None

    def stop(self):
        """How many of its SIGSTOPs reached a process."""
        if self.sent is None:
            out, err = self.proc.communicate(b"q", timeout=600)
            assert self.proc.returncode == 0, err.decode()
            self.sent = int(out.strip())
        return self.sent


def processes_of(uid, but=()):
    """The pids of the processes of user *uid*, except *but*."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) not in but:
            try:
                if os.stat("/proc/" + name).st_uid == uid:
                    found.append(int(name))
            except OSError:  # gone meanwhile
                pass
    return found


# inotify(7)
_IN_MODIFY, _IN_ATTRIB, _IN_CLOSE_WRITE = 0x2, 0x4, 0x8
_IN_MOVED_FROM, _IN_MOVED_TO, _IN_CREATE, _IN_DELETE = 0x40, 0x80, 0x100, 0x200
_IN_DELETE_SELF, _IN_MOVE_SELF, _IN_Q_OVERFLOW = 0x400, 0x800, 0x4000
_CHANGES = (_IN_MODIFY | _IN_ATTRIB | _IN_CLOSE_WRITE | _IN_MOVED_FROM
            | _IN_MOVED_TO | _IN_CREATE | _IN_DELETE | _IN_DELETE_SELF
            | _IN_MOVE_SELF)


class Watch:
    """Every change (a file opened for writing, created, renamed, removed,
    its owner or mode changed) in *directories* from now on."""

    def __init__(self, directories):
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0, os.strerror(ctypes.get_errno())
        self.names = {}
        for directory in directories:
            wd = libc.inotify_add_watch(self.fd, os.fsencode(directory), _CHANGES)
            assert wd >= 0, os.strerror(ctypes.get_errno())
            self.names[wd] = directory
        self.events = []  # (directory, name, mask)

    def drain(self):
        """The events since the last call."""
        new = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                wd, mask, _, size = struct.unpack_from("iIII", data, offset)
                name = data[offset + 16:offset + 16 + size].rstrip(b"\0")
                offset += 16 + size
                new.append((self.names.get(wd, "?"), name.decode(errors="replace"),
                            "overflow" if mask & _IN_Q_OVERFLOW else hex(mask)))
        self.events += new
        return new

    def close(self):
        os.close(self.fd)


def snapshot(directory):
    """{name: (uid, gid, mode, inode, sha256)} of *directory*'s entries."""
    out = {}
    for name in sorted(os.listdir(directory)):
        st = os.lstat(os.path.join(directory, name))
        digest = None
        if os.path.isfile(os.path.join(directory, name)):
            with open(os.path.join(directory, name), "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
        out[name] = (st.st_uid, st.st_gid, oct(st.st_mode), st.st_ino, digest)
    return out
