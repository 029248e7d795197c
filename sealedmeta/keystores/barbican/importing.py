"""Importing a keyring (from another key store) into Barbican."""

from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta.keystores import base
from sealedmeta.keystores.barbican import secret_meta
from sealedmeta.keystores.barbican import session


class Importing:
    """Copying a whole keyring in."""

    def import_keyring(self, ring, keys, signing_keys=None):
        signing_keys = signing_keys or {}
        base.check_import(ring, keys, signing_keys)
        name = ring.name
        uuid, _ = self._container(name, required=False)
        if uuid is not None:
            raise exceptions.KeyringExists(
                "keyring %r already exists in Barbican at %s" % (name, self._where()))
        ref = self._write("creating keyring %r" % name, self._client.client.post,
                          "containers", json={"type": "generic",
                                              "name": self._container_name(name),
                                              "secret_refs": []})
        container = session.uuid_of(ref["container_ref"])
        self._restrict("containers", container, "the container of keyring %r" % name)
        self._containers[name] = container
        for version in ring.versions:
            if version.state is kr.KeyState.DESTROYED:
                # No material to carry: listed as a tombstone, as a destroy
                # made here leaves it, so envelopes under it are still
                # known to be under a destroyed key.
                self._list_tombstone(name, version)
                continue
            secret = self._store_version(name, container, version.number,
                                         keys[version.number], secret_meta.PENDING, version.created,
                                         signing_keys.get(version.number))
            self._set_state(secret, name, version.number, version.key_id,
                            version.created, version.state.value,
                            deactivated=version.deactivated)
        return self.get_keyring(name)

