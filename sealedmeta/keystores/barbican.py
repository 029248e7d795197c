"""The Barbican key store: version keys are Barbican secrets.

Layout in Barbican (one project, the service's):

* each key version is a symmetric secret named ``PREFIX:KEYRING:vN``, created
  through castellan; its user metadata holds the version's mutable state
  (``state``, plus ``keyring``, ``version``, ``key_id``, ``created``);
* a generic container named ``PREFIX:KEYRING`` lists the versions; each
  entry is named ``vN.KEYID.CREATED`` -- the immutable facts of the version --
  so a destroyed version (its secret deleted) is still known by number and
  key id;
* a signing keyring's version also has an Ed25519 private key, stored
  through castellan as a Barbican ``private`` secret (PKCS#8 DER) named
  ``PREFIX:KEYRING:vN:sign``; the version secret's metadata records its
  uuid (``signing_key``) and the public key (``public_key``, hex). A
  destroyed version's tombstone keeps ``public_key``, and destroying deletes
  the private key with the version secret;
* every version secret carries a consumer (service ``sealedmeta``, resource
  type ``keyring``, resource id the keyring name): Barbican's clients refuse
  to delete a secret with consumers unless forced.

A rotation stores the new secret as ``pending`` before it is listed, checks
that no racing rotation took the same number, and only then makes it active
and the previous one decrypt-only. A crash at any step leaves the previous
active version active, or (after the new one was marked active) two actives
that every reader resolves the same way: the highest number wins.

One keystoneauth session (and so one token) per store object: castellan's own
client would authenticate again for every call.
"""

import logging
import os
import random
import threading
import time
import urllib.parse

from barbicanclient import client as bc_client
from barbicanclient import exceptions as bc_exc
from castellan.common import exception as castellan_exc
from castellan.common import utils as castellan_utils
from castellan.common.credentials import keystone_password
from castellan.common.credentials import keystone_token
from castellan.common.objects import private_key as castellan_private_key
from castellan.common.objects import symmetric_key
from castellan.key_manager import barbican_key_manager
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import identity
from keystoneauth1 import plugin as ks_plugin
from keystoneauth1 import session as ks_session
from oslo_config import cfg
from oslo_context import context as oslo_context

from sealedmeta import crypto
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import signing
from sealedmeta.keystores import base

LOG = logging.getLogger(__name__)
# keystoneauth logs request bodies at DEBUG; secret payloads travel in them.
# Our sessions log to this logger, which never passes records on.
_HTTP_LOG = logging.getLogger("sealedmeta.keystores.barbican.http")
_HTTP_LOG.propagate = False
_HTTP_LOG.addHandler(logging.NullHandler())
_HTTP_LOG.setLevel(logging.CRITICAL)

GROUP = "barbican_store"
# Seconds get_key may rely on the keyring read just before it.
_SNAPSHOT_REUSE = 1.0
PENDING = "pending"
CONSUMER_SERVICE = "sealedmeta"
CONSUMER_TYPE = "keyring"
_ROTATE_ATTEMPTS = 10

barbican_store_opts = [
    cfg.StrOpt("name_prefix", default="sealedmeta",
               help="Prefix of the names of the secrets and containers this "
                    "store creates in Barbican."),
    cfg.FloatOpt("timeout", default=10.0, min=0.1,
                 help="Seconds to wait for one Barbican or Keystone answer."),
    cfg.IntOpt("read_retries", default=2, min=0,
               help="Retries (with backoff) of reads that failed to connect "
                    "or got a 5xx answer. Writes are never retried blindly."),
    cfg.StrOpt("noauth_project_id",
               help="DEVELOPMENT AND TESTS ONLY: talk to a Barbican that runs "
                    "without Keystone, sending this project id and the "
                    "member role in headers. Leave unset in production, where "
                    "castellan's [key_manager] credentials are used."),
]


def register_opts(conf):
    conf.register_opts(barbican_store_opts, group=GROUP)
    # castellan's own options: [barbican] and [key_manager].
    conf.register_opts(barbican_key_manager._barbican_opts, group="barbican")
    conf.register_opts(castellan_utils.credential_opts, group="key_manager")


def list_opts():
    return [(GROUP, barbican_store_opts)]


class _NoAuth(ks_plugin.BaseAuthPlugin):
    """Headers a Barbican without Keystone trusts (development only)."""

    def __init__(self, endpoint, project_id):
        super().__init__()
        self._endpoint = endpoint
        self._project_id = project_id

    def get_headers(self, session, **kwargs):
        return {"X-Project-Id": self._project_id, "X-Roles": "member"}

    def get_endpoint(self, session, **kwargs):
        return self._endpoint

    def get_project_id(self, session, **kwargs):
        return self._project_id


class _Context(oslo_context.RequestContext):
    """Hands castellan our long-lived auth plugin (castellan's seam)."""

    def __init__(self, auth):
        super().__init__()
        self._auth = auth

    def get_auth_plugin(self):
        return self._auth


class _KeyManager(barbican_key_manager.BarbicanKeyManager):
    """castellan's Barbican key manager over our one session."""

    def __init__(self, conf, client):
        super().__init__(conf)
        self._client_of = client     # a callable: the store's (lazy) client

    def _get_barbican_client(self, context):
        return self._client_of()


def _auth_from_conf(conf, endpoint):
    if conf.barbican_store.noauth_project_id:
        return _NoAuth(endpoint, conf.barbican_store.noauth_project_id)
    if not conf.key_manager.auth_type:
        raise exceptions.KeyStoreError(
            "the barbican key store needs credentials: set [key_manager]"
            " auth_type = keystone_password (with auth_url, username, password,"
            " project) or keystone_token")
    try:
        cred = castellan_utils.credential_factory(conf)
    except Exception as exc:  # castellan raises its own types and ValueError
        raise exceptions.KeyStoreError(
            "incomplete [key_manager] credentials: %s" % type(exc).__name__) from None
    common = dict(
        auth_url=cred.auth_url, trust_id=cred.trust_id,
        domain_id=cred.domain_id, domain_name=cred.domain_name,
        project_id=cred.project_id, project_name=cred.project_name,
        project_domain_id=cred.project_domain_id,
        project_domain_name=cred.project_domain_name,
        reauthenticate=True)
    if isinstance(cred, keystone_password.KeystonePassword):
        return identity.Password(
            username=cred.username, password=cred.password,
            user_id=cred.user_id, user_domain_id=cred.user_domain_id,
            user_domain_name=cred.user_domain_name, **common)
    if isinstance(cred, keystone_token.KeystoneToken):
        return identity.Token(token=cred.token, **common)
    raise exceptions.KeyStoreError(
        "[key_manager] auth_type must be keystone_password or keystone_token"
        " for the barbican key store")


def _entry_name(version):
    return "v%d.%s.%d" % (version.number, version.key_id.hex(), version.created)


def _parse_entry_name(name):
    """(number, key_id, created) from a container entry name, or None."""
    try:
        vpart, kid, created = name.split(".")
        if not vpart.startswith("v"):
            return None
        key_id = bytes.fromhex(kid)
        if len(key_id) != envelope.KEY_ID_SIZE:
            return None
        return int(vpart[1:]), key_id, int(created)
    except (ValueError, AttributeError):
        return None


def _unwrap(exc):
    """The client or keystoneauth error a castellan KeyManagerError wraps."""
    while isinstance(exc, castellan_exc.KeyManagerError) and isinstance(
            exc.__context__, Exception):
        exc = exc.__context__
    return exc


def _uuid(ref):
    return ref.rstrip("/").rsplit("/", 1)[-1]


class BarbicanKeyStore(base.KeyStore):

    def __init__(self, conf):
        register_opts(conf)
        self._conf = conf
        self._prefix = conf.barbican_store.name_prefix
        self._retries = conf.barbican_store.read_retries
        self._endpoint = conf.barbican.barbican_endpoint
        self._auth = _auth_from_conf(conf, self._endpoint)
        self._session = ks_session.Session(
            auth=self._auth, timeout=conf.barbican_store.timeout,
            verify=conf.barbican.verify_ssl)
        kwargs = {"session": self._session, "version": "v1",
                  "microversion": "1.1", "logger": _HTTP_LOG}
        if self._endpoint:
            kwargs["endpoint"] = self._endpoint
        else:
            kwargs["service_type"] = "key-manager"
            kwargs["interface"] = conf.barbican.barbican_endpoint_type
            kwargs["region_name"] = conf.barbican.barbican_region_name
        if conf.barbican_store.noauth_project_id:
            kwargs["project_id"] = conf.barbican_store.noauth_project_id
        # barbicanclient authenticates and discovers the API version when a
        # Client is built: build it on first use, so that building the store
        # never needs the servers (an agent may start while they are down)
        # and failures come out as KeyStoreError like every other call.
        self._client_kwargs = kwargs
        self._client_obj = None
        self._client_lock = threading.Lock()
        self._km = _KeyManager(conf, lambda: self._client)
        self._ctx = _Context(self._auth)
        self._containers = {}   # keyring name -> container uuid
        self._secrets = {}      # (keyring, version) -> secret uuid
        # version secret uuid -> {"public_key": hex, "signing_key": uuid}
        # (empty for a version without signing key), as last read or written
        self._signing = {}
        self._snapshots = {}    # keyring -> (monotonic time, KeyRing) of the last read

    @classmethod
    def from_config(cls, conf):
        return cls(conf)

    @property
    def _client(self):
        client = self._client_obj
        if client is not None:
            return client
        with self._client_lock:
            if self._client_obj is None:
                for attempt in range(self._retries + 1):
                    try:
                        self._client_obj = bc_client.Client(**self._client_kwargs)
                        break
                    except Exception as exc:
                        if attempt < self._retries and self._retryable(exc):
                            time.sleep(0.2 * 2 ** attempt)
                            continue
                        raise self._error("connecting", exc) from None
            return self._client_obj

    def __repr__(self):
        return "BarbicanKeyStore(%r)" % (self._endpoint or "catalog",)

    def close(self):
        self._session.session.close()

    # -- errors -----------------------------------------------------------

    def _where(self):
        return self._endpoint or "the key-manager endpoint of the catalog"

    def _error(self, what, exc):
        """A KeyStoreError naming the endpoint and what to check.

        Built from the exception's type and status only: server messages and
        request bodies are never copied into it.
        """
        while isinstance(exc, castellan_exc.KeyManagerError) and isinstance(
                getattr(exc, "__context__", None), Exception):
            exc = exc.__context__
        where = "Barbican at %s" % self._where()
        keystone = self._from_keystone(exc)
        if keystone:
            where = "Keystone at %s (authenticating for %s)" % (keystone, where)
        status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
        if isinstance(exc, (ks_exc.ConnectTimeout, ks_exc.RequestTimeout)) or (
                isinstance(exc, ks_exc.ConnectFailure) and "timed out" in str(exc)):
            hint = ("timed out after %.1fs; is the service overloaded? see"
                    " [barbican_store] timeout" % self._conf.barbican_store.timeout)
        elif isinstance(exc, (ks_exc.ConnectFailure, ks_exc.DiscoveryFailure)):
            if keystone:
                hint = "cannot connect; is Keystone running and [key_manager] auth_url right?"
            else:
                hint = ("cannot connect; is Barbican (and Keystone) running and"
                        " [barbican] barbican_endpoint / [key_manager] auth_url"
                        " right?")
        elif isinstance(exc, (ks_exc.Unauthorized, bc_exc.HTTPAuthError)) or status == 401:
            hint = ("credentials refused (401); check [key_manager] username,"
                    " password, project_name and the user and project domains")
        elif isinstance(exc, ks_exc.Forbidden) or status == 403:
            hint = ("access denied (403); the service user needs the member"
                    " (or creator) role on its project")
        elif status == 404 or isinstance(exc, (ks_exc.NotFound,
                                                castellan_exc.ManagedObjectNotFoundError)):
            hint = "not found (404)"
        elif status and status >= 500 or isinstance(
                exc, (bc_exc.HTTPServerError, ks_exc.HttpServerError)):
            hint = "server error (%s); see the Barbican server log" % (status or "5xx")
        elif isinstance(exc, ks_exc.EndpointNotFound):
            hint = ("no key-manager endpoint in the catalog; set [barbican]"
                    " barbican_endpoint")
        else:
            hint = "%s%s" % (type(exc).__name__, " (%s)" % status if status else "")
        return exceptions.KeyStoreError("%s, %s: %s" % (where, what, hint))

    def _from_keystone(self, exc):
        """Keystone's auth URL when *exc* came from a request to Keystone."""
        auth_url = getattr(self._auth, "auth_url", None)
        if not auth_url:
            return None
        keystone = urllib.parse.urlsplit(auth_url).netloc
        barbican = urllib.parse.urlsplit(self._endpoint or "").netloc
        if not keystone or keystone == barbican:
            return None
        url = getattr(exc, "url", None)
        if url:
            return auth_url if urllib.parse.urlsplit(url).netloc == keystone else None
        # Connection errors carry the URL only in their text; it is looked at,
        # never copied into the message.
        return auth_url if "//%s/" % keystone in str(exc) else None

    def _is_not_found(self, exc):
        status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
        return status == 404 or isinstance(
            exc, (ks_exc.NotFound, castellan_exc.ManagedObjectNotFoundError))

    def _retryable(self, exc):
        status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
        return isinstance(exc, (ks_exc.ConnectFailure, ks_exc.RequestTimeout,
                                bc_exc.HTTPServerError)) or (
            status is not None and status >= 500)

    def _read(self, what, fn, *args, **kwargs):
        """An idempotent read, retried with backoff on connect errors / 5xx."""
        for attempt in range(self._retries + 1):
            try:
                return fn(*args, **kwargs)
            except exceptions.SealedMetaError:
                raise
            except Exception as exc:
                # castellan wraps the client's error; judge by the original.
                cause = _unwrap(exc)
                if self._is_not_found(cause):
                    raise
                if attempt < self._retries and self._retryable(cause):
                    time.sleep(0.2 * 2 ** attempt)
                    continue
                raise self._error(what, exc) from None

    def _write(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except exceptions.SealedMetaError:
            raise
        except Exception as exc:
            raise self._error(what, exc) from None

    # -- containers -------------------------------------------------------

    def _container_name(self, name):
        return "%s:%s" % (self._prefix, envelope.check_keyring_name(name))

    def _find_containers(self, name):
        """Container JSON documents named for *name*, oldest first."""
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
        return sorted(found, key=lambda c: (c.get("created", ""),
                                            c.get("container_ref", "")))

    def _container(self, name, required=True):
        uuid = self._containers.get(name)
        api = self._client.client
        if uuid is not None:
            try:
                return uuid, self._read("reading keyring %r" % name, api.get,
                                        "containers/%s" % uuid)
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
        uuid = _uuid(doc["container_ref"])
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
            entries.append(parsed + (_uuid(ref["secret_ref"]),))
        return sorted(entries)

    def _metadata(self, uuid):
        """The secret's user metadata, or None when the secret is gone."""
        try:
            meta = self._read("reading key version state", self._client.client.get,
                              "secrets/%s/metadata" % uuid)
        except Exception as exc:
            if self._is_not_found(exc):
                return None
            raise
        return meta.get("metadata", {})

    def _load(self, name):
        """(KeyRing, raw version list incl. pending, container uuid)."""
        uuid, doc = self._container(name)
        raw = []
        public_keys = {}
        # Ascending version order matters: a rotation marks its new version
        # active before it demotes older ones, so a reader going up the
        # versions always meets at least one active version.
        for number, key_id, created, secret in self._entries(doc):
            meta = self._metadata(secret)
            if meta is None:
                # The secret is gone: a pending secret its rotation withdrew
                # (it lost a race or failed), or a destroyed version, which
                # is known by its tombstone entry (listed before the secret
                # is deleted). Either way not a version of its own.
                continue
            if meta.get("tombstone") == "1":
                state = kr.KeyState.DESTROYED.value
            else:
                state = meta.get("state")
                if meta.get("key_id") != key_id.hex() or meta.get("version") != str(number):
                    LOG.warning("keyring %r: version %d's secret metadata does"
                                " not match its entry; ignoring it", name, number)
                    continue
            extra = {k: meta[k] for k in ("public_key", "signing_key")
                     if k in meta}
            if meta.get("tombstone") != "1":
                self._signing[secret] = extra
            raw.append((number, key_id, created, secret, state))
            public_keys[(number, secret)] = extra.get("public_key")
        versions = {}
        for number, key_id, created, secret, state in raw:
            if state == PENDING:
                continue
            try:
                public_key = public_keys[(number, secret)]
                if public_key is not None:
                    public_key = signing.check_public_key(bytes.fromhex(public_key))
            except (ValueError, TypeError, exceptions.KeyStoreError):
                raise exceptions.KeyStoreError(
                    "keyring %r: version %d has a malformed public key"
                    % (name, number)) from None
            try:
                version = kr.KeyVersion(number, key_id, kr.KeyState(state), created,
                                        public_key)
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
                self._secrets[(name, number)] = secret
        versions = list(versions.values())
        if not versions:
            raise exceptions.KeyStoreError(
                "keyring %r in Barbican has no usable version" % name)
        versions = kr.resolve_actives(name, versions)
        return kr.KeyRing(name, versions), raw, uuid

    # -- KeyStore ---------------------------------------------------------

    def list_keyrings(self):
        api = self._client.client
        names, offset = set(), 0
        prefix = self._prefix + ":"
        while True:
            page = self._read("listing containers", api.get, "containers",
                              params={"type": "generic", "limit": 100,
                                      "offset": offset})
            items = page.get("containers", [])
            for c in items:
                cname = c.get("name") or ""
                if cname.startswith(prefix):
                    names.add(cname[len(prefix):])
            offset += len(items)
            if not items or offset >= page.get("total", 0):
                break
        return sorted(names)

    def get_keyring(self, name):
        ring = self._load(name)[0]
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
        return self._fetch(name, current)

    def get_signing_key(self, name, version):
        current = base.signing_version(self._recent_keyring(name), version)
        return self._fetch_signing(name, current)

    def export_signing_keys(self, ring):
        return {v.number: self._fetch_signing(ring.name, v)
                for v in ring.versions
                if v.state is not kr.KeyState.DESTROYED
                and v.public_key is not None}

    def _fetch_signing(self, name, current):
        version = current.number
        if current.public_key is None:
            raise exceptions.KeyUnavailable(
                "version %d of keyring %r has no signing key" % (version, name))
        secret = self._secrets[(name, version)]
        uuid = self._signing.get(secret, {}).get("signing_key")
        if not uuid:
            raise exceptions.KeyStoreError(
                "version %d of keyring %r names no signing key secret"
                % (version, name))
        try:
            der = self._read("fetching the signing key of version %d of keyring %r"
                             % (version, name),
                             lambda: self._km.get(self._ctx, uuid).get_encoded())
        except exceptions.SealedMetaError:
            raise
        except Exception:  # only not-found gets here (see _read)
            raise exceptions.KeyStoreError(
                "Barbican at %s: the signing key secret of version %d of keyring"
                " %r is missing (deleted outside sealedmeta?)"
                % (self._where(), version, name)) from None
        seed = signing.seed_from_pkcs8(der)
        if signing.public_key_of(seed) != current.public_key:
            raise exceptions.KeyStoreError(
                "the signing key of version %d of keyring %r does not match"
                " its public key" % (version, name))
        return seed

    def export_keyring(self, name):
        ring = self.get_keyring(name)
        return ring, {v.number: self._fetch(name, v) for v in ring.versions
                      if v.state is not kr.KeyState.DESTROYED}

    def _fetch(self, name, current):
        version = current.number
        secret = self._secrets[(name, version)]
        try:
            key = self._read("fetching version %d of keyring %r" % (version, name),
                             lambda: self._km.get(self._ctx, secret).get_encoded())
        except exceptions.SealedMetaError:
            raise
        except Exception:  # only not-found gets here (see _read)
            raise exceptions.KeyStoreError(
                "Barbican at %s: the secret of version %d of keyring %r is"
                " missing (deleted outside sealedmeta?); the version cannot"
                " open envelopes" % (self._where(), version, name)) from None
        if type(key) is not bytes or len(key) != crypto.KEY_SIZE or \
                crypto.key_id(key) != current.key_id:
            raise exceptions.KeyStoreError(
                "the secret of version %d of keyring %r does not match its key id"
                % (version, name))
        return key

    def _store_signing_key(self, name, number, seed):
        """Store a version's Ed25519 private key; its secret uuid."""
        secret = self._write(
            "storing the signing key of version %d of keyring %r" % (number, name),
            self._km.store, self._ctx,
            castellan_private_key.PrivateKey(
                "ED25519", 256, signing.seed_to_pkcs8(seed),
                name="%s:%s:v%d:sign" % (self._prefix, name, number)))
        return _uuid(secret)

    def _store_version(self, name, container, number, key, state, created,
                       seed=None):
        """Store one version secret (state as given) and list it; with
        *seed*, its signing key too."""
        key_id = crypto.key_id(key)
        extra = {}
        if seed is not None:
            extra = {"public_key": signing.public_key_of(seed).hex(),
                     "signing_key": self._store_signing_key(name, number, seed)}
        try:
            secret = self._write(
                "storing version %d of keyring %r" % (number, name),
                self._km.store, self._ctx,
                symmetric_key.SymmetricKey("AES", crypto.KEY_SIZE * 8, key,
                                           name="%s:%s:v%d" % (self._prefix, name, number)))
        except exceptions.SealedMetaError:
            if extra:
                self._forget_secret(extra["signing_key"])
            raise
        secret = _uuid(secret)
        self._signing[secret] = extra
        try:
            self._set_state(secret, name, number, key_id, created, state)
            self._write("registering a consumer", self._client.secrets.register_consumer,
                        secret, CONSUMER_SERVICE, CONSUMER_TYPE, name)
            self._write("listing version %d in keyring %r" % (number, name),
                        self._client.client.post, "containers/%s/secrets" % container,
                        json={"name": _entry_name(kr.KeyVersion(number, key_id,
                                                                kr.KeyState.ACTIVE, created)),
                              "secret_ref": self._secret_ref(secret)})
        except exceptions.SealedMetaError:
            self._forget_version_secret(secret)
            raise
        return secret

    def _forget_version_secret(self, secret):
        """_forget_secret of a version secret and of its signing key."""
        uuid = self._signing.pop(secret, {}).get("signing_key")
        self._forget_secret(secret)
        if uuid:
            self._forget_secret(uuid)

    def _secret_ref(self, uuid):
        base_url = self._client.secrets._api.get_endpoint().rstrip("/")
        return "%s/secrets/%s" % (base_url, uuid)

    def _set_state(self, secret, name, number, key_id, created, state):
        # The metadata is replaced as a whole: keep the signing key's fields.
        extra = self._signing.get(secret)
        if extra is None:
            meta = self._metadata(secret) or {}
            extra = self._signing[secret] = {
                k: meta[k] for k in ("public_key", "signing_key") if k in meta}
        meta = {"keyring": name, "version": str(number), "key_id": key_id.hex(),
                "created": str(created), "state": state}
        meta.update(extra)
        self._write("recording the state of version %d of %r" % (number, name),
                    self._client.secrets.set_secret_metadata, secret, meta)

    def _forget_secret(self, secret):
        """Best-effort removal of a secret that never became a version."""
        try:
            self._client.secrets.delete(self._secret_ref(secret), force=True)
        except Exception:  # already failing; the pending secret is harmless
            LOG.warning("could not remove the unused secret %s", secret)

    def _unlist(self, container, entry_name, secret):
        self._write("unlisting a losing version", self._client.client.delete,
                    "containers/%s/secrets" % container,
                    json={"name": entry_name, "secret_ref": self._secret_ref(secret)})

    def _repair(self, name, ring, raw):
        """Write down the resolution of several actives (crash or race)."""
        by_number = {n: (k, c, s, st) for n, k, c, s, st in raw}
        for version in ring.versions:
            key_id, created, secret, stored = by_number[version.number]
            if stored == kr.KeyState.ACTIVE.value and version.state is not kr.KeyState.ACTIVE:
                self._set_state(secret, name, version.number, key_id, created,
                                version.state.value)

    def create_keyring(self, name, signing=False):
        return self._create_keyring(name, signing)

    def _create_keyring(self, name, sign):
        """Create the container, then version 1 (with a signing key pair
        when *sign*).

        Racing creates are settled like racing rotations: a create goes on
        only if, once its container exists, it sees no other container of
        that name; otherwise it removes its own and looks again after a
        random delay (then finding the winner's, or none).
        """
        envelope.check_keyring_name(name)
        for attempt in range(_ROTATE_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0.02, 0.05 * 2 ** min(attempt, 5)))
            self._containers.pop(name, None)
            uuid, _ = self._container(name, required=False)
            if uuid is not None:
                raise exceptions.KeyringExists(
                    "keyring %r already exists in Barbican at %s"
                    % (name, self._where()))
            ref = self._write("creating keyring %r" % name, self._client.client.post,
                              "containers", json={"type": "generic",
                                                  "name": self._container_name(name),
                                                  "secret_refs": []})
            mine = _uuid(ref["container_ref"])
            if all(_uuid(c["container_ref"]) == mine
                   for c in self._find_containers(name)):
                break
            self._write("removing a duplicate container", self._client.client.delete,
                        "containers/%s" % mine)
        else:
            raise exceptions.KeyStoreError(
                "could not create keyring %r: other creates kept racing" % name)
        self._containers[name] = mine
        key = os.urandom(crypto.KEY_SIZE)
        created = kr.now()
        seed = signing.new_seed() if sign else None
        try:
            secret = self._store_version(name, mine, 1, key, PENDING, created,
                                         seed)
            self._set_state(secret, name, 1, crypto.key_id(key), created,
                            kr.KeyState.ACTIVE.value)
        except exceptions.SealedMetaError:
            # Leave no keyring without a version behind.
            self._containers.pop(name, None)
            try:
                self._client.client.delete("containers/%s" % mine)
            except Exception:
                LOG.warning("could not remove the container of the failed"
                            " keyring %r", name)
            raise
        return self.get_keyring(name)

    def rotate(self, name):
        """Add a new version (pending, claimed, then active).

        Racing rotations (no coordination lock) are settled by the
        container: a rotation lists its new version as pending under number
        N, re-reads the container, and goes on only if it is the *sole*
        claimant of N; otherwise it withdraws and tries again later with a
        random delay. Of two claimants of N, the one that re-read first
        either saw the other (and withdrew) or was listed before the other
        listed, so the other sees it and withdraws: at most one claimant of
        N ever becomes active, and a version is never used before it has
        won. Concurrent winners of different numbers are resolved as
        everywhere else: the highest active version is the active one.
        """
        for attempt in range(_ROTATE_ATTEMPTS):
            if attempt:
                time.sleep(random.uniform(0.02, 0.05 * 2 ** min(attempt, 5)))
            ring, raw, container = self._load(name)
            self._repair(name, ring, raw)
            number = max(n for n, *_ in raw) + 1
            key = os.urandom(crypto.KEY_SIZE)
            key_id = crypto.key_id(key)
            created = kr.now()
            seed = signing.new_seed() if ring.signing else None
            secret = self._store_version(name, container, number, key, PENDING,
                                         created, seed)
            # The claim: the container alone (one request, so the window in
            # which two claimants can miss each other stays short). Any other
            # entry of this number is a rival, whatever its state.
            doc = self._read("reading keyring %r" % name, self._client.client.get,
                             "containers/%s" % container)
            if any(n == number and s != secret for n, k, c, s in self._entries(doc)):
                # Another rotation claims this number too: step back.
                self._unlist(container, _entry_name(kr.KeyVersion(
                    number, key_id, kr.KeyState.ACTIVE, created)), secret)
                self._forget_version_secret(secret)
                continue
            self._set_state(secret, name, number, key_id, created,
                            kr.KeyState.ACTIVE.value)
            # Demote only older actives: a newer active (a concurrent
            # rotation that won a higher number) wins over this one.
            ring, raw_after, _ = self._load(name)
            for n, k, c, s, st in raw_after:
                if st == kr.KeyState.ACTIVE.value and n < number:
                    self._set_state(s, name, n, k, c, kr.KeyState.DECRYPT_ONLY.value)
            return self.get_keyring(name).version(number)
        raise exceptions.KeyStoreError(
            "could not rotate keyring %r: other rotations kept racing; use a"
            " [coordination] backend" % name)

    def set_state(self, name, version, state):
        ring, raw, _ = self._load(name)
        new_ring = kr.transitioned(ring, version, state)
        target = new_ring.version(version)
        current = ring.version(version)
        secret = self._secrets[(name, version)]
        # Record the state first: if deleting fails half-way, readers already
        # refuse the version.
        self._set_state(secret, name, version, current.key_id, current.created,
                        target.state.value)
        if target.state is kr.KeyState.DESTROYED:
            # Barbican drops a deleted secret from the container: list a
            # small tombstone first, so the version stays known (number, key
            # id) and its envelopes are reported as under a destroyed key.
            tomb = self._write(
                "recording the destruction of version %d" % version,
                self._client.secrets.create(
                    name="%s:%s:v%d:destroyed" % (self._prefix, name, version),
                    payload="destroyed", payload_content_type="text/plain").store)
            tomb = _uuid(tomb)
            tomb_meta = {"keyring": name, "version": str(version),
                         "key_id": current.key_id.hex(),
                         "created": str(current.created), "state": "destroyed",
                         "tombstone": "1"}
            if current.public_key is not None:
                tomb_meta["public_key"] = current.public_key.hex()
            self._write("recording the destruction of version %d" % version,
                        self._client.secrets.set_secret_metadata, tomb,
                        tomb_meta)
            container = self._containers[name]
            self._write("recording the destruction of version %d" % version,
                        self._client.client.post, "containers/%s/secrets" % container,
                        json={"name": _entry_name(current),
                              "secret_ref": self._secret_ref(tomb)})
            try:
                self._client.secrets.remove_consumer(
                    secret, CONSUMER_SERVICE, CONSUMER_TYPE, name)
            except Exception as exc:
                if not self._is_not_found(exc):
                    raise self._error("removing the consumer of version %d" % version,
                                      exc) from None
            signing_key = self._signing.get(secret, {}).get("signing_key")
            if signing_key:
                # The private key first: once the version secret is gone,
                # nothing would name it any more.
                try:
                    self._km.delete(self._ctx, signing_key, True)
                except Exception as exc:
                    if not self._is_not_found(exc):
                        raise self._error(
                            "deleting the signing key of version %d" % version,
                            exc) from None
            self._write("deleting the secret of version %d" % version,
                        self._km.delete, self._ctx, secret, True)
        return self.get_keyring(name).version(version)

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
        container = _uuid(ref["container_ref"])
        self._containers[name] = container
        for version in ring.versions:
            if version.state is kr.KeyState.DESTROYED:
                continue  # no material to carry; see the admin guide
            secret = self._store_version(name, container, version.number,
                                         keys[version.number], PENDING, version.created,
                                         signing_keys.get(version.number))
            self._set_state(secret, name, version.number, version.key_id,
                            version.created, version.state.value)
        return self.get_keyring(name)
