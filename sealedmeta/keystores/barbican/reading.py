"""Reading a keyring: its container and its versions' metadata into a
:class:`~sealedmeta.keyring.KeyRing`, and fetching version keys and
signing keys (each checked against the key id or public key listed)."""

import logging
import time

from sealedmeta import crypto
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import signing
from sealedmeta.keystores import base
from sealedmeta.keystores.barbican import layout
from sealedmeta.keystores.barbican import secret_meta

LOG = logging.getLogger(__name__)

# Seconds get_key may rely on the keyring read just before it.
_SNAPSHOT_REUSE = 1.0


def _time(text, what, name, number):
    """Epoch seconds of a time field of version *number*'s metadata (None
    when absent); KeyStoreError when malformed."""
    if text is None:
        return None
    value = secret_meta.parse_time(text)
    if value is None:
        raise exceptions.KeyStoreError(
            "keyring %r: version %d has a malformed %s time"
            % (name, number, what))
    return value


class Reader:
    """Loading keyrings, fetching keys."""

    def __init__(self, session, access, layout, meta):
        self.session = session
        self.access = access
        self.layout = layout
        self.meta = meta
        self.secrets = {}       # (keyring, version) -> version secret uuid
        self.tombstones = set()  # uuids of tombstone secrets, as last read
        self._snapshots = {}    # keyring -> (monotonic time, KeyRing) of the last read

    def load(self, name):
        """(KeyRing, raw version list incl. pending, container uuid)."""
        uuid, doc = self.layout.container(name)
        raw = []
        public_keys = {}
        due = {}
        # Ascending version order matters: a rotation marks its new version
        # active before it demotes older ones, so a reader going up the
        # versions always meets at least one active version.
        for number, key_id, created, secret in layout.entries(doc):
            try:
                # Only the service user can write the metadata of its own
                # private secret: what is not its own is not believed.
                self.access.check_owned("secrets", secret,
                                        "version %d of keyring %r" % (number, name))
            except Exception as exc:
                if not self.session.is_not_found(exc):
                    raise
                meta = None
            else:
                meta = self.meta.read(secret)
            if meta is None:
                # The secret is gone: a pending secret its rotation withdrew
                # (it lost a race or failed), or a destroyed version, which
                # is known by its tombstone entry (listed before the secret
                # is deleted). Either way not a version of its own.
                continue
            if meta.get("tombstone") == "1":
                state = kr.KeyState.DESTROYED.value
                self.tombstones.add(secret)
            else:
                state = meta.get("state")
                if meta.get("key_id") != key_id.hex() or meta.get("version") != str(number) \
                        or meta.get("keyring") != name:
                    LOG.warning("keyring %r: version %d's secret metadata does"
                                " not match its entry; ignoring it", name, number)
                    continue
            extra = {k: meta[k] for k in secret_meta.KEPT_FIELDS if k in meta}
            if meta.get("tombstone") != "1":
                self.meta.kept[secret] = extra
            raw.append((number, key_id, created, secret, state))
            public_keys[(number, secret)] = extra
            # The state's own field (a tombstone's version has none).
            due[(number, secret)] = (None if meta.get("tombstone") == "1"
                                     else meta.get("destroy_after"))
        versions = {}
        for number, key_id, created, secret, state in raw:
            if state == secret_meta.PENDING:
                continue
            extra = public_keys[(number, secret)]
            try:
                public_key = extra.get("public_key")
                if public_key is not None:
                    public_key = signing.check_public_key(bytes.fromhex(public_key))
            except (ValueError, TypeError, exceptions.KeyStoreError):
                raise exceptions.KeyStoreError(
                    "keyring %r: version %d has a malformed public key"
                    % (name, number)) from None
            deactivated = _time(extra.get("deactivated"), "deactivated",
                                name, number)
            destroy_after = _time(due[(number, secret)], "destruction", name,
                                  number)
            try:
                version = kr.KeyVersion(number, key_id, kr.KeyState(state), created,
                                        public_key, deactivated, destroy_after)
            except ValueError:
                raise exceptions.KeyStoreError(
                    "keyring %r: version %d has unknown state %r"
                    % (name, number, state)) from None
            known = versions.get(number)
            if known is not None:
                # A destroyed version is listed twice: its tombstone, and its
                # secret until the deletion is finished. Anything else is not
                # ours to guess about.
                if known.key_id != key_id or kr.KeyState.DESTROYED not in (
                        known.state, version.state):
                    raise exceptions.KeyStoreError(
                        "keyring %r in Barbican lists version %d twice"
                        % (name, number))
                version = known if known.state is kr.KeyState.DESTROYED else version
            versions[number] = version
            if version.state is not kr.KeyState.DESTROYED:
                self.secrets[(name, number)] = secret
        versions = list(versions.values())
        if not versions:
            raise exceptions.KeyStoreError(
                "keyring %r in Barbican has no usable version" % name)
        versions = kr.resolve_actives(name, versions)
        return kr.KeyRing(name, versions), raw, uuid

    def list_keyrings(self):
        session = self.session
        api = session.client.client
        names, offset = set(), 0
        prefix = self.layout.prefix + ":"
        while True:
            page = session.read("listing containers", api.get, "containers",
                              params={"type": "generic", "limit": 100,
                                      "offset": offset})
            items = page.get("containers", [])
            for c in items:
                cname = c.get("name") or ""
                if cname.startswith(prefix) and \
                        c.get("creator_id") == session.service_user():
                    names.add(cname[len(prefix):])
            offset += len(items)
            if not items or offset >= page.get("total", 0):
                break
        return sorted(names)

    def get_keyring(self, name):
        ring = self.load(name)[0]
        self._snapshots[name] = (time.monotonic(), ring)
        return ring

    def _recent_keyring(self, name):
        # A Sealer asks for a key right after reading the keyring: reuse that
        # read for a moment instead of reading every version's state again.
        taken, ring = self._snapshots.get(name, (None, None))
        if ring is None or time.monotonic() - taken > _SNAPSHOT_REUSE:
            ring = self.get_keyring(name)
        return ring

    def get_key(self, name, version):
        current = base.openable_version(self._recent_keyring(name), version)
        return self.fetch(name, current)

    def get_signing_key(self, name, version):
        current = base.signing_version(self._recent_keyring(name), version)
        return self.fetch_signing(name, current)

    def export_signing_keys(self, ring):
        return {v.number: self.fetch_signing(ring.name, v)
                for v in ring.versions
                if v.state is not kr.KeyState.DESTROYED
                and v.public_key is not None}

    def fetch_signing(self, name, current):
        session = self.session
        version = current.number
        if current.public_key is None:
            raise exceptions.KeyUnavailable(
                "version %d of keyring %r has no signing key" % (version, name))
        secret = self.secrets[(name, version)]
        uuid = self.meta.signing_key(secret)
        if not uuid:
            raise exceptions.KeyStoreError(
                "version %d of keyring %r names no signing key secret"
                % (version, name))
        try:
            self.access.check_owned("secrets", uuid, "the signing key of version"
                                    " %d of keyring %r" % (version, name))
            der = session.read("fetching the signing key of version %d of"
                               " keyring %r" % (version, name),
                               lambda: session.km.get(session.ctx, uuid).get_encoded())
        except exceptions.SealedMetaError:
            raise
        except Exception:  # only not-found gets here (see _read)
            raise exceptions.KeyStoreError(
                "Barbican at %s: the signing key secret of version %d of keyring"
                " %r is missing (deleted outside sealedmeta?)"
                % (session.where(), version, name)) from None
        seed = signing.seed_from_pkcs8(der)
        if signing.public_key_of(seed) != current.public_key:
            raise exceptions.KeyStoreError(
                "the signing key of version %d of keyring %r does not match"
                " its public key" % (version, name))
        return seed

    def export_keyring(self, name):
        ring = self.get_keyring(name)
        return ring, {v.number: self.fetch(name, v) for v in ring.versions
                      if v.state is not kr.KeyState.DESTROYED}

    def fetch(self, name, current):
        session = self.session
        version = current.number
        secret = self.secrets[(name, version)]
        try:
            key = session.read("fetching version %d of keyring %r" % (version, name),
                               lambda: session.km.get(session.ctx, secret).get_encoded())
        except exceptions.SealedMetaError:
            raise
        except Exception:  # only not-found gets here (see _read)
            raise exceptions.KeyStoreError(
                "Barbican at %s: the secret of version %d of keyring %r is"
                " missing (deleted outside sealedmeta?); the version cannot"
                " open envelopes" % (session.where(), version, name)) from None
        if type(key) is not bytes or len(key) != crypto.KEY_SIZE or \
                crypto.key_id(key) != current.key_id:
            raise exceptions.KeyStoreError(
                "the secret of version %d of keyring %r does not match its key id"
                % (version, name))
        return key

