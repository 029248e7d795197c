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
backup's project as the ``[sealedmeta] swift_service_*`` user, who holds
Swift's reseller admin role.
"""

import json

from oslo_config import cfg

from cinder.backup.drivers import swift as _stock
from cinder import context as cinder_context
from sealedmeta import exceptions
from sealedmeta.cinder import mixin
from sealedmeta.cinder import volume_meta as vm

try:
    from swiftclient import exceptions as swift_exc
except ImportError:  # the stock driver refuses to start without it too
    swift_exc = None

CONF = cfg.CONF

SERVICE_OPTS = ("swift_service_auth_url", "swift_service_username",
                "swift_service_password", "swift_service_project_name")


def _not_found(exc):
    return (swift_exc is not None and isinstance(exc, swift_exc.ClientException)
            and exc.http_status == 404)


def is_plaintext(data):
    """True unless *data* is a metadata object whose ``volume_meta`` is sealed
    (what cannot be parsed may hold anything: it counts as plaintext)."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        return True
    return not (isinstance(obj, dict) and vm.is_sealed(obj.get("volume_meta")))


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
        with the token of the ``[sealedmeta] swift_service_*`` user.

        Raises :class:`~sealedmeta.exceptions.ConfigurationError` when those
        options are not set.
        """
        if CONF.backup_swift_auth != "per_user":
            return None
        group = CONF.sealedmeta
        unset = [name for name in SERVICE_OPTS if not group[name]]
        if unset:
            raise exceptions.ConfigurationError(
                "backup_swift_auth = per_user keeps each backup in its project's"
                " own Swift account: set %s in [sealedmeta] (a Keystone service"
                " user holding Swift's reseller admin role, e.g. ResellerAdmin)"
                " so that each project's account can be reached"
                % ", ".join(unset))
        if not CONF.backup_swift_url:
            raise exceptions.ConfigurationError(
                "backup_swift_auth = per_user: set backup_swift_url (the storage"
                " URL without the project id, e.g. http://swift:8080/v1/AUTH_)"
                " so that each project's account URL can be built as Cinder"
                " builds it")
        from keystoneauth1.identity import v3
        from keystoneauth1 import session as ks_session
        session = ks_session.Session(auth=v3.Password(
            auth_url=group.swift_service_auth_url,
            username=group.swift_service_username,
            password=group.swift_service_password,
            user_domain_name=group.swift_service_user_domain_name,
            project_name=group.swift_service_project_name,
            project_domain_name=group.swift_service_project_domain_name),
            verify=not CONF.backup_swift_auth_insecure)

        def driver(project_id):
            # get_token() renews the token when it nears expiry: a driver per
            # call never holds a stale one.
            ctxt = cinder_context.RequestContext(
                user_id=session.get_user_id(), project_id=project_id,
                auth_token=session.get_token(), is_admin=True)
            return cls(ctxt)
        return driver

    # -- versions a rewrite supersedes ----------------------------------------

    def remove_superseded_versions(self, backup, name, superseded=is_plaintext):
        """Delete the older versions of object *name* in the backup's
        container whose bytes *superseded* says must go (by default: those
        not sealed), after a rewrite of the object.

        Swift keeps them when the container has ``X-Versions-Location`` or
        ``X-History-Location`` (an archive container, objects named
        ``<3 hex digits of len(name)><name>/<timestamp>``) or object
        versioning (``X-Versions-Enabled``, versions by ``version-id``).
        Returns ``(removed, left)``: lists of ``"container/object"`` strings
        (``?version-id=`` appended for object versions); *left* entries end
        with the reason.
        """
        container = backup["container"]
        headers = self.conn.head_container(container, headers=self._headers())
        removed, left = [], []
        archive = (headers.get("x-versions-location")
                   or headers.get("x-history-location"))
        if archive:
            prefix = "%03x%s/" % (len(name), name)
            for entry in self.conn.get_container(archive, prefix=prefix, full_listing=True,
                                                 headers=self._headers())[1]:
                where = "%s/%s" % (archive, entry["name"])
                self._remove_version(where, superseded, removed, left,
                                     lambda e=entry: self.conn.get_object(
                                         archive, e["name"], headers=self._headers()),
                                     lambda e=entry: self.conn.delete_object(
                                         archive, e["name"], headers=self._headers()))
        if str(headers.get("x-versions-enabled", "")).lower() == "true":
            for entry in self._versions(container, name):
                version = entry.get("version_id")
                if (entry.get("name") != name or entry.get("is_latest")
                        or not version
                        or entry.get("content_type", "").startswith(
                            "application/x-deleted")):
                    continue
                query = "version-id=%s" % version
                where = "%s/%s?%s" % (container, name, query)
                self._remove_version(where, superseded, removed, left,
                                     lambda q=query: self.conn.get_object(
                                         container, name, query_string=q,
                                         headers=self._headers()),
                                     lambda q=query: self.conn.delete_object(
                                         container, name, query_string=q,
                                         headers=self._headers()))
        return removed, left

    def _versions(self, container, prefix):
        """Every version listed under *prefix* (swiftclient's full_listing
        drops the ``versions`` query: page with both markers here)."""
        listing, marker, version_marker = [], None, None
        while True:
            page = self.conn.get_container(container, prefix=prefix, marker=marker,
                                           version_marker=version_marker,
                                           query_string="versions",
                                           headers=self._headers())[1]
            if not page:
                return listing
            listing.extend(page)
            marker, version_marker = page[-1]["name"], page[-1].get("version_id")

    @staticmethod
    def _remove_version(where, superseded, removed, left, get, delete):
        try:
            if not superseded(get()[1]):
                return
            delete()
        except Exception as exc:
            if _not_found(exc):  # gone meanwhile: nothing left to remove
                return
            status = getattr(exc, "http_status", None)
            left.append("%s (%s)" % (where, "HTTP %s" % status if status
                                     else type(exc).__name__))
            return
        removed.append(where)
