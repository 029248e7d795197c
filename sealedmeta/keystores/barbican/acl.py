"""Who may read and change what: every secret and container is private to
the service user (ACL ``project-access: false``, that user listed), and
anything a keyring refers to must have been created by that user
(``creator_id``), or it is refused with UntrustedKeyObject."""

import logging

from barbicanclient import exceptions as bc_exc

from sealedmeta import exceptions
from sealedmeta.keystores.barbican.session import uuid_of

LOG = logging.getLogger(__name__)


class Access:
    """Private objects, checked as the service user's own."""

    def __init__(self, session):
        self.session = session
        # uuids checked as created by the service user and private to it:
        # neither can change afterwards but by that user or a project admin
        self.owned = set()

    def restrict(self, kind, uuid, what):
        """Make secret or container *uuid* (*kind*: "secrets" or
        "containers") readable by the service user alone: no other member
        of the project may then read it or change it."""
        session = self.session
        session.write("restricting access to %s" % what, session.client.client.put,
                      "%s/%s/acl" % (kind, uuid),
                      json={"read": {"project-access": False,
                                     "users": [session.service_user()]}})
        self.owned.add(uuid)

    def check_owned(self, kind, uuid, what, doc=None):
        """UntrustedKeyObject unless the service user created *uuid*; a
        keyring's object made before ACLs were set gets its ACL now.
        *doc*: the object as just read, if at hand. A 404 passes through."""
        if uuid in self.owned:
            return
        session = self.session
        api = session.client.client

        def get(path):
            try:
                return api.get(path)
            except bc_exc.HTTPClientError as exc:
                if exc.status_code == 403:
                    return {}    # private to someone else: not ours
                raise

        if doc is None:
            doc = session.read("reading %s" % what, get, "%s/%s" % (kind, uuid))
        if doc.get("creator_id") != session.service_user():
            raise exceptions.UntrustedKeyObject(
                "%s (Barbican %s %s) was not created by the user this store"
                " authenticates as: another user of the project may have"
                " planted it; it is not used. Give sealedmeta a project of its"
                " own" % (what, kind[:-1], uuid))
        acl = session.read("reading the access list of %s" % what, api.get,
                           "%s/%s/acl" % (kind, uuid)).get("read", {})
        if acl.get("project-access") is not False or \
                session.service_user() not in acl.get("users", []):
            LOG.warning("%s was readable by the whole project; restricting it"
                        " to the service user", what)
            self.restrict(kind, uuid, what)
        self.owned.add(uuid)

    def store_secret(self, name, secret_type, algorithm, payload, what):
        """Store a private secret: created empty, restricted, then given
        *payload*, so that no other user can read it at any moment."""
        session = self.session
        ref = session.write(what, session.client.client.post, "secrets", json={
            "name": name, "secret_type": secret_type, "algorithm": algorithm,
            "bit_length": 256})
        uuid = uuid_of(ref["secret_ref"])
        try:
            self.restrict("secrets", uuid, what)
            session.write(what, session.client.client.put, "secrets/%s" % uuid,
                          data=payload,
                          headers={"Content-Type": "application/octet-stream"})
        except exceptions.SealedMetaError:
            session.forget_secret(uuid)
            raise
        return uuid
