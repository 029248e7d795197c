"""The Barbican key store: version keys are Barbican secrets.

Layout in Barbican (one project, dedicated to sealedmeta):

* each key version is a symmetric secret named ``PREFIX:KEYRING:vN`` (read
  through castellan); its user metadata holds the version's mutable state
  (``state``, plus ``keyring``, ``version``, ``key_id``, ``created``);
* a generic container named ``PREFIX:KEYRING`` lists the versions; each
  entry is named ``vN.KEYID.CREATED`` -- the immutable facts of the version --
  so a destroyed version (its secret deleted) is still known by number and
  key id;
* a signing keyring's version also has an Ed25519 private key, stored as
  a Barbican ``private`` secret (PKCS#8 PEM, as castellan stores it) named
  ``PREFIX:KEYRING:vN:sign``; the version secret's metadata records its
  uuid (``signing_key``) and the public key (``public_key``, hex). A
  destroyed version's tombstone keeps ``public_key``, and destroying deletes
  the private key with the version secret;
* every version secret, and every signing key, carries a consumer (service
  ``sealedmeta``, resource type ``keyring``, resource id the keyring name):
  Barbican's clients refuse to delete a secret with consumers unless forced.

A rotation stores the new secret as ``pending`` before it is listed, checks
that no racing rotation took the same number, and only then makes it active
and the previous one decrypt-only. A crash at any step leaves the previous
active version active, or (after the new one was marked active) two actives
that every reader resolves the same way: the highest number wins.

What an interrupted rotation (or destroy) leaves behind -- a pending secret
never listed, its signing key, a tombstone never listed -- is reported by
:meth:`BarbicanKeyStore.leftovers` and removed by it once it is
:data:`STALE_AGE` old (``rekey`` does so under the keyring's lock); see
there for why that cannot race with a rotation still in flight. A destroy
cut half-way is finished by running it again (:meth:`finish_destroy`).

Every secret and container is readable by the service user alone (ACL
``project-access: false`` with that user listed): Barbican then lets no
other member of the project read it, change its metadata or its entries.
Anything a keyring refers to that Barbican does not record as created by
that user (``creator_id``) is refused with
:class:`~sealedmeta.exceptions.UntrustedKeyObject`; objects of a keyring
made before ACLs were set get theirs the first time they are checked.
A version secret and a signing key are created without payload, made
private, and only then given their key, so the key is never readable by
the project.

One keystoneauth session (and so one token) per store object: castellan's own
client would authenticate again for every call.
"""

import datetime
import email.utils
import logging
import os
import random
import re
import threading
import time
import urllib.parse

from barbicanclient import client as bc_client
from barbicanclient import exceptions as bc_exc
from castellan.common import exception as castellan_exc
from castellan.common import utils as castellan_utils
from castellan.common.credentials import keystone_password
from castellan.common.credentials import keystone_token
from castellan.key_manager import barbican_key_manager
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import identity
from keystoneauth1 import plugin as ks_plugin
from keystoneauth1 import session as ks_session
from oslo_config import cfg
from oslo_context import context as oslo_context

from sealedmeta import crypto
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import names
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
# Secret metadata fields a state change keeps as they are.
_KEPT_FIELDS = ("public_key", "signing_key", "deactivated")
# The rule that keeps removing leftovers from racing with a rotation in
# flight (one that holds no lock, e.g. a library caller without a
# coordination backend): a rotation lists (claims) its new secret in the
# container, and activates it, only while less than CLAIM_WINDOW seconds
# (its own clock) have passed since it started creating it -- past that it
# withdraws. Leftovers are removed only when they are not listed in the
# container and were created at least STALE_AGE seconds ago (Barbican's
# clock: its `created` against the `Date` of its answer). A secret that old
# and still unlisted belongs to a rotation that can no longer claim it,
# unless that process stalled for more than STALE_AGE - CLAIM_WINDOW seconds
# between its last check and its next request.
CLAIM_WINDOW = 600.0
STALE_AGE = 3600.0

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
    cfg.StrOpt("noauth_user_id", default="sealedmeta",
               help="DEVELOPMENT AND TESTS ONLY: the user id sent with "
                    "noauth_project_id; Barbican records it as the creator "
                    "of what this store creates."),
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

    def __init__(self, endpoint, project_id, user_id):
        super().__init__()
        self._endpoint = endpoint
        self._project_id = project_id
        self._user_id = user_id

    def get_headers(self, session, **kwargs):
        return {"X-Project-Id": self._project_id, "X-Roles": "member",
                "X-User-Id": self._user_id}

    def get_user_id(self, session, **kwargs):
        return self._user_id

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
        return _NoAuth(endpoint, conf.barbican_store.noauth_project_id,
                       conf.barbican_store.noauth_user_id)
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
        if len(key_id) != names.KEY_ID_SIZE:
            return None
        return int(vpart[1:]), key_id, int(created)
    except (ValueError, AttributeError):
        return None


def _parse_time(text):
    """Epoch seconds from a decimal string of secret metadata; None when
    it is not one."""
    if type(text) is not str or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value <= names.MAX_TIME else None


def _unwrap(exc):
    """The client or keystoneauth error a castellan KeyManagerError wraps."""
    while isinstance(exc, castellan_exc.KeyManagerError) and isinstance(
            exc.__context__, Exception):
        exc = exc.__context__
    return exc


def _uuid(ref):
    return ref.rstrip("/").rsplit("/", 1)[-1]


def _http_date(value):
    """An HTTP Date header as an aware datetime; the local clock without
    one."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return datetime.datetime.now(datetime.timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def _iso_date(value):
    """Barbican's ``created`` (ISO 8601, UTC) as an aware datetime, or None."""
    try:
        when = datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


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
        self._tombstones = set()  # uuids of tombstone secrets, as last read
        self._user_id = None      # the service user's id, once known
        # uuids checked as created by the service user and private to it:
        # neither can change afterwards but by that user or a project admin
        self._owned = set()

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
                    " role on its project")
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

    # -- who may read and change what ---------------------------------------

    def _service_user(self):
        """The id of the user this store authenticates as."""
        if self._user_id is None:
            try:
                user_id = self._auth.get_user_id(self._session)
            except Exception as exc:
                raise self._error("finding the service user's id", exc) from None
            if not user_id:
                raise exceptions.KeyStoreError(
                    "the barbican key store cannot tell which user it"
                    " authenticates as; check [key_manager] credentials")
            self._user_id = user_id
        return self._user_id

    def _restrict(self, kind, uuid, what):
        """Make secret or container *uuid* (*kind*: "secrets" or
        "containers") readable by the service user alone: no other member
        of the project may then read it or change it."""
        self._write("restricting access to %s" % what, self._client.client.put,
                    "%s/%s/acl" % (kind, uuid),
                    json={"read": {"project-access": False,
                                   "users": [self._service_user()]}})
        self._owned.add(uuid)

    def _check_owned(self, kind, uuid, what, doc=None):
        """UntrustedKeyObject unless the service user created *uuid*; a
        keyring's object made before ACLs were set gets its ACL now.
        *doc*: the object as just read, if at hand. A 404 passes through."""
        if uuid in self._owned:
            return
        api = self._client.client

        def get(path):
            try:
                return api.get(path)
            except bc_exc.HTTPClientError as exc:
                if exc.status_code == 403:
                    return {}    # private to someone else: not ours
                raise

        if doc is None:
            doc = self._read("reading %s" % what, get, "%s/%s" % (kind, uuid))
        if doc.get("creator_id") != self._service_user():
            raise exceptions.UntrustedKeyObject(
                "%s (Barbican %s %s) was not created by the user this store"
                " authenticates as: another user of the project may have"
                " planted it; it is not used. Give sealedmeta a project of its"
                " own" % (what, kind[:-1], uuid))
        acl = self._read("reading the access list of %s" % what, api.get,
                         "%s/%s/acl" % (kind, uuid)).get("read", {})
        if acl.get("project-access") is not False or \
                self._service_user() not in acl.get("users", []):
            LOG.warning("%s was readable by the whole project; restricting it"
                        " to the service user", what)
            self._restrict(kind, uuid, what)
        self._owned.add(uuid)

    def _store_secret(self, name, secret_type, algorithm, payload, what):
        """Store a private secret: created empty, restricted, then given
        *payload*, so that no other user can read it at any moment."""
        ref = self._write(what, self._client.client.post, "secrets", json={
            "name": name, "secret_type": secret_type, "algorithm": algorithm,
            "bit_length": 256})
        uuid = _uuid(ref["secret_ref"])
        try:
            self._restrict("secrets", uuid, what)
            self._write(what, self._client.client.put, "secrets/%s" % uuid,
                        data=payload,
                        headers={"Content-Type": "application/octet-stream"})
        except exceptions.SealedMetaError:
            self._forget_secret(uuid)
            raise
        return uuid

    # -- containers -------------------------------------------------------

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
            self._check_owned("containers", _uuid(found[0]["container_ref"]),
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
        uuid = _uuid(doc["container_ref"])
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
            try:
                # Only the service user can write the metadata of its own
                # private secret: what is not its own is not believed.
                self._check_owned("secrets", secret,
                                  "version %d of keyring %r" % (number, name))
            except Exception as exc:
                if not self._is_not_found(exc):
                    raise
                meta = None
            else:
                meta = self._metadata(secret)
            if meta is None:
                # The secret is gone: a pending secret its rotation withdrew
                # (it lost a race or failed), or a destroyed version, which
                # is known by its tombstone entry (listed before the secret
                # is deleted). Either way not a version of its own.
                continue
            if meta.get("tombstone") == "1":
                state = kr.KeyState.DESTROYED.value
                self._tombstones.add(secret)
            else:
                state = meta.get("state")
                if meta.get("key_id") != key_id.hex() or meta.get("version") != str(number) \
                        or meta.get("keyring") != name:
                    LOG.warning("keyring %r: version %d's secret metadata does"
                                " not match its entry; ignoring it", name, number)
                    continue
            extra = {k: meta[k] for k in _KEPT_FIELDS if k in meta}
            if meta.get("tombstone") != "1":
                self._signing[secret] = extra
            raw.append((number, key_id, created, secret, state))
            public_keys[(number, secret)] = extra
        versions = {}
        for number, key_id, created, secret, state in raw:
            if state == PENDING:
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
            deactivated = extra.get("deactivated")
            if deactivated is not None:
                deactivated = _parse_time(deactivated)
                if deactivated is None:
                    raise exceptions.KeyStoreError(
                        "keyring %r: version %d has a malformed deactivated"
                        " time" % (name, number))
            try:
                version = kr.KeyVersion(number, key_id, kr.KeyState(state), created,
                                        public_key, deactivated)
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
                if cname.startswith(prefix) and \
                        c.get("creator_id") == self._service_user():
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
            self._check_owned("secrets", uuid, "the signing key of version %d of"
                              " keyring %r" % (version, name))
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
        return self._store_secret(
            "%s:%s:v%d:sign" % (self._prefix, name, number), "private", "ED25519",
            signing.seed_to_pem(seed),
            "storing the signing key of version %d of keyring %r" % (number, name))

    def _store_version(self, name, container, number, key, state, created,
                       seed=None, started=None):
        """Store one version secret (state as given) and list it; with
        *seed*, its signing key too. *started*: when (time.monotonic()) the
        caller began; the listing is refused past CLAIM_WINDOW from then."""
        started = time.monotonic() if started is None else started
        key_id = crypto.key_id(key)
        extra = {}
        if seed is not None:
            extra = {"public_key": signing.public_key_of(seed).hex(),
                     "signing_key": self._store_signing_key(name, number, seed)}
        try:
            secret = self._store_secret(
                "%s:%s:v%d" % (self._prefix, name, number), "symmetric", "AES", key,
                "storing version %d of keyring %r" % (number, name))
        except exceptions.SealedMetaError:
            if extra:
                self._forget_secret(extra["signing_key"])
            raise
        self._signing[secret] = extra
        try:
            self._set_state(secret, name, number, key_id, created, state)
            self._write("registering a consumer", self._client.secrets.register_consumer,
                        secret, CONSUMER_SERVICE, CONSUMER_TYPE, name)
            if extra:
                self._write("registering a consumer of the signing key",
                            self._client.secrets.register_consumer,
                            extra["signing_key"], CONSUMER_SERVICE, CONSUMER_TYPE,
                            name)
            self._check_claim_window(started, name, number)
            self._write("listing version %d in keyring %r" % (number, name),
                        self._client.client.post, "containers/%s/secrets" % container,
                        json={"name": _entry_name(kr.KeyVersion(number, key_id,
                                                                kr.KeyState.ACTIVE, created)),
                              "secret_ref": self._secret_ref(secret)})
        except exceptions.SealedMetaError:
            self._forget_version_secret(secret)
            raise
        return secret

    def _check_claim_window(self, started, name, number):
        """KeyStoreError once CLAIM_WINDOW has passed since *started*."""
        elapsed = time.monotonic() - started
        if elapsed > CLAIM_WINDOW:
            raise exceptions.KeyStoreError(
                "version %d of keyring %r was withdrawn: %.0fs after its secret"
                " was created it was still not active (at most %gs are allowed,"
                " so that removing stale secrets never races with it); nothing"
                " changed" % (number, name, elapsed, CLAIM_WINDOW))

    def _forget_version_secret(self, secret):
        """_forget_secret of a version secret and of its signing key."""
        uuid = self._signing.pop(secret, {}).get("signing_key")
        self._forget_secret(secret)
        if uuid:
            self._forget_secret(uuid)

    def _secret_ref(self, uuid):
        base_url = self._client.secrets._api.get_endpoint().rstrip("/")
        return "%s/secrets/%s" % (base_url, uuid)

    def _set_state(self, secret, name, number, key_id, created, state,
                   deactivated=None):
        # The metadata is replaced as a whole: keep the signing key's fields.
        extra = self._signing.get(secret)
        if extra is None:
            meta = self._metadata(secret) or {}
            extra = self._signing[secret] = {
                k: meta[k] for k in _KEPT_FIELDS if k in meta}
        meta = {"keyring": name, "version": str(number), "key_id": key_id.hex(),
                "created": str(created), "state": state}
        if deactivated is not None:
            # When the version stopped being active (see keyring.py): kept
            # with the other fields by every later state change.
            extra["deactivated"] = str(deactivated)
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
                                version.state.value, deactivated=kr.now())

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
        names.check_keyring_name(name)
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
            try:
                self._restrict("containers", mine,
                               "the container of keyring %r" % name)
            except exceptions.SealedMetaError:
                self._remove_failed_container(name, mine)
                raise
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
            self._remove_failed_container(name, mine)
            raise
        return self.get_keyring(name)

    def _remove_failed_container(self, name, container):
        """Best effort: no keyring container without a version is left."""
        try:
            self._client.client.delete("containers/%s" % container)
        except Exception:
            LOG.warning("could not remove the container of the failed"
                        " keyring %r", name)

    def rotate(self, name, signing=False):
        return self._rotate(name, signing)

    def _rotate(self, name, sign):
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
            seed = (signing.new_seed() if ring.signing or sign
                    else None)
            started = time.monotonic()
            secret = self._store_version(name, container, number, key, PENDING,
                                         created, seed, started)
            # The claim: the container alone (one request, so the window in
            # which two claimants can miss each other stays short). Any other
            # entry of this number is a rival, whatever its state.
            doc = self._read("reading keyring %r" % name, self._client.client.get,
                             "containers/%s" % container)
            rival = any(n == number and s != secret
                        for n, k, c, s in self._entries(doc))
            late = None
            if not rival:
                try:
                    self._check_claim_window(started, name, number)
                except exceptions.KeyStoreError as exc:
                    late = exc
            if rival or late:
                # Another rotation claims this number too, or this one is
                # too late to activate (see CLAIM_WINDOW): step back.
                self._unlist(container, _entry_name(kr.KeyVersion(
                    number, key_id, kr.KeyState.ACTIVE, created)), secret)
                self._forget_version_secret(secret)
                if late:
                    raise late
                continue
            self._set_state(secret, name, number, key_id, created,
                            kr.KeyState.ACTIVE.value)
            # Demote only older actives: a newer active (a concurrent
            # rotation that won a higher number) wins over this one.
            ring, raw_after, _ = self._load(name)
            for n, k, c, s, st in raw_after:
                if st == kr.KeyState.ACTIVE.value and n < number:
                    self._set_state(s, name, n, k, c, kr.KeyState.DECRYPT_ONLY.value,
                                    deactivated=kr.now())
            return self.get_keyring(name).version(number)
        raise exceptions.KeyStoreError(
            "could not rotate keyring %r: other rotations kept racing; use a"
            " [coordination] backend" % name)

    def set_state(self, name, version, state):
        ring, raw, _ = self._load(name)
        new_ring = kr.transitioned(ring, version, state)
        target = new_ring.version(version)
        current = ring.version(version)
        if target.state is kr.KeyState.DESTROYED:
            self._destroy(name, current, raw)
        else:
            self._set_state(self._secrets[(name, version)], name, version,
                            current.key_id, current.created, target.state.value)
        return self.get_keyring(name).version(version)

    def finish_destroy(self, name, version):
        ring, raw, _ = self._load(name)
        current = ring.version(version)
        if current is None or current.state is not kr.KeyState.DESTROYED:
            raise exceptions.InvalidTransition(
                "version %r of keyring %r is not destroyed" % (version, name))
        left = self._destroy(name, current, raw)
        return self.get_keyring(name).version(version), left

    def _destroy(self, name, current, raw):
        """Destroy version *current*: retired, or already destroyed by a
        destroy that was cut half-way. Each step is skipped when it is done
        (or repeats harmlessly), so running this again after a failure at
        any point finishes the job:

        1. the version secret records ``destroyed``: from then on readers
           refuse the version whatever happens next;
        2. a tombstone is listed: Barbican drops a deleted secret from the
           container, and the tombstone keeps the version known (number,
           key id, public key), so envelopes under it are reported as under
           a destroyed key;
        3. the signing key, then the version secret, are deleted, each with
           its consumer (the private key first: once the version secret is
           gone, nothing would name it).

        Returns True if anything was left to do.
        """
        number = current.number
        entries = [(s, st) for n, _k, _c, s, st in raw if n == number]
        material = [(s, st) for s, st in entries if s not in self._tombstones]
        for secret, stored in material:
            if stored != kr.KeyState.DESTROYED.value:
                self._set_state(secret, name, number, current.key_id,
                                current.created, kr.KeyState.DESTROYED.value)
        tombstone_listed = any(s in self._tombstones for s, _ in entries)
        if not tombstone_listed:
            self._list_tombstone(name, current)
        for secret, _ in material:
            signing_key = self._signing.get(secret, {}).get("signing_key")
            if signing_key:
                self._delete_secret(signing_key, name,
                                    "the signing key of version %d" % number)
            self._delete_secret(secret, name, "the secret of version %d" % number)
            self._signing.pop(secret, None)
        return bool(material) or not tombstone_listed

    def _list_tombstone(self, name, current):
        version = current.number
        what = "recording the destruction of version %d" % version
        tomb = self._write(what, self._client.secrets.create(
            name="%s:%s:v%d:destroyed" % (self._prefix, name, version),
            payload="destroyed", payload_content_type="text/plain").store)
        tomb = _uuid(tomb)
        self._restrict("secrets", tomb, what)
        tomb_meta = {"keyring": name, "version": str(version),
                     "key_id": current.key_id.hex(),
                     "created": str(current.created), "state": "destroyed",
                     "tombstone": "1"}
        if current.public_key is not None:
            tomb_meta["public_key"] = current.public_key.hex()
        if current.deactivated is not None:
            tomb_meta["deactivated"] = str(current.deactivated)
        self._write(what, self._client.secrets.set_secret_metadata, tomb, tomb_meta)
        self._write(what, self._client.client.post,
                    "containers/%s/secrets" % self._containers[name],
                    json={"name": _entry_name(current),
                          "secret_ref": self._secret_ref(tomb)})
        self._tombstones.add(tomb)

    def _delete_secret(self, uuid, name, what):
        """Delete secret *uuid* of keyring *name*, its consumer first. A
        consumer or secret already gone counts as removed, so this can be
        repeated. True if the secret was still there."""
        try:
            self._client.secrets.remove_consumer(uuid, CONSUMER_SERVICE,
                                                 CONSUMER_TYPE, name)
        except Exception as exc:
            if not self._is_not_found(exc):
                raise self._error("removing the consumer of %s" % what,
                                  exc) from None
        try:
            self._km.delete(self._ctx, uuid, True)
        except Exception as exc:
            if self._is_not_found(_unwrap(exc)):
                return False
            raise self._error("deleting %s" % what, exc) from None
        return True

    # -- what interrupted changes leave behind -----------------------------

    def leftovers(self, name, remove=False, min_age=None):
        """Secrets of keyring *name* that no version uses, as
        :class:`~sealedmeta.keystores.base.Leftover` records.

        Reported: pending version secrets and signing keys a rotation
        created but never listed (it was killed, or lost a race and could
        not clean up), tombstones a destroy never listed, pending versions
        that *are* listed (a rotation cut after claiming), and the material
        of a version whose destroy was cut half-way.

        With *remove*, those neither listed in the container nor named by a
        listed version, and at least *min_age* (default STALE_AGE) seconds
        old, are deleted. Nothing the container lists is ever deleted, nor
        anything unlisted that is not pending (it may be a version someone
        took out of the container by hand). The age is what makes this safe
        against a rotation in flight that holds no lock: see CLAIM_WINDOW.
        """
        min_age = STALE_AGE if min_age is None else min_age
        ring, raw, container = self._load(name)
        listed = {s for _n, _k, _c, s, _st in raw}
        found, now = self._named_secrets(name, listed)
        info = {f[0]: f for f in found}   # uuid -> (uuid, name, number, kind, created)
        keep = set(listed)                # never removed
        keep.update(self._signing.get(s, {}).get("signing_key") for s in listed)
        report = []
        removable = []
        named = {}    # signing key uuid -> why it is kept with its version

        def age(uuid):
            created = info.get(uuid, (None,) * 5)[4]
            # Date has whole seconds: never below 0.
            return None if created is None else max(
                0.0, (now - created).total_seconds())

        def add(uuid, kind, number, action):
            report.append(base.Leftover(uuid, info.get(uuid, (None,) * 5)[1],
                                        kind, number, age(uuid), action))

        def stale(uuid, kind, number):
            seconds = age(uuid)
            if seconds is None or seconds < min_age:
                add(uuid, kind, number, "kept: younger than %gs (a rotation in"
                    " flight may still claim it)" % min_age)
                return False
            removable.append((uuid, kind, number))
            return True

        # Listed: reported, never removed.
        for number, _k, _c, secret, state in raw:
            version = ring.version(number)
            if state == PENDING:
                add(secret, "pending version", number,
                    "kept: listed in the keyring (a rotation cut after"
                    " claiming it)")
            elif (secret not in self._tombstones and version is not None
                  and version.state is kr.KeyState.DESTROYED):
                unfinished = ("kept: version %d is destroyed; destroy it again"
                              " to finish" % number)
                add(secret, "destroyed version's secret", number, unfinished)
                signing_key = self._signing.get(secret, {}).get("signing_key")
                if signing_key:
                    add(signing_key, "destroyed version's signing key", number,
                        unfinished)
        # Unlisted version secrets: only pending ones (or ones a rotation
        # never got to label) may go; their metadata names their signing key.
        for uuid, _name, number, kind, _created in found:
            if kind != "pending version" or uuid in keep:
                continue
            meta = self._metadata(uuid)
            if meta is None:
                continue   # deleted meanwhile
            state = meta.get("state")
            if state not in (None, PENDING):
                add(uuid, "unlisted version", number,
                    "kept: %s, not pending, and not listed in the keyring:"
                    " check it by hand" % state)
                keep.add(uuid)
            elif stale(uuid, kind, number):
                continue
            if meta.get("signing_key"):
                named[meta["signing_key"]] = (
                    "kept: named by the kept version secret %s" % uuid)
        # Signing keys no kept version names, and unlisted tombstones.
        for uuid, _name, number, kind, _created in found:
            if kind == "pending version" or uuid in keep:
                continue
            if uuid in named:
                add(uuid, kind, number, named[uuid])
            else:
                stale(uuid, kind, number)
        # Signing keys first (a version secret names its signing key).
        removable.sort(key=lambda r: r[1] != "signing key")
        if removable and remove:
            # Read the container once more: anything listed since is kept.
            doc = self._read("reading keyring %r" % name, self._client.client.get,
                             "containers/%s" % container)
            now_listed = {entry[-1] for entry in self._entries(doc)}
            for uuid, kind, number in removable:
                if uuid in now_listed:
                    add(uuid, kind, number, "kept: listed in the keyring")
                    continue
                self._delete_secret(uuid, name, "the leftover %s %s" % (kind, uuid))
                add(uuid, kind, number, "removed")
        else:
            for uuid, kind, number in removable:
                add(uuid, kind, number, "removable")
        return sorted(report, key=lambda r: (r.version, r.name or "", r.ref))

    def _named_secrets(self, name, listed):
        """([(uuid, secret name, version number, kind, created)], Barbican's
        time now) for the secrets named like this store names those of
        keyring *name*; kind: "pending version" (``:vN``), "signing key"
        (``:vN:sign``) or "tombstone" (``:vN:destroyed``)."""
        own = re.compile(r"%s:%s:v([0-9]+)(:sign|:destroyed)?\Z" % (
            re.escape(self._prefix), re.escape(name)))
        kinds = {None: "pending version", ":sign": "signing key",
                 ":destroyed": "tombstone"}
        # Barbican selects names "similar to" the filter (SQL LIKE); should
        # one not, every secret of the project is looked at instead.
        for params in ({"name": "%s:%s:v%%" % (self._prefix, name)}, {}):
            found, now, offset = [], None, 0
            while True:
                answer = self._read("listing the secrets of keyring %r" % name,
                                    self._client.client.request, "secrets", "GET",
                                    params=dict(params, limit=100, offset=offset),
                                    headers={"Accept": "application/json"})
                if now is None:
                    now = _http_date(answer.headers.get("Date"))
                page = answer.json()
                items = page.get("secrets", [])
                for item in items:
                    match = own.match(item.get("name") or "")
                    # another user's secret is never ours to remove
                    if match and item.get("secret_ref") and \
                            item.get("creator_id") == self._service_user():
                        found.append((_uuid(item["secret_ref"]), item["name"],
                                      int(match.group(1)), kinds[match.group(2)],
                                      _iso_date(item.get("created"))))
                offset += len(items)
                if not items or offset >= page.get("total", 0):
                    break
            if not listed or listed & {f[0] for f in found}:
                break
        return found, now

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
                                         keys[version.number], PENDING, version.created,
                                         signing_keys.get(version.number))
            self._set_state(secret, name, version.number, version.key_id,
                            version.created, version.state.value,
                            deactivated=version.deactivated)
        return self.get_keyring(name)
