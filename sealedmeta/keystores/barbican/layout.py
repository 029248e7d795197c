"""How a keyring is laid out in Barbican: the names of its secrets and of
its container, the container's entries (``vN.KEYID.CREATED``: the immutable
facts of a version) and the consumer each secret carries."""

import logging

from sealedmeta import exceptions
from sealedmeta import names
from sealedmeta.keystores.barbican import session

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


class Layout:
    """Names, the keyring's container and its entries."""

    def _container_name(self, name):
        return "%s:%s" % (self._prefix, names.check_keyring_name(name))

    def _find_containers(self, name):
        """Container JSON documents named for *name* that the service user
        created, oldest first (UntrustedKeyObject if only others' are)."""
        api = self._client.client
        found = []
        offset = 0
        while True:
            page = self._read("listing containers", api.get, "containers",
                              params={"name": self._container_name(name),
                                      "type": "generic", "limit": 100,
                                      "offset": offset})
            items = page.get("containers", [])
            found.extend(c for c in items
                         if c.get("name") == self._container_name(name))
            offset += len(items)
            if not items or offset >= page.get("total", 0):
                break
        own = [c for c in found if c.get("creator_id") == self._service_user()]
        if found and not own:
            self._check_owned("containers", session.uuid_of(found[0]["container_ref"]),
                              "the container of keyring %r" % name, found[0])
        return sorted(own, key=lambda c: (c.get("created", ""),
                                          c.get("container_ref", "")))

    def _container(self, name, required=True):
        uuid = self._containers.get(name)
        api = self._client.client
        if uuid is not None:
            try:
                doc = self._read("reading keyring %r" % name, api.get,
                                 "containers/%s" % uuid)
                self._check_owned("containers", uuid,
                                  "the container of keyring %r" % name, doc)
                return uuid, doc
            except Exception as exc:
                if not self._is_not_found(exc):
                    raise
                self._containers.pop(name, None)
        found = self._find_containers(name)
        if not found:
            if required:
                raise exceptions.NoSuchKeyring(
                    "no keyring %r in Barbican at %s" % (name, self._where()))
            return None, None
        doc = found[0]
        uuid = session.uuid_of(doc["container_ref"])
        self._check_owned("containers", uuid, "the container of keyring %r" % name,
                          doc)
        self._containers[name] = uuid
        return uuid, doc

    def _entries(self, doc):
        """[(number, key_id, created, secret uuid)] of a container document."""
        entries = []
        for ref in doc.get("secret_refs", []):
            parsed = _parse_entry_name(ref.get("name", ""))
            if parsed is None:
                LOG.warning("ignoring unexpected entry %r in a keyring container",
                            ref.get("name"))
                continue
            entries.append(parsed + (session.uuid_of(ref["secret_ref"]),))
        return sorted(entries)

