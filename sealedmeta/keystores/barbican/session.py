"""Where this store makes its HTTP calls: the one keystoneauth session (one
token per store object: castellan's own client would authenticate again for
every call), barbicanclient and castellan over it, and what a failed call
becomes (a KeyStoreError naming the endpoint and what to check; reads
retried with backoff, writes never blindly)."""

import logging
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
from oslo_context import context as oslo_context

from sealedmeta import exceptions

LOG = logging.getLogger(__name__)

# keystoneauth logs request bodies at DEBUG; secret payloads travel in them.
# Our sessions log to this logger, which never passes records on.
_HTTP_LOG = logging.getLogger("sealedmeta.keystores.barbican.http")
_HTTP_LOG.propagate = False
_HTTP_LOG.addHandler(logging.NullHandler())
_HTTP_LOG.setLevel(logging.CRITICAL)


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


def auth_from_conf(conf, endpoint):
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


def unwrap(exc):
    """The client or keystoneauth error a castellan KeyManagerError wraps."""
    while isinstance(exc, castellan_exc.KeyManagerError) and isinstance(
            exc.__context__, Exception):
        exc = exc.__context__
    return exc


def uuid_of(ref):
    return ref.rstrip("/").rsplit("/", 1)[-1]


class Session:
    """HTTP calls to Barbican (and Keystone) and their errors: the one
    keystoneauth session of a store, the clients over it, and what a failed
    call becomes."""

    def __init__(self, conf):
        """The session, and the clients over it (built on first use)."""
        self.conf = conf
        self.retries = conf.barbican_store.read_retries
        self.endpoint = conf.barbican.barbican_endpoint
        self.auth = auth_from_conf(conf, self.endpoint)
        self.ks_session = ks_session.Session(
            auth=self.auth, timeout=conf.barbican_store.timeout,
            verify=conf.barbican.verify_ssl)
        kwargs = {"session": self.ks_session, "version": "v1",
                  "microversion": "1.1", "logger": _HTTP_LOG}
        if self.endpoint:
            kwargs["endpoint"] = self.endpoint
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
        # castellan's key manager over this session, and its context.
        self.km = _KeyManager(conf, lambda: self.client)
        self.ctx = _Context(self.auth)
        self._user_id = None      # the service user's id, once known

    @property
    def client(self):
        """The barbicanclient Client (``.client`` of it: the raw API)."""
        client = self._client_obj
        if client is not None:
            return client
        with self._client_lock:
            if self._client_obj is None:
                for attempt in range(self.retries + 1):
                    try:
                        self._client_obj = bc_client.Client(**self._client_kwargs)
                        break
                    except Exception as exc:
                        if attempt < self.retries and self.retryable(exc):
                            time.sleep(0.2 * 2 ** attempt)
                            continue
                        raise self.error("connecting", exc) from None
            return self._client_obj

    def close(self):
        self.ks_session.session.close()

    def where(self):
        return self.endpoint or "the key-manager endpoint of the catalog"

    def error(self, what, exc):
        """A KeyStoreError naming the endpoint and what to check.

        Built from the exception's type and status only: server messages and
        request bodies are never copied into it.
        """
        exc = unwrap(exc)
        where = "Barbican at %s" % self.where()
        keystone = self._from_keystone(exc)
        if keystone:
            where = "Keystone at %s (authenticating for %s)" % (keystone, where)
        status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
        if isinstance(exc, (ks_exc.ConnectTimeout, ks_exc.RequestTimeout)) or (
                isinstance(exc, ks_exc.ConnectFailure) and "timed out" in str(exc)):
            hint = ("timed out after %.1fs; is the service overloaded? see"
                    " [barbican_store] timeout" % self.conf.barbican_store.timeout)
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
        auth_url = getattr(self.auth, "auth_url", None)
        if not auth_url:
            return None
        keystone = urllib.parse.urlsplit(auth_url).netloc
        barbican = urllib.parse.urlsplit(self.endpoint or "").netloc
        if not keystone or keystone == barbican:
            return None
        url = getattr(exc, "url", None)
        if url:
            return auth_url if urllib.parse.urlsplit(url).netloc == keystone else None
        # Connection errors carry the URL only in their text; it is looked at,
        # never copied into the message.
        return auth_url if "//%s/" % keystone in str(exc) else None

    @staticmethod
    def is_not_found(exc):
        status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
        return status == 404 or isinstance(
            exc, (ks_exc.NotFound, castellan_exc.ManagedObjectNotFoundError))

    @staticmethod
    def retryable(exc):
        status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
        return isinstance(exc, (ks_exc.ConnectFailure, ks_exc.RequestTimeout,
                                bc_exc.HTTPServerError)) or (
            status is not None and status >= 500)

    def read(self, what, fn, *args, **kwargs):
        """An idempotent read, retried with backoff on connect errors / 5xx."""
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except exceptions.SealedMetaError:
                raise
            except Exception as exc:
                # castellan wraps the client's error; judge by the original.
                cause = unwrap(exc)
                if self.is_not_found(cause):
                    raise
                if attempt < self.retries and self.retryable(cause):
                    time.sleep(0.2 * 2 ** attempt)
                    continue
                raise self.error(what, exc) from None

    def write(self, what, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except exceptions.SealedMetaError:
            raise
        except Exception as exc:
            raise self.error(what, exc) from None

    def service_user(self):
        """The id of the user this store authenticates as."""
        if self._user_id is None:
            try:
                user_id = self.auth.get_user_id(self.ks_session)
            except Exception as exc:
                raise self.error("finding the service user's id", exc) from None
            if not user_id:
                raise exceptions.KeyStoreError(
                    "the barbican key store cannot tell which user it"
                    " authenticates as; check [key_manager] credentials")
            self._user_id = user_id
        return self._user_id

    def secret_ref(self, uuid):
        base_url = self.client.secrets._api.get_endpoint().rstrip("/")
        return "%s/secrets/%s" % (base_url, uuid)

    def forget_secret(self, uuid):
        """Best-effort removal of a secret that never became a version."""
        try:
            self.client.secrets.delete(self.secret_ref(uuid), force=True)
        except Exception:  # already failing; the pending secret is harmless
            LOG.warning("could not remove the unused secret %s", uuid)
