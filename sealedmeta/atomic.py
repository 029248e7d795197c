"""Durable, atomic file replacement: temp file, fsync, rename, fsync dir.

A reader (or a crash at any instant) sees either the old file or the new one,
never a mix.
"""

import contextlib
import os
import tempfile

# Name prefix of the temporary files; a crash can leave one behind, never a
# partly written *path*.
TEMP_PREFIX = ".tmp-"


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path, data, mode=0o600, durable=True, owner=None):
    """Atomically replace *path* with *data* (bytes), created with *mode*.

    *owner*, a ``(uid, gid)`` pair, gives the new file that owner before it
    replaces *path* (a root process rewriting another user's file).
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=directory)
    try:
        # The file object owns the descriptor from here on: closed whatever
        # fails next.
        with os.fdopen(fd, "wb") as handle:
            if owner is not None:
                os.fchown(handle.fileno(), owner[0], owner[1])
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
