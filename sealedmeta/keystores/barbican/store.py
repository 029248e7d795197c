"""The Barbican key store: one class made of the package's parts."""

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


class BarbicanKeyStore(session.Session, acl.Access, layout.Layout,
                       secret_meta.SecretMetadata, reading.Reading,
                       rotation.Rotation, cleanup.Cleanup, importing.Importing,
                       base.KeyStore):

    def __init__(self, conf):
        options.register_opts(conf)
        self._connect(conf)
        self._prefix = conf.barbican_store.name_prefix
        self._containers = {}   # keyring name -> container uuid
        self._secrets = {}      # (keyring, version) -> secret uuid
        # version secret uuid -> {"public_key": hex, "signing_key": uuid}
        # (empty for a version without signing key), as last read or written
        self._signing = {}
        self._snapshots = {}    # keyring -> (monotonic time, KeyRing) of the last read
        self._tombstones = set()  # uuids of tombstone secrets, as last read
        # uuids checked as created by the service user and private to it:
        # neither can change afterwards but by that user or a project admin
        self._owned = set()

    @classmethod
    def from_config(cls, conf):
        return cls(conf)

    def __repr__(self):
        return "BarbicanKeyStore(%r)" % (self._endpoint or "catalog",)

    def describe(self):
        return "Barbican %s" % (self._endpoint
                                or "(endpoint from the Keystone catalog)")
