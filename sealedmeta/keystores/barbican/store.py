"""The Barbican key store: one object made of the package's parts, each
handed the parts it works with."""

from sealedmeta.keystores import base
from sealedmeta.keystores.barbican import acl
from sealedmeta.keystores.barbican import cleanup
from sealedmeta.keystores.barbican import importing
from sealedmeta.keystores.barbican import layout
from sealedmeta.keystores.barbican import options
from sealedmeta.keystores.barbican import reading
from sealedmeta.keystores.barbican import rotation
from sealedmeta.keystores.barbican import secret_meta
from sealedmeta.keystores.barbican import session


class BarbicanKeyStore(base.KeyStore):

    def __init__(self, conf):
        options.register_opts(conf)
        self.session = session.Session(conf)
        self.access = acl.Access(self.session)
        self.layout = layout.Layout(self.session, self.access,
                                    conf.barbican_store.name_prefix)
        self.meta = secret_meta.SecretMetadata(self.session)
        self.reader = reading.Reader(self.session, self.access, self.layout,
                                     self.meta)
        self.cleanup = cleanup.Cleanup(self.session, self.access, self.layout,
                                       self.meta, self.reader)
        self.rotation = rotation.Rotation(self.session, self.access,
                                          self.layout, self.meta, self.reader,
                                          self.cleanup)
        self.importer = importing.Importer(self.session, self.layout,
                                           self.meta, self.reader,
                                           self.rotation, self.cleanup)

    @classmethod
    def from_config(cls, conf):
        return cls(conf)

    def __repr__(self):
        return "BarbicanKeyStore(%r)" % (self.session.endpoint or "catalog",)

    def describe(self):
        return "Barbican %s" % (self.session.endpoint
                                or "(endpoint from the Keystone catalog)")

    # -- reading (KeyReader) ------------------------------------------------

    def get_keyring(self, name):
        return self.reader.get_keyring(name)

    def get_key(self, name, version):
        return self.reader.get_key(name, version)

    def get_signing_key(self, name, version):
        return self.reader.get_signing_key(name, version)

    def close(self):
        self.session.close()

    # -- administration -------------------------------------------------------

    def list_keyrings(self):
        return self.reader.list_keyrings()

    def create_keyring(self, name, signing=False):
        return self.rotation.create_keyring(name, signing)

    def rotate(self, name, signing=False):
        return self.rotation.rotate(name, signing)

    def set_state(self, name, version, state, destroy_after=None):
        return self.rotation.set_state(name, version, state, destroy_after)

    def export_keyring(self, name):
        return self.reader.export_keyring(name)

    def export_signing_keys(self, ring):
        return self.reader.export_signing_keys(ring)

    def import_keyring(self, ring, keys, signing_keys=None):
        return self.importer.import_keyring(ring, keys, signing_keys)

    def finish_destroy(self, name, version):
        return self.cleanup.finish_destroy(name, version)

    def leftovers(self, name, remove=False, min_age=None):
        return self.cleanup.leftovers(name, remove, min_age)
