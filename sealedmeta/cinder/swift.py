"""``SealedSwiftBackupDriver``: Cinder's ``SwiftBackupDriver`` (OpenStack Swift),
with sealed metadata.

cinder.conf::

    [DEFAULT]
    backup_driver = sealedmeta.cinder.swift.SealedSwiftBackupDriver

Needs what the stock driver needs: python-swiftclient, which is not a Cinder
dependency; without it this module imports, but the class cannot be
instantiated, like the stock one. Backups made by the stock class before the
switch stay restorable, deletable and exportable (see
:func:`sealedmeta.cinder.mixin.claim_legacy_backups`).

With ``backup_swift_auth = per_user`` (Cinder's default) each backup lives in
its project's own account, which only a request in that project reaches:
:meth:`SealedSwiftBackupDriver.project_drivers` gives the tools that read
every tenant's backups (``sealedmeta cinder reseal``) a driver acting in a
backup's project as the service user of ``[sealedmeta_swift_service_user]``
(:mod:`sealedmeta.cinder.swift_options`), who holds Swift's reseller admin
role.
"""

from oslo_config import cfg
from oslo_serialization import jsonutils
from oslo_utils import units

from cinder.backup.drivers import swift as _stock
from cinder import context as cinder_context
from cinder import exception
from cinder import utils
from sealedmeta import exceptions
from sealedmeta.cinder import chunks
from sealedmeta.cinder import metadata_object
from sealedmeta.cinder import mixin
from sealedmeta.cinder import swift_names
from sealedmeta.cinder import swift_options
from sealedmeta.cinder import volume_meta as vm

try:
    from swiftclient import client as swift_client
    from swiftclient import exceptions as swift_exc
except ImportError:  # the stock driver refuses to start without it too
    swift_client = swift_exc = None
else:
    # swiftclient logs every request Swift refuses at INFO (and the others
    # at DEBUG) with the first 16 characters of its X-Auth-Token; no part
    # of a token belongs in a log. Its own setting, for the whole process.
    swift_client.logger_settings["reveal_sensitive_prefix"] = 0

CONF = cfg.CONF

SERVICE_OPTS = swift_options.SERVICE_OPTS
# Bytes asked of the HTTP body at a time.
READ_CHUNK = 64 * 1024
# Archive entries refused by name that a reseal names one by one; the rest
# are counted.
MAX_REFUSED_SHOWN = 10
# A backup's digest list (<prefix>_sha256file): the bytes of one block's
# entry in its JSON ('"<64 hex digits>", ', with room), and of the rest.
DIGEST_ENTRY = 72
DIGEST_REST = 1024 * 1024
# Listing a backup's objects: names asked for per request, and the fewest
# bytes one data object takes in a metadata object's chunk list (its name
# alone is longer), which bounds how many objects any backup has.
LISTING_PAGE = 1000
MIN_LISTED_ENTRY = 64


def _not_found(exc):
    return (swift_exc is not None and isinstance(exc, swift_exc.ClientException)
            and exc.http_status == 404)


def is_plaintext(data):
    """True unless *data* is a metadata object whose ``volume_meta`` is sealed
    (what cannot be parsed may hold anything: it counts as plaintext)."""
    try:
        obj = metadata_object.loads(data, CONF.sealedmeta.max_metadata_object_size)
    except metadata_object.ObjectError:
        return True
    return not (isinstance(obj, dict) and vm.is_sealed(obj.get("volume_meta")))


def _checked(container, name=None):
    """Refuse (``InvalidBackup``) a container or object name that could take
    a request out of the backup's account and container."""
    try:
        swift_names.container(container)
        if name is not None:
            swift_names.object_name(name)
    except swift_names.UnsafeName as exc:
        raise exception.InvalidBackup(reason="refused: %s" % exc) from None


class SealedSwiftBackupDriver(mixin.SealedMetadataMixin, _stock.SwiftBackupDriver):
    """SwiftBackupDriver whose backups' ``volume_meta`` is sealed."""

    LEGACY_SERVICES = (
        "cinder.backup.drivers.swift.SwiftBackupDriver",
    )

    # -- every tenant's backups ---------------------------------------------

    @classmethod
    def project_drivers(cls):
        """``None`` when one driver reaches every backup (``single_user``);
        otherwise a function ``project_id -> driver`` acting in that project
        with the token of the service user of
        :mod:`~sealedmeta.cinder.swift_options`.

        Raises :class:`~sealedmeta.exceptions.ConfigurationError` when that
        user is not configured.
        """
        if CONF.backup_swift_auth != "per_user":
            return None
        session = swift_options.service_session(
            CONF, insecure=CONF.backup_swift_auth_insecure)
        if not CONF.backup_swift_url:
            raise exceptions.ConfigurationError(
                "backup_swift_auth = per_user: set backup_swift_url (the storage"
                " URL without the project id, e.g. http://swift:8080/v1/AUTH_)"
                " so that each project's account URL can be built as Cinder"
                " builds it")

        def driver(project_id):
            # get_token() renews the token when it nears expiry: a driver per
            # call never holds a stale one.
            ctxt = cinder_context.RequestContext(
                user_id=session.get_user_id(), project_id=project_id,
                auth_token=session.get_token(), is_admin=True)
            return cls(ctxt)
        return driver

    def connect_as_service(self):
        # Cinder's driver connects only for a request context with a user;
        # the tools run with the service's own credentials (single_user).
        if not hasattr(self, "conn"):
            self.initialize()

    # -- request paths: checked names only ------------------------------------

    def put_container(self, container):
        _checked(container)
        return super().put_container(container)

    def get_object_writer(self, container, object_name, extra_metadata=None):
        _checked(container, object_name)
        return super().get_object_writer(container, object_name,
                                         extra_metadata=extra_metadata)

    def get_container_entries(self, container, prefix):
        """The object names under *prefix* (a backup's), for its restore and
        delete. Cinder's lists them all into memory, as many as whoever
        writes the container made (the tenant, in its own account); this
        one pages and stops past the most objects a metadata object within
        ``max_metadata_object_size`` can list (and its two companions): a
        restore compares the names with that list, so more can match no
        backup."""
        _checked(container)
        most = CONF.sealedmeta.max_metadata_object_size // MIN_LISTED_ENTRY + 2
        names, marker = [], None
        while True:
            try:
                page = self.conn.get_container(container, prefix=prefix, marker=marker,
                                               limit=LISTING_PAGE,
                                               headers=self._headers())[1]
            except OSError as exc:   # as the stock listing
                raise exception.SwiftConnectionFailed(reason=exc) from exc
            if not page:
                return names
            if marker is not None and page[-1]["name"] <= marker:
                # Swift lists in name order after the marker: a listing
                # that does not move on would be read again and again.
                raise exception.InvalidBackup(
                    reason="the listing of container %s under %s did not move"
                    " past %s" % (container, prefix, marker))
            names.extend(entry["name"] for entry in page)
            if len(names) > most:
                raise exception.InvalidBackup(
                    reason="container %s holds more than %d objects under %s, more"
                    " than a backup's metadata object can list ([sealedmeta]"
                    " max_metadata_object_size): not listed further"
                    % (container, most, prefix))
            marker = page[-1]["name"]

    def get_object_reader(self, container, object_name, extra_metadata=None):
        """A reader of one data object for a restore. Cinder's GETs the
        whole object into memory, as large as whoever wrote it made it (the
        tenant, in its own account); this one makes one ranged GET of at
        most :func:`chunks.limit` bytes and refuses a larger object from
        its Content-Range, unread."""
        _checked(container, object_name)
        return _BoundedObjectReader(self, container, object_name,
                                    chunks.limit(self.chunk_size_bytes))

    def _get_compressor(self, algorithm):
        # Cinder's compressor module, but a decompress that stops at the
        # limit: a few megabytes a tenant wrote may inflate to gigabytes.
        if super()._get_compressor(algorithm) is None:   # the name checked
            return None
        return utils.tpool_wrap(chunks.BoundedCodec(
            algorithm, chunks.limit(self.chunk_size_bytes)))

    def _read_sha256file(self, backup):
        # The digest list of the parent of an incremental backup: at most
        # what a volume of the parent's size lists.
        blocks = -(-int(backup["size"] or 0) * units.Gi // self.sha_block_size_bytes)
        limit = DIGEST_ENTRY * blocks + DIGEST_REST
        name = self._sha256_filename(backup)
        try:
            data = self.read_object_bounded(
                backup["container"], name, limit, what="the digest list %s of backup %s"
                % (name, backup["id"]), limit_words="the %d byte limit of a %s GiB"
                " volume's" % (limit, backup["size"]))
        except metadata_object.ObjectTooLarge as exc:
            raise exception.InvalidBackup(reason=str(exc)) from None
        return jsonutils.loads(data)

    def delete_object(self, container, object_name):
        _checked(container, object_name)
        return super().delete_object(container, object_name)

    def read_object_bounded(self, container, name, limit, query=None, what=None,
                            limit_words=None):
        """One ranged GET (``bytes=0-<limit>``), streamed: an object whose
        size (``Content-Range``) is over *limit* is refused before a byte of
        its body is read, and Swift sends at most *limit* + 1 bytes of any
        object. *query*: a checked ``version-id=`` query string; *what* and
        *limit_words*: how the refusal names the object and the limit (see
        :func:`metadata_object.read`)."""
        _checked(container, name)
        try:
            headers, body = self.conn.get_object(
                container, name, query_string=query, resp_chunk_size=READ_CHUNK,
                headers=self._headers({"Range": "bytes=0-%d" % limit}))
        except OSError as exc:  # as the stock reader
            raise exception.SwiftConnectionFailed(reason=exc) from exc
        except Exception as exc:
            # An empty object has no byte 0: Swift answers 416, bytes */0.
            if getattr(exc, "http_status", None) == 416 and _size(
                    getattr(exc, "http_response_headers", None) or {}) == 0:
                return b""
            raise
        try:
            return metadata_object.read(body, limit, _size(headers), what, limit_words)
        finally:
            body.close()

    # -- versions a rewrite supersedes ----------------------------------------

    def remove_superseded_metadata(self, backup, superseded=is_plaintext):
        """Delete the older versions of the backup's metadata object in its
        container whose bytes *superseded* says must go (by default: those
        not sealed), after a rewrite of the object: the store port's
        (:mod:`sealedmeta.cinder.port`).

        Swift keeps them when the container has ``X-Versions-Location`` or
        ``X-History-Location`` (an archive container, objects named
        ``<3 hex digits of len(name)><name>/<timestamp>``) or object
        versioning (``X-Versions-Enabled``, versions by ``version-id``).
        The tenant writes the archive's listing: only entries of exactly
        that shape are read (at most ``max_metadata_object_size`` bytes)
        and removed (:mod:`~sealedmeta.cinder.swift_names`); any other
        entry under the prefix is left alone and reported.
        Returns ``(removed, left)``: lists of ``"container/object"`` strings
        (``?version-id=`` appended for object versions); *left* entries end
        with the reason.
        """
        container = backup["container"]
        name = self._metadata_filename(backup)
        _checked(container, name)
        limit = CONF.sealedmeta.max_metadata_object_size
        headers = self.conn.head_container(container, headers=self._headers())
        removed, left = [], []
        location = (headers.get("x-versions-location")
                    or headers.get("x-history-location"))
        if location:
            self._remove_archived(location, name, limit, superseded, removed, left)
        if str(headers.get("x-versions-enabled", "")).lower() == "true":
            for entry in self._listing(container, name, versions=True):
                version = entry.get("version_id")
                if (entry.get("name") != name or entry.get("is_latest")
                        or not version
                        or str(entry.get("content_type", "")).startswith(
                            "application/x-deleted")):
                    continue
                where = "%s/%s?version-id=%s" % (container, name, version)
                try:
                    query = swift_names.version_query(version)
                except swift_names.UnsafeName as exc:
                    left.append("%s (%s: neither read nor removed)" % (where, exc))
                    continue
                self._remove_version(where, superseded, removed, left,
                                     lambda q=query: self.read_object_bounded(
                                         container, name, limit, q),
                                     lambda q=query: self.conn.delete_object(
                                         container, name, query_string=q,
                                         headers=self._headers()))
        return removed, left

    def _remove_archived(self, location, name, limit, superseded, removed, left):
        try:
            archive = swift_names.archive_container(location)
        except swift_names.UnsafeName as exc:
            left.append("archive %s (%s: not listed)" % (location, exc))
            return
        refused = 0
        for entry in self._listing(archive, swift_names.archive_prefix(name)):
            entry_name = entry.get("name")
            where = "%s/%s" % (archive, entry_name)
            if not swift_names.is_archived_version(entry_name, name):
                refused += 1
                if refused <= MAX_REFUSED_SHOWN:
                    left.append("%s (not a version Swift names so: neither read"
                                " nor removed)" % where)
                continue
            self._remove_version(where, superseded, removed, left,
                                 lambda e=entry_name: self.read_object_bounded(
                                     archive, e, limit),
                                 lambda e=entry_name: self.conn.delete_object(
                                     archive, e, headers=self._headers()))
        if refused > MAX_REFUSED_SHOWN:
            left.append("%d more entries of %s (not versions Swift names so)"
                        % (refused - MAX_REFUSED_SHOWN, archive))

    def _listing(self, container, prefix, versions=False):
        """The entries listed under *prefix*, a page at a time (never the
        whole listing in memory); with *versions* every version (swiftclient's
        full_listing drops the ``versions`` query: both markers are paged
        here)."""
        marker = version_marker = None
        while True:
            page = self.conn.get_container(
                container, prefix=prefix, marker=marker,
                version_marker=version_marker if versions else None,
                query_string="versions" if versions else None,
                headers=self._headers())[1]
            if not page:
                return
            yield from page
            marker = page[-1]["name"]
            if versions:
                version_marker = page[-1].get("version_id")

    @staticmethod
    def _remove_version(where, superseded, removed, left, get, delete):
        try:
            if not superseded(get()):
                return
            delete()
        except metadata_object.ObjectTooLarge as exc:
            left.append("%s (%s)" % (where, exc))
            return
        except Exception as exc:
            if _not_found(exc):  # gone meanwhile: nothing left to remove
                return
            status = getattr(exc, "http_status", None)
            left.append("%s (%s)" % (where, "HTTP %s" % status if status
                                     else type(exc).__name__))
            return
        removed.append(where)


def _size(headers):
    return metadata_object.reported_size(headers.get("content-range"),
                                         headers.get("content-length"))


class _BoundedObjectReader:
    """What ``get_object_reader`` returns: ``read()`` gives the object's
    bytes, at most *limit* (``InvalidBackup`` naming the object and the
    limit for a larger one)."""

    def __init__(self, driver, container, name, limit):
        self.driver, self.container, self.name, self.limit = driver, container, name, limit

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self):
        try:
            return self.driver.read_object_bounded(
                self.container, self.name, self.limit,
                what="data object %s of container %s" % (self.name, self.container),
                limit_words=chunks.limit_words(self.limit))
        except metadata_object.ObjectTooLarge as exc:
            raise exception.InvalidBackup(reason=str(exc)) from None
