"""How a keyring is laid out in Barbican: the names of its secrets and of
its container, the container's entries (``vN.KEYID.CREATED``: the immutable
facts of a version) and the consumer each secret carries."""

import logging
import re

from sealedmeta import exceptions
from sealedmeta import names
from sealedmeta.keystores.barbican.session import uuid_of

LOG = logging.getLogger(__name__)

CONSUMER_SERVICE = "sealedmeta"
CONSUMER_TYPE = "keyring"


def entry_name(version):
    return "v%d.%s.%d" % (version.number, version.key_id.hex(), version.created)


def _parse_entry_name(name):
    """(number, key_id, created) from a container entry name, or None."""
    try:
        vpart, kid, created = name.split(".")
        if not vpart.startswith("v"):
            return None
        key_id = bytes.fromhex(kid)
        if len(key_id) != names.KEY_ID_SIZE:
            return None
        return int(vpart[1:]), key_id, int(created)
    except (ValueError, AttributeError):
        return None


def entries(doc):
    """[(number, key_id, created, secret uuid)] of a container document."""
    found = []
    for ref in doc.get("secret_refs", []):
        parsed = _parse_entry_name(ref.get("name", ""))
        if parsed is None:
            LOG.warning("ignoring unexpected entry %r in a keyring container",
                        ref.get("name"))
            continue
        found.append(parsed + (uuid_of(ref["secret_ref"]),))
    return sorted(found)


# How often a keyring's container may vanish between its listing and its
# check before the read gives up.
_VANISHED_ATTEMPTS = 5


class Layout:
    """The names of a keyring's secrets and container, and its container."""

    def __init__(self, session, access, prefix):
        self.session = session
        self.access = access
        self.prefix = prefix
        self.containers = {}   # keyring name -> container uuid

    def container_name(self, name):
        return "%s:%s" % (self.prefix, names.check_keyring_name(name))

    def secret_name(self, name, number, kind=""):
        """The name of version *number*'s secret of keyring *name*; *kind*
        ":sign" names its signing key, ":destroyed" its tombstone."""
        return "%s:%s:v%d%s" % (self.prefix, name, number, kind)

    def secret_pattern(self, name):
        """(Barbican's name filter, the exact pattern) of the secrets named
        by :meth:`secret_name` for keyring *name*; the pattern's groups are
        the number and the kind."""
        return ("%s:%s:v%%" % (self.prefix, name), re.compile(
            r"%s:%s:v([0-9]+)(:sign|:destroyed)?\Z" % (
                re.escape(self.prefix), re.escape(name))))

    def find_containers(self, name):
        """Container JSON documents named for *name* that the service user
        created, oldest first (UntrustedKeyObject if only others' are)."""
        session = self.session
        api = session.client.client
        found = []
        offset = 0
        while True:
            page = session.read("listing containers", api.get, "containers",
                                params={"name": self.container_name(name),
                                        "type": "generic", "limit": 100,
                                        "offset": offset})
            items = page.get("containers", [])
            found.extend(c for c in items
                         if c.get("name") == self.container_name(name))
            offset += len(items)
            if not items or offset >= page.get("total", 0):
                break
        own = [c for c in found if c.get("creator_id") == session.service_user()]
        if found and not own:
            self.access.check_owned("containers", uuid_of(found[0]["container_ref"]),
                                    "the container of keyring %r" % name, found[0])
        return sorted(own, key=lambda c: (c.get("created", ""),
                                          c.get("container_ref", "")))

    def container(self, name, required=True):
        """(uuid, document) of keyring *name*'s container (NoSuchKeyring, or
        (None, None) when not *required*)."""
        uuid = self.containers.get(name)
        session = self.session
        if uuid is not None:
            try:
                doc = session.read("reading keyring %r" % name,
                                   session.client.client.get,
                                   "containers/%s" % uuid)
                self.access.check_owned("containers", uuid,
                                        "the container of keyring %r" % name, doc)
                return uuid, doc
            except Exception as exc:
                if not session.is_not_found(exc):
                    raise
                self.containers.pop(name, None)
        for _ in range(_VANISHED_ATTEMPTS):
            found = self.find_containers(name)
            if not found:
                if required:
                    raise exceptions.NoSuchKeyring(
                        "no keyring %r in Barbican at %s" % (name, session.where()))
                return None, None
            doc = found[0]
            uuid = uuid_of(doc["container_ref"])
            try:
                self.access.check_owned("containers", uuid,
                                        "the container of keyring %r" % name, doc)
            except Exception as exc:
                if not session.is_not_found(exc):
                    raise
                # Removed since it was listed (a racing create withdrawing
                # its duplicate): list again.
                continue
            self.containers[name] = uuid
            return uuid, doc
        raise exceptions.KeyStoreError(
            "the container of keyring %r in Barbican at %s was removed each"
            " time it was listed (%d times): creates of that keyring are"
            " racing; try again" % (name, session.where(), _VANISHED_ATTEMPTS))

    def new_container(self, name):
        """Create keyring *name*'s (empty, private) container; its uuid."""
        session = self.session
        ref = session.write("creating keyring %r" % name, session.client.client.post,
                            "containers", json={"type": "generic",
                                                "name": self.container_name(name),
                                                "secret_refs": []})
        uuid = uuid_of(ref["container_ref"])
        try:
            self.access.restrict("containers", uuid,
                                 "the container of keyring %r" % name)
        except exceptions.SealedMetaError:
            self.remove_container(name, uuid)
            raise
        return uuid

    def remove_container(self, name, uuid):
        """Best effort: no keyring container without a version is left."""
        try:
            self.session.client.client.delete("containers/%s" % uuid)
        except Exception:
            LOG.warning("could not remove the container of the failed"
                        " keyring %r", name)

    def list_entry(self, container, version, secret, what):
        """List *secret* in *container* as the entry of *version*."""
        self._entry("post", container, version, secret, what)

    def unlist_entry(self, container, version, secret, what):
        self._entry("delete", container, version, secret, what)

    def _entry(self, method, container, version, secret, what):
        session = self.session
        session.write(what, getattr(session.client.client, method),
                      "containers/%s/secrets" % container,
                      json={"name": entry_name(version),
                            "secret_ref": session.secret_ref(secret)})
