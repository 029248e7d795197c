"""``SealedPosixBackupDriver``: Cinder's ``PosixBackupDriver`` (a POSIX file system directory),
with sealed metadata.

cinder.conf::

    [DEFAULT]
    backup_driver = sealedmeta.cinder.posix.SealedPosixBackupDriver

Needs what the stock driver needs: nothing beyond Cinder. Backups made by
the stock class before the switch stay restorable, deletable and exportable
(see :func:`sealedmeta.cinder.mixin.claim_legacy_backups`).

A backup's ``container`` is the tenant's to choose (Cinder's API takes any
string up to 255 characters) and the stock class joins it to its
``backup_path``: ``../x`` or ``/x`` would put the backup's files anywhere
the service's user can write. Here (and in the NFS class) every file is
reached through directory handles from ``backup_path`` (:mod:`sealedmeta.safefs`),
and a container is used only when :func:`container_parts` takes it.
"""

import contextlib
import errno
import os
import re
import stat

from oslo_config import cfg

from cinder.backup.drivers import posix as _stock
from cinder import exception

from sealedmeta import safefs
from sealedmeta.cinder import mixin
from sealedmeta.cinder import port

CONF = cfg.CONF

# Cinder's backups.container column and its API's schema
# (parameter_types.container).
MAX_CONTAINER = 255
# A file name's limit (NAME_MAX), in bytes.
MAX_NAME = 255
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z",
                   re.IGNORECASE)
RULE = ("a container of the posix/NFS backup store is a relative path below"
        " backup_path of at most %d characters, with no empty, '.' or '..'"
        " component and no NUL" % MAX_CONTAINER)


class UnsafeContainer(ValueError):
    """A container or object name that could lead out of ``backup_path``,
    or into another backup's directory: never put in a path."""


def _parts(name, what):
    """The components of *name*; UnsafeContainer saying what is wrong
    (without quoting *name*: Cinder keeps 255 characters of a reason)."""
    if type(name) is not str:
        raise UnsafeContainer("%s refused (not a string)" % what)
    try:
        parts = safefs.split_relative(name)
        if any(len(part.encode("utf-8")) > MAX_NAME for part in parts):
            raise OSError(errno.ENAMETOOLONG, "a component over %d bytes" % MAX_NAME)
    except UnicodeEncodeError:
        raise UnsafeContainer("%s refused (not UTF-8)" % what) from None
    except OSError as exc:
        raise UnsafeContainer("%s refused (%s)" % (what, exc.strerror)) from None
    return parts


def default_parts(backup_id):
    """Cinder's name of the directory of backup *backup_id* (the stock
    ``update_container_name``), as components."""
    return (backup_id[0:2], backup_id[2:4], backup_id)


def container_parts(container, backup_id=None):
    """The components of *container* below ``backup_path``:
    :class:`UnsafeContainer` unless :data:`RULE` holds.

    With *backup_id* (a container chosen for a new backup), also refused:
    a container in Cinder's default directory of another backup
    (``<2>/<2>/<uuid>`` and anything below it, letter case ignored), which
    would mix the new backup's files into that backup's directory --
    another tenant's, perhaps. Only the name decides: a backup's own
    default directory is the one it may use.
    """
    if type(container) is str and len(container) > MAX_CONTAINER:
        raise UnsafeContainer("container of %d characters refused: %s"
                              % (len(container), RULE))
    try:
        parts = _parts(container, "container")
    except UnsafeContainer as exc:
        raise UnsafeContainer("%s: %s" % (exc, RULE)) from None
    if backup_id is not None and len(parts) >= 3 and _UUID.match(parts[2]):
        owner = parts[2].lower()
        named = tuple(p.lower() for p in parts[:3]) == default_parts(owner)
        if named and parts != default_parts(backup_id):
            raise UnsafeContainer(
                "container refused: it is Cinder's directory of backup %s"
                " (<2>/<2>/<backup id>); a backup may use its own, not"
                " another's" % parts[2])
    return parts


def check_object_name(name):
    """*name*, an object name that is one file name in its container."""
    parts = _parts(name, "object name")
    if len(parts) != 1:
        raise UnsafeContainer("object name refused (not one file name)")
    return name


def checked(check, name, *args):
    """``check(name, *args)``, a refusal turned into Cinder's
    ``InvalidBackup`` saying why (what the backup manager records)."""
    try:
        return check(name, *args)
    except UnsafeContainer as exc:
        raise exception.InvalidBackup(reason=str(exc)) from None


class PosixTree:
    """The files of Cinder's ``PosixBackupDriver`` (posix, NFS), reached
    through directory handles below ``backup_path`` under checked names
    (:func:`container_parts`, :func:`check_object_name`); a refused name is
    ``InvalidBackup`` saying why, and nothing is touched."""

    def update_container_name(self, backup, container):
        # At backup, before anything is made: the backup ends in error
        # with this reason (Cinder's manager records it as fail_reason).
        container = super().update_container_name(backup, container)
        checked(container_parts, container, backup["id"])
        return container

    @contextlib.contextmanager
    def _container_fd(self, container):
        """The descriptor of *container*'s directory, for the with block."""
        parts = checked(container_parts, container)
        tree = safefs.Tree(self.backup_path)
        try:
            fd = safefs.open_beneath(tree.fd, parts)
        finally:
            tree.close()
        try:
            yield fd
        finally:
            os.close(fd)

    def put_container(self, container):
        try:
            with self._container_fd(container):
                return
        except FileNotFoundError:
            if not self.backup_create_containers:
                raise OSError("Backup directory for container does not exist") from None
        # The admin's own path, made as the stock class makes it.
        os.makedirs(self.backup_path, exist_ok=True)
        tree = safefs.Tree(self.backup_path)
        try:
            os.close(safefs.make_beneath(tree.fd, container_parts(container), 0o770))
        finally:
            tree.close()

    def get_container_entries(self, container, prefix):
        # Names only, read through the checked path (as the stock class,
        # whose unit tests mock os.listdir): a name is used only through
        # the handles of the methods above, and a link in the tree gives
        # them nothing to open.
        parts = checked(container_parts, container)
        path = os.path.join(self.backup_path, *parts)
        return [name for name in os.listdir(path) if name.startswith(prefix)]

    def get_object_writer(self, container, object_name, extra_metadata=None):
        name = checked(check_object_name, object_name)
        with self._container_fd(container) as dir_fd:
            return os.fdopen(safefs.write_regular(dir_fd, name, 0o660), "wb")

    def get_object_reader(self, container, object_name, extra_metadata=None):
        name = checked(check_object_name, object_name)
        with self._container_fd(container) as dir_fd:
            fd, _ = safefs.open_regular(dir_fd, name)
            return os.fdopen(fd, "rb")

    def delete_object(self, container, object_name):
        name = checked(check_object_name, object_name)
        try:
            with self._container_fd(container) as dir_fd:
                os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass  # as the stock class: already gone

    def _check_row(self, backup, action):
        """Refuse to *action* a backup whose row holds a container the rule
        refuses (left by a release without it)."""
        if backup["container"] is None:
            return
        try:
            container_parts(backup["container"])
        except UnsafeContainer as exc:
            raise exception.InvalidBackup(
                reason="backup %s cannot be %s, no file was touched: %s;"
                " its container is %r" % (backup["id"], action, exc,
                                          backup["container"])) from None

    def read_metadata_object(self, backup):
        # The first file of a restore, an export, reseal and the audit.
        self._check_row(backup, "read")
        return super().read_metadata_object(backup)

    def delete_backup(self, backup):
        # Cinder's delete goes on (and deletes the row) when it cannot list
        # the container: a refused one must stop it, saying why.
        self._check_row(backup, "deleted")
        return super().delete_backup(backup)

    def export_record(self, backup):
        self._check_row(backup, "exported")
        return super().export_record(backup)


class PosixMetadataPort:
    """The store port (:mod:`sealedmeta.cinder.port`) of a tree of files
    (posix, NFS): the metadata object is replaced atomically."""

    def write_metadata_object(self, backup, metadata):
        """Atomic, durable replacement of the metadata file (below the
        driver's ``backup_path``) keeping the old file's owner and mode,
        through directory handles (:func:`sealedmeta.safefs.replace`: a
        directory swapped for a symbolic link cannot steer the write out of
        the tree; root writes another user's file as that user)."""
        name = self._metadata_filename(backup)
        try:
            parts = container_parts(backup["container"])
        except UnsafeContainer as exc:
            raise port.WriteRefused(str(exc)) from None
        tree = safefs.Tree(self.backup_path)
        try:
            where = safefs.Location(tree, parts, name)
            with where.directory() as dir_fd:
                st = where.lstat(dir_fd)
                if not stat.S_ISREG(st.st_mode):
                    raise port.WriteRefused("the metadata object is not a regular file")
                safefs.replace(dir_fd, name, port.encode(metadata), st,
                               timeout=CONF.sealedmeta.user_write_timeout)
        except safefs.FileChanged:
            raise port.WriteRefused("the metadata object changed while being resealed;"
                                    " left alone (run again)") from None
        except safefs.NotOwner as exc:
            raise port.WriteRefused("the metadata object is %s; run reseal as the backup"
                                    " service's user or root" % exc) from None
        except safefs.WriteAbandoned as exc:
            raise port.WriteRefused("the metadata object was not resealed: %s"
                                    % exc) from None
        finally:
            tree.close()


class SealedPosixBackupDriver(PosixTree, PosixMetadataPort, mixin.SealedMetadataMixin,
                              _stock.PosixBackupDriver):
    """PosixBackupDriver whose backups' ``volume_meta`` is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.posix.PosixBackupDriver",
    )
