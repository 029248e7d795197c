"""The Cinder helpers of tests/cinder, with backups in a real Swift and the
tenant's own access to them through python-swiftclient."""

import json

from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3
from swiftclient import client as swift_client

from cinder import objects

from tests.cinder import helpers as cinder_helpers
from tests.cinder.helpers import CHUNK, GLANCE, OTHER_GLANCE, SHA_BLOCK  # noqa: F401

SEALED_SWIFT = "sealedmeta.cinder.swift.SealedSwiftBackupDriver"
STOCK_SWIFT = "cinder.backup.drivers.swift.SwiftBackupDriver"
BILLING = GLANCE["billing_code_licence"].encode()


def sealed_class():
    from sealedmeta.cinder import swift
    return swift.SealedSwiftBackupDriver


def stock_class():
    from cinder.backup.drivers import swift
    return swift.SwiftBackupDriver


def keystone_session(cred, project_id=None):
    scope = ({"project_id": project_id} if project_id else
             {"project_name": cred["project_name"],
              "project_domain_name": cred["project_domain_name"]})
    return ks_session.Session(auth=v3.Password(
        auth_url=cred["auth_url"], username=cred["username"], password=cred["password"],
        user_domain_name=cred["user_domain_name"], **scope))


class Tenant:
    """The dev-openstack user ``sealedmeta`` in its project, as Swift sees it."""

    def __init__(self, env, project_id=None):
        self.env = env
        cred = env["tenant"]
        self.session = keystone_session(cred, project_id)
        self.token = self.session.get_token()
        self.user_id = self.session.get_user_id()
        self.project_id = self.session.get_project_id()
        self.storage_url = env["storage_url_prefix"] + self.project_id

    def conn(self):
        return swift_client.Connection(preauthurl=self.storage_url,
                                       preauthtoken=self.token, retries=0)


def tempauth_conn(env, user="tester"):
    cred = env["tempauth"][user]
    return swift_client.Connection(authurl=env["auth_url"], user=cred["user"],
                                   key=cred["key"], auth_version="1", retries=0)


class SwiftCloud(cinder_helpers.Cloud):
    """Volumes as files; backups through the real (Sealed)SwiftBackupDriver
    into *container* of the account *conn* reaches."""

    def __init__(self, ctxt, voldir, conn, container):
        super().__init__(ctxt, voldir)
        self.project_id, self.user_id = ctxt.project_id, ctxt.user_id
        self.conn = conn
        self.container = container

    def driver(self, cls=None):
        return (cls or sealed_class())(self.ctxt)

    def backup(self, volume_id, parent=None, cls=None, service=None):
        cls = cls or sealed_class()
        if service is None:
            service = STOCK_SWIFT if cls is stock_class() else SEALED_SWIFT
        return super().backup(volume_id, parent=parent, cls=cls, service=service)

    # -- the objects, through the store's own API ---------------------------

    def location(self, backup):
        backup = objects.Backup.get_by_id(self.ctxt, backup.id)
        return backup.container, backup.service_metadata + "_metadata"

    def raw_object(self, backup):
        return self.conn.get_object(*self.location(backup))[1]

    def read_object(self, backup):
        return json.loads(self.raw_object(backup))

    def write_raw_object(self, backup, data):
        self.conn.put_object(*self.location(backup), contents=data)

    def delete_object(self, backup):
        self.conn.delete_object(*self.location(backup))

    def object_names(self, backup):
        backup = objects.Backup.get_by_id(self.ctxt, backup.id)
        listing = self.conn.get_container(backup.container, prefix=backup.service_metadata,
                                          full_listing=True)[1]
        return sorted(entry["name"] for entry in listing)

    def versions(self, container):
        """The ``?versions`` listing, paged by hand: swiftclient's
        full_listing drops the query string."""
        listing, marker, version_marker = [], None, None
        while True:
            page = self.conn.get_container(container, marker=marker,
                                           version_marker=version_marker,
                                           query_string="versions")[1]
            if not page:
                return listing
            listing.extend(page)
            marker, version_marker = page[-1]["name"], page[-1].get("version_id")

    def every_stored_byte(self):
        """{container/object: headers + body} of every object of the account,
        object versions included."""
        found = {}
        for entry in self.conn.get_account(full_listing=True)[1]:
            name = entry["name"]
            for obj in self.versions(name):
                query = ("version-id=%s" % obj["version_id"]
                         if obj.get("version_id") not in (None, "null") else None)
                headers, body = self.conn.get_object(name, obj["name"], query_string=query)
                found["%s/%s?%s" % (name, obj["name"], query)] = (
                    json.dumps(dict(headers)).encode() + body)
        return found

    def remove_containers(self):
        """Empty and remove every container of the account whose name starts
        with the test's container name (archives included)."""
        for entry in self.conn.get_account(full_listing=True)[1]:
            name = entry["name"]
            if not name.startswith(self.container):
                continue
            headers = self.conn.head_container(name)
            # Deletions must not archive more versions.
            if headers.get("x-versions-location") or headers.get("x-history-location"):
                self.conn.post_container(name, headers={
                    "X-Remove-Versions-Location": "x", "X-Remove-History-Location": "x"})
            if headers.get("x-versions-enabled"):
                self.conn.post_container(name, headers={"X-Versions-Enabled": "false"})
            for obj in self.versions(name):
                query = ("version-id=%s" % obj["version_id"]
                         if obj.get("version_id") not in (None, "null") else None)
                self.conn.delete_object(name, obj["name"], query_string=query)
            self.conn.delete_container(name)
