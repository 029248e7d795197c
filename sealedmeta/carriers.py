"""Carriers: the kinds of files envelopes are stored in, and finding them.

A :class:`Carrier` recognises a file, takes the envelope out of it and puts
a new envelope back, leaving everything else in the file as it was. Carriers
are plug-ins of the ``sealedmeta.carriers`` entry-point namespace; the
built-in ``raw`` carrier handles files that hold one envelope, raw bytes or
armoured text (``sealedmeta:...`` with an optional final newline). Another
package adds a carrier by registering a :class:`Carrier` subclass there; it
is called as ``cls(max_envelope_size, max_object_size=N)`` (*N* None: the
carrier's own default).

:func:`scan` walks PATHs (files and directories) and yields one
:class:`Item` per regular file, telling what it holds: an envelope (with the
carrier that found it), nothing of ours (skipped, with the reason), or an
error (unreadable, over the size limit, a broken carrier), so that
:mod:`sealedmeta.audit` and :mod:`sealedmeta.rewrap` share one notion of
"the envelopes under these paths".
"""

import abc
import dataclasses
import errno
import logging
import os
import stat

from sealedmeta import atomic
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import safefs

LOG = logging.getLogger(__name__)

NAMESPACE = "sealedmeta.carriers"

# Bytes of a file handed to Carrier.sniff.
SNIFF_SIZE = 4096


# Cinder's chunked-driver metadata objects: the cinder-metadata carrier
# claims every file so named, and the raw carrier none.
CINDER_METADATA_SUFFIX = "_metadata"
# Raw envelope files: the name this documentation gives them (``seal -o
# backup.env``). A file so named must be an envelope.
ENVELOPE_SUFFIX = ".env"


class PathError(exceptions.SealedMetaError):
    """A PATH given to scan does not exist or cannot be examined."""


class Unsealed(exceptions.SealedMetaError):
    """Raised by :meth:`Carrier.extract` for a file of the carrier's kind
    that holds no envelope where one belongs (e.g. a Cinder metadata object
    written before sealing, or a forgery): reported ``unsealed``."""


class Carrier(abc.ABC):
    """One kind of file that holds an envelope."""

    #: entry-point name
    name = None
    #: carriers are asked in (priority, name) order; the first that sniffs a
    #: file positively owns it
    priority = 100

    def __init__(self, max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                 max_object_size=None):
        self.max_envelope_size = max_envelope_size
        #: Largest file read of a kind that holds more than the envelope
        #: (``[sealedmeta] max_metadata_object_size``); None: the
        #: carrier's own default. The raw carrier's files are envelopes.
        self.max_object_size = max_object_size

    @abc.abstractmethod
    def sniff(self, path, head):
        """True when the file at *path*, starting with *head* (at most
        :data:`SNIFF_SIZE` bytes), is of this carrier's kind. Cheap, and
        never raises."""

    @abc.abstractmethod
    def max_file_size(self):
        """Largest file of this kind that is read, in bytes."""

    @abc.abstractmethod
    def extract(self, path, data):
        """The :class:`Carried` envelope of the file *data*.

        Raises :class:`~sealedmeta.exceptions.MalformedEnvelope` (or another
        ``InvalidEnvelope``) when the file is of this kind but its envelope
        cannot be taken out.
        """

    @abc.abstractmethod
    def replace(self, carried, new_envelope):
        """The bytes of the file with *new_envelope* (raw envelope bytes) in
        place of ``carried.envelope``; everything else unchanged."""


@dataclasses.dataclass(frozen=True)
class Carried:
    """An envelope found in a file."""

    carrier: Carrier
    envelope: bytes           # raw envelope bytes (armour removed)
    data: bytes               # the whole file, as read
    state: object = None      # the carrier's own notes, for replace()
    #: The context (str -> str) the envelope must have been sealed for,
    #: exactly, as the carrier knows it from the file it sits in (a Cinder
    #: metadata object's own backup and volume ids); None when the file does
    #: not tell. The auditor reports an authentic envelope sealed for
    #: another context ``context-mismatch``, and :meth:`rewritten` refuses
    #: to put one back.
    expected_context: dict = None

    def context_mismatch(self, context):
        """One line saying how *context* (an envelope header's) differs
        from :attr:`expected_context`; None when it is that context or
        nothing is expected."""
        expected = self.expected_context
        if expected is None or dict(context) == dict(expected):
            return None
        differing = sorted(k for k in set(context) | set(expected)
                           if context.get(k) != expected.get(k))
        return "sealed for another context than its file expects (%s): %s" % (
            self.carrier.name, ", ".join(
                "%s is %s, not %s" % (key, _shown(context.get(key)),
                                      _shown(expected.get(key)))
                for key in differing))

    def rewritten(self, new_envelope):
        """The file's bytes with *new_envelope* in place of this one.

        Raises ContextMismatch, writing nothing, when *new_envelope* is
        sealed for another context than the file expects."""
        if self.expected_context is not None:
            header = envelope.parse(new_envelope,
                                    self.carrier.max_envelope_size).header
            mismatch = self.context_mismatch(header.context)
            if mismatch is not None:
                raise exceptions.ContextMismatch(mismatch)
        return self.carrier.replace(self, new_envelope)


def _shown(value):
    return "absent" if value is None else repr(value)


def armour_size(max_envelope_size):
    """Characters of the armour of an envelope of *max_envelope_size* bytes."""
    return len(envelope.ARMOR_PREFIX) + (max_envelope_size * 4 + 2) // 3


class RawCarrier(Carrier):
    """A file that is one envelope: raw bytes, or its armour (+ newline)."""

    name = "raw"
    priority = 50

    _MAGIC = envelope.MAGIC
    _ARMOUR = envelope.ARMOR_PREFIX.encode("ascii")

    # What follows the magic in every format 1 envelope: the format byte,
    # two bytes of header length (at most 16384, so the first is at most
    # 0x40), then the header, a 9-element msgpack array whose first element
    # is the format version.
    _FORMAT = envelope.FORMAT_VERSION
    _HEADER_START = bytes((0x99, envelope.FORMAT_VERSION))
    _BASE64URL = (b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  b"0123456789-_")

    def sniff(self, path, head):
        if os.path.basename(path).endswith(CINDER_METADATA_SUFFIX):
            return False
        return (head.startswith(self._MAGIC)
                or self._armoured(head)
                or self._damaged(path, head) is not None)

    def _armoured(self, head):
        """The armour prefix directly followed by base64url: armour, if
        perhaps damaged. The tool's own log lines go on with a space."""
        after = head[len(self._ARMOUR):len(self._ARMOUR) + 1]
        return (head.startswith(self._ARMOUR) and after != b""
                and after in self._BASE64URL)

    def _damaged(self, path, head):
        """Why a file that does not start as an envelope must be one (its
        first bytes damaged); None when nothing says so. See "Which files
        are envelopes" in docs/source/audit.rst."""
        name = os.path.basename(path)
        if len(name) > len(ENVELOPE_SUFFIX) and name.endswith(ENVELOPE_SUFFIX):
            return "yet named NAME%s" % ENVELOPE_SUFFIX
        magic = len(self._MAGIC)
        if (head[magic:magic + 1] == bytes((self._FORMAT,))
                and head[magic + 1:magic + 2] <= b"\x40"
                and head[magic + 3:magic + 5] == self._HEADER_START):
            return "yet an envelope's bytes follow it"
        return None

    def max_file_size(self):
        return max(self.max_envelope_size, armour_size(self.max_envelope_size) + 2)

    def extract(self, path, data):
        if not data.startswith((self._MAGIC, self._ARMOUR)):
            raise exceptions.MalformedEnvelope(
                "malformed envelope: not a sealedmeta envelope (bad magic), %s"
                % self._damaged(path, data[:SNIFF_SIZE]))
        if data.startswith(self._ARMOUR):
            body = data.rstrip(b"\r\n")
            suffix = data[len(body):]
            if suffix not in (b"", b"\n", b"\r\n"):
                raise exceptions.MalformedEnvelope(
                    "malformed envelope: armoured file ends in blank lines")
            raw = envelope.dearmor(body, self.max_envelope_size)
            return Carried(self, raw, data, ("armour", suffix))
        if len(data) > self.max_envelope_size:
            raise exceptions.EnvelopeTooLarge(
                "envelope of %d bytes is over the %d byte limit"
                % (len(data), self.max_envelope_size))
        return Carried(self, data, data, ("raw", b""))

    def replace(self, carried, new_envelope):
        kind, suffix = carried.state
        if kind == "armour":
            return envelope.armor(new_envelope).encode("ascii") + suffix
        return bytes(new_envelope)


def load_carriers(max_envelope_size=envelope.DEFAULT_MAX_ENVELOPE_SIZE,
                  max_object_size=None):
    """Every installed carrier, in the order they are asked, each made with
    these limits (see :class:`Carrier`).

    ``raw`` is always there, even when the package's entry points are not
    installed (running from a source tree).
    """
    from stevedore import extension

    def failed(manager, entrypoint, exc):
        LOG.warning("cannot load carrier %s from %s: %s", entrypoint.name,
                    NAMESPACE, exc)

    manager = extension.ExtensionManager(
        NAMESPACE, invoke_on_load=True, invoke_args=(max_envelope_size,),
        invoke_kwds={"max_object_size": max_object_size},
        on_load_failure_callback=failed)
    carriers = [ext.obj for ext in manager if isinstance(ext.obj, Carrier)]
    if not any(c.name == RawCarrier.name for c in carriers):
        carriers.append(RawCarrier(max_envelope_size))
    return sorted(carriers, key=lambda c: (c.priority, c.name or ""))


# -- finding files ----------------------------------------------------------

@dataclasses.dataclass
class Item:
    """What scan() found at one path.

    Exactly one of *carried*, *skipped*, *malformed* and *error* is set,
    but for *error* with *carried*: an envelope that was read but cannot be
    judged (what it must be sealed for is unknown); its header still names
    its key. *unsealed* is True when a carrier claims the file but it holds
    no envelope where one belongs (:class:`Unsealed`); *malformed* then
    says why.
    """

    path: str
    carried: Carried = None
    skipped: str = None       # not an envelope of ours: why
    malformed: str = None     # a carrier claims it, but no envelope comes out
    error: str = None         # could not be read: why
    stat: os.stat_result = None  # of the file as read
    unsealed: bool = False
    #: where the file is (:class:`sealedmeta.safefs.Location`): what a
    #: rewrap writes through, never the path
    where: safefs.Location = None


def check_paths(paths):
    """Raise PathError unless every PATH exists (before anything is done)."""
    if not paths:
        raise PathError("no PATH given")
    for path in paths:
        try:
            os.stat(path)
        except FileNotFoundError:
            raise PathError("%s: no such file or directory" % path) from None
        except OSError as exc:
            raise PathError("%s: %s" % (path, exc.strerror)) from None


def iter_paths(paths):
    """(path, lstat or None, problem or None) for every file under *paths*
    (see :func:`iter_located`)."""
    for path, st, problem, _ in iter_located(paths):
        yield path, st, problem


def iter_located(paths):
    """(path, lstat or None, problem or None, :class:`~sealedmeta.safefs.
    Location` or None) for every file under *paths*.

    Directories named in *paths* are walked (also through a symbolic link
    named there) through directory handles (:func:`sealedmeta.safefs.walk`):
    a symbolic link below them -- there from the start or swapped in during
    the walk -- is never followed, so the walk never leaves the tree. Every
    other symbolic link (a link to a file named in *paths* included) is
    yielded and then skipped by :func:`examine`, so a rewrap never replaces
    a link by a file. Files are yielded once each, in a stable order.
    """
    seen = set()
    for top in paths:
        try:
            top_st = os.stat(top)
            tree = safefs.Tree(top) if stat.S_ISDIR(top_st.st_mode) else None
        except OSError as exc:
            yield top, None, "cannot examine: %s" % exc.strerror, None
            continue
        if tree is None:
            try:
                where = safefs.location_of(top)
                st = where.lstat(where.tree.fd)
            except OSError as exc:
                yield top, None, "cannot examine: %s" % exc.strerror, None
                continue
            if _first(st, seen):
                yield top, st, None, where
            continue
        for parts, name, st, problem in safefs.walk(tree):
            path = os.path.join(top, *parts, *((name,) if name else ()))
            if problem is not None:
                yield path, None, problem, None
            elif _first(st, seen):
                yield path, st, None, safefs.Location(tree, parts, name)


def _first(st, seen):
    key = (st.st_dev, st.st_ino)
    if key in seen:
        return False
    seen.add(key)
    return True


def _read(path, where, carriers):
    """(data, fstat, carrier) of a regular file, or (None, st, None) when no
    carrier wants it. Raises OSError, or ValueError when too large."""
    with where.directory() as dir_fd:
        try:
            fd, st = safefs.open_regular(dir_fd, where.name)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise OSError(errno.EINVAL, "not a regular file any more") from None
            raise
    try:
        head = os.read(fd, SNIFF_SIZE)
        owner = None
        for carrier in carriers:
            try:
                if carrier.sniff(path, head):
                    owner = carrier
                    break
            except Exception as exc:  # a carrier plug-in must never stop a scan
                LOG.warning("carrier %s failed on %s: %s", carrier.name, path, exc)
        if owner is None:
            return None, st, None
        limit = owner.max_file_size()
        chunks = [head]
        size = len(head)
        while size <= limit:
            chunk = os.read(fd, min(1024 * 1024, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise ValueError("file is over the %d byte limit of the %s carrier"
                             % (limit, owner.name))
        return b"".join(chunks), st, owner
    finally:
        os.close(fd)


def examine(path, st, carriers, where=None):
    """The :class:`Item` of one path, given its lstat *st* and its
    :class:`~sealedmeta.safefs.Location` (from :func:`iter_located`; by
    default that of *path*)."""
    name = os.path.basename(path)
    if stat.S_ISLNK(st.st_mode):
        return Item(path, skipped="symbolic link, not followed", stat=st)
    if not stat.S_ISREG(st.st_mode):
        return Item(path, skipped="not a regular file", stat=st)
    if name.startswith(atomic.TEMP_PREFIX):
        return Item(path, skipped="temporary file of an interrupted write",
                    stat=st)
    try:
        if where is None:
            where = safefs.location_of(path)
        data, fst, carrier = _read(path, where, carriers)
    except OSError as exc:
        return Item(path, error="cannot read: %s" % (exc.strerror or exc),
                    stat=st)
    except ValueError as exc:  # over the carrier's size limit
        return Item(path, malformed=str(exc), stat=st)
    if carrier is None:
        return Item(path, skipped="not an envelope", stat=fst, where=where)
    try:
        carried = carrier.extract(path, data)
    except exceptions.InvalidEnvelope as exc:
        return Item(path, malformed=str(exc), stat=fst, where=where)
    except Unsealed as exc:
        return Item(path, malformed=str(exc), stat=fst, unsealed=True, where=where)
    except Exception as exc:  # a carrier plug-in must never stop a scan
        return Item(path, malformed="carrier %s failed: %s" % (carrier.name, exc),
                    stat=fst, where=where)
    return Item(path, carried=carried, stat=fst, where=where)


def scan(paths, carriers):
    """One :class:`Item` per file under *paths* (see :func:`iter_paths`)."""
    for path, st, problem, where in iter_located(paths):
        if problem is not None:
            yield Item(path, error=problem)
        else:
            yield examine(path, st, carriers, where)
