"""Durable, atomic file replacement: temp file, fsync, rename, fsync dir.

A reader (or a crash at any instant) sees either the old file or the new one,
never a mix.
"""

import contextlib
import os
import secrets
import tempfile

# Name prefix of the temporary files; a crash can leave one behind, never a
# partly written *path*.
TEMP_PREFIX = ".tmp-"
# The 8 characters after it, drawn as tempfile.mkstemp draws them.
_TEMP_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path, data, mode=0o600, durable=True):
    """Atomically replace *path* with *data* (bytes), created with *mode*.

    For paths no other user can change (the key store's); in a tree another
    user can write, see :func:`write_at` and :mod:`sealedmeta.safefs`.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    try:
        # The file object owns the descriptor from here on: closed whatever
        # fails next.
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        # The write's own error is the one to report, not a failure to
        # remove the temporary file (which scans skip anyway).
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(directory)


def write_at(dir_fd, name, data, mode=0o600, durable=True, owner=None,
             check=None):
    """Atomically replace *name* in the directory *dir_fd* with *data*.

    The temporary file is created in *dir_fd* (``O_CREAT | O_EXCL |
    O_NOFOLLOW``: never an existing file or a link) and renamed within it.
    *owner*, ``(uid, gid)`` (-1: unchanged), is given to it first; *check*,
    called just before the rename, may raise to keep *name* as it is.
    """
    flags = (os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
             | os.O_CLOEXEC)
    for _ in range(100):
        tmp = TEMP_PREFIX + "".join(secrets.choice(_TEMP_CHARS) for _ in range(8))
        try:
            fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError("no free temporary file name")
    try:
        with os.fdopen(fd, "wb") as handle:
            if owner is not None:
                os.fchown(handle.fileno(), owner[0], owner[1])
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        if check is not None:
            check()
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    if durable:
        os.fsync(dir_fd)
