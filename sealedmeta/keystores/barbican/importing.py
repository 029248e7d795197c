"""Importing a keyring (from another key store) into Barbican."""

from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta.keystores import base
from sealedmeta.keystores.barbican import secret_meta


class Importer:
    """Copying a whole keyring in."""

    def __init__(self, session, layout, meta, reader, rotation, cleanup):
        self.session = session
        self.layout = layout
        self.meta = meta
        self.reader = reader
        self.rotation = rotation
        self.cleanup = cleanup

    def import_keyring(self, ring, keys, signing_keys=None):
        signing_keys = signing_keys or {}
        base.check_import(ring, keys, signing_keys)
        name = ring.name
        uuid, _ = self.layout.container(name, required=False)
        if uuid is not None:
            raise exceptions.KeyringExists(
                "keyring %r already exists in Barbican at %s"
                % (name, self.session.where()))
        container = self.layout.containers[name] = self.layout.new_container(name)
        for version in ring.versions:
            if version.state is kr.KeyState.DESTROYED:
                # No material to carry: listed as a tombstone, as a destroy
                # made here leaves it, so envelopes under it are still
                # known to be under a destroyed key.
                self.cleanup.list_tombstone(name, version)
                continue
            secret = self.rotation.store_version(
                name, container, version.number, keys[version.number],
                secret_meta.PENDING, version.created,
                signing_keys.get(version.number))
            self.meta.set_state(secret, name, version.number, version.key_id,
                                version.created, version.state.value,
                                deactivated=version.deactivated,
                                destroy_after=version.destroy_after)
        return self.reader.get_keyring(name)
