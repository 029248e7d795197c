"""sealedmeta's events on the message bus (oslo.messaging notifications).

What is sent, and when, is documented in docs/source/events.rst. Payloads
carry names, ids, version numbers, classes and counts: never key material,
never a metadata value, never a reason text a tenant could have written.

Off unless a transport and a notification driver are configured (see
:func:`settings`); then nothing is imported, connected or logged. A send
that fails is logged by oslo.messaging and never fails the operation that
caused it: the key change or the refusal has happened either way.
"""

import atexit
import dataclasses
import getpass
import logging
import socket
import sys
import threading
import uuid

from oslo_config import cfg

from sealedmeta import exceptions

LOG = logging.getLogger(__name__)

GROUP = "sealedmeta_notifications"
OSLO_GROUP = "oslo_messaging_notifications"

BASIC = "basic"
CADF = "cadf"

# Event types (docs/source/events.rst).
KEY_ROTATED = "sealedmeta.key.rotated"
KEY_RETIRED = "sealedmeta.key.retired"
KEY_REINSTATED = "sealedmeta.key.reinstated"
KEY_DESTROY_SCHEDULED = "sealedmeta.key.destroy_scheduled"
KEY_DESTROYED = "sealedmeta.key.destroyed"
RESTORE_REFUSED = "sealedmeta.restore.refused"
SEAL_FAILED = "sealedmeta.seal.failed"
AUDIT_END = "sealedmeta.audit.end"

KEY_EVENTS = (KEY_ROTATED, KEY_RETIRED, KEY_REINSTATED, KEY_DESTROY_SCHEDULED,
              KEY_DESTROYED)
EVENT_TYPES = KEY_EVENTS + (RESTORE_REFUSED, SEAL_FAILED, AUDIT_END)

# Restore outcomes of RESTORE_REFUSED.
REFUSED = "refused"     # on_invalid = fail (or legacy_backups = reject)
DROPPED = "dropped"     # on_invalid = drop: data restored, metadata not

DRIVERS = [("messagingv2", "the message bus, in the message format of"
                            " OpenStack's services"),
           ("messaging", "the message bus, in the older format"),
           ("noop", "nothing is sent")]

opts = [
    cfg.StrOpt("transport_url", secret=True,
               help="oslo.messaging transport URL of the message bus that"
                    " sealedmeta's events go to, e.g."
                    " rabbit://USER:PASS@HOST:5672/VHOST. Unset: in a process"
                    " running Cinder's code (its backup service, 'sealedmeta"
                    " cinder ...' with cinder.conf) the transport of that"
                    " configuration's notifications ([oslo_messaging_"
                    "notifications] transport_url, else [DEFAULT]"
                    " transport_url); elsewhere none, and no event is sent."),
    cfg.StrOpt("driver", choices=DRIVERS,
               help="Notification driver. Unset:"
                    " [oslo_messaging_notifications] driver where Cinder's"
                    " configuration is loaded (so sealedmeta's events follow"
                    " Cinder's own), else messagingv2 when transport_url is"
                    " set here, else nothing is sent."),
    cfg.ListOpt("topics",
                help="Topics the events are sent on. Unset:"
                     " [oslo_messaging_notifications] topics where Cinder's"
                     " configuration is loaded, else 'notifications'."),
    cfg.StrOpt("notification_format", default=BASIC,
               choices=[(BASIC, "each event's own payload"),
                        (CADF, "key lifecycle events as CADF events (pycadf),"
                               " as Keystone sends its audit events; the"
                               " other events keep their own payload")],
               help="Payload format of the key lifecycle events."),
    cfg.IntOpt("retry", default=2, min=-1,
               help="Times a send is tried again when the bus cannot be"
                    " reached (-1: forever). The command or restore that"
                    " caused the event waits for these tries: keep it small."),
]


def register_opts(conf):
    conf.register_opts(opts, group=GROUP)


def list_opts():
    return [(GROUP, opts)]


@dataclasses.dataclass(frozen=True)
class Settings:
    transport_url: str
    drivers: tuple
    topics: tuple
    notification_format: str
    retry: int


def _process_notifications(conf):
    """The ``[oslo_messaging_notifications]`` group of *conf* when the
    process runs oslo.messaging (Cinder's code has imported it), else None.

    Never imports oslo.messaging: where it is not loaded yet, sealedmeta's
    own options alone decide, and a process without events pays nothing.
    """
    if "oslo_messaging" not in sys.modules:
        return None
    try:
        conf.transport_url   # noqa: B018 - registered where Cinder runs
        return conf[OSLO_GROUP]
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        pass
    from oslo_messaging.opts import list_opts as oslo_opts
    # The same options oslo.messaging registers when it builds a transport
    # (equal copies: registering them again is no conflict).
    for group, group_opts in oslo_opts():
        if group in (None, OSLO_GROUP):
            conf.register_opts(group_opts, group=group)
    return conf[OSLO_GROUP]


def settings(conf):
    """The :class:`Settings` of *conf*, or None when no event is sent."""
    own = conf[GROUP]
    oslo = _process_notifications(conf)
    url = own.transport_url
    drivers = [own.driver] if own.driver else []
    topics = list(own.topics or [])
    if oslo is not None:
        url = url or oslo.transport_url or conf.transport_url
        drivers = drivers or list(oslo.driver)
        topics = topics or list(oslo.topics)
    if not drivers and own.transport_url:
        drivers = ["messagingv2"]
    drivers = [d for d in drivers if d != "noop"]
    if not url or not drivers:
        return None
    return Settings(url, tuple(drivers), tuple(topics or ["notifications"]),
                    own.notification_format, own.retry)


def host_name(conf):
    """``[DEFAULT] host`` where the configuration has one (Cinder's), else
    the machine's name."""
    try:
        host = conf.host
    except cfg.NoSuchOptError:
        host = None
    return host or socket.gethostname()


class Events:
    """Sends sealedmeta's events; without a notifier every call does nothing.

    Build with :meth:`from_config` (or :func:`get` for the process's shared
    one). Methods take only what a payload may carry.
    """

    def __init__(self, notifier=None, host=None, notification_format=BASIC,
                 transport=None):
        self._notifier = notifier
        self._transport = transport
        self.host = host or socket.gethostname()
        self.notification_format = notification_format

    @property
    def enabled(self):
        return self._notifier is not None

    @property
    def publisher_id(self):
        return "sealedmeta.%s" % self.host

    @classmethod
    def from_config(cls, conf):
        found = settings(conf)
        if found is None:
            return cls(host=host_name(conf))
        oslo_messaging = _import("oslo_messaging", "oslo.messaging")
        if found.notification_format == CADF:
            _import("pycadf", "pycadf")   # before the change, not after
        try:
            transport = oslo_messaging.get_notification_transport(
                conf, url=found.transport_url)
        except oslo_messaging.MessagingException as exc:
            # Not the exception's text: it may quote the URL, password and
            # all. Refused before the change the event would announce.
            raise exceptions.ConfigurationError(
                "cannot use the notification transport of"
                " [sealedmeta_notifications] transport_url (or of Cinder's"
                " notification settings): %s; check the URL's scheme (e.g."
                " rabbit://)" % type(exc).__name__) from None
        host = host_name(conf)
        # Notifier takes one driver name; several can only come from
        # [oslo_messaging_notifications] driver, which it reads itself.
        notifier = oslo_messaging.Notifier(
            transport, publisher_id="sealedmeta.%s" % host,
            driver=found.drivers[0] if len(found.drivers) == 1 else None,
            topics=list(found.topics), retry=found.retry)
        events = cls(notifier, host, found.notification_format, transport)
        atexit.register(events.close)
        return events

    def close(self):
        """Release the transport's connections (idempotent)."""
        transport, self._transport = self._transport, None
        self._notifier = None
        if transport is not None:
            try:
                transport.cleanup()
            except Exception as exc:  # closing is best effort
                LOG.debug("closing the notification transport: %s", exc)

    # -- sending --------------------------------------------------------------

    def _send(self, priority, event_type, payload):
        notifier = self._notifier
        if notifier is None:
            return
        # A failed send must not fail what already happened. oslo.messaging
        # swallows it, logging each retry and then the whole message with a
        # traceback: those records of this thread are replaced by one line.
        with _SendFailures() as failures:
            try:
                getattr(notifier, priority)({}, event_type, payload)
            except Exception as exc:
                failures.seen.append("%s: %s" % (type(exc).__name__, exc))
        if failures.seen:
            LOG.warning("could not send event %s to the message bus (%s)",
                        event_type, failures.seen[-1])

    def _key_event(self, event_type, payload, action, outcome="success"):
        if self.notification_format == CADF:
            payload = cadf_payload(self, event_type, payload, action, outcome)
        self._send("info", event_type, payload)

    # -- key lifecycle ----------------------------------------------------------

    def key_rotated(self, keyring, version, previous):
        """``rekey``: *version* (KeyVersion) active; *previous*, the
        version that was active, is now decrypt-only."""
        payload = version_payload(keyring, version)
        payload["previous_version"] = previous.number
        self._key_event(KEY_ROTATED, payload, "create")

    def key_retired(self, keyring, version):
        self._key_event(KEY_RETIRED, version_payload(keyring, version),
                        "disable")

    def key_reinstated(self, keyring, version):
        self._key_event(KEY_REINSTATED, version_payload(keyring, version),
                        "enable")

    def key_destroy_scheduled(self, keyring, version, due):
        """A version put into pending destruction, destroyed at *due*
        (epoch seconds) unless reinstated first."""
        payload = version_payload(keyring, version)
        payload["destroy_after"] = iso(due)
        self._key_event(KEY_DESTROY_SCHEDULED, payload, "delete", "pending")

    def key_destroyed(self, keyring, version, scanned=None, in_use=0,
                      forced=False):
        payload = version_payload(keyring, version)
        payload.update(scanned_envelopes=scanned, envelopes_under_version=in_use,
                       forced=bool(forced))
        self._key_event(KEY_DESTROYED, payload, "delete")

    # -- backups ----------------------------------------------------------------

    def restore_refused(self, backup_id, project_id, volume_id, reason_class,
                        error=None, outcome=REFUSED):
        """A restore whose metadata was not trusted: refused, or (*outcome*
        DROPPED) restored without it. *reason_class*: one of the audit's
        classes; *error*: the library's exception class name, if any."""
        self._send("warn", RESTORE_REFUSED, {
            "backup_id": backup_id, "project_id": project_id,
            "volume_id": volume_id, "reason_class": reason_class,
            "error": error, "outcome": outcome})

    def seal_failed(self, backup_id, project_id, volume_id, keyring, error):
        self._send("error", SEAL_FAILED, {
            "backup_id": backup_id, "project_id": project_id,
            "volume_id": volume_id, "keyring": keyring, "error": error})

    def audit_finished(self, classes, key_versions, projects, started, ended,
                       errors=0, selection=None):
        """``cinder audit``: counts per class and per key version, the
        number of projects, start and end (epoch seconds)."""
        self._send("info", AUDIT_END, {
            "total": sum(classes.values()), "classes": dict(classes),
            "key_versions": {str(k): v for k, v in key_versions.items()},
            "projects": projects, "errors": errors,
            "started_at": iso(started), "ended_at": iso(ended),
            "duration_seconds": round(ended - started, 3),
            "selection": dict(selection or {})})


class _SendFailures(logging.Filter):
    """While in use, drops the error records oslo.messaging's notifier and
    rabbit driver log in this thread, keeping the last cause."""

    LOGGERS = ("oslo_messaging.notify.messaging",
               "oslo.messaging._drivers.impl_rabbit")

    def __init__(self):
        super().__init__()
        self.thread = threading.get_ident()
        self.seen = []

    def filter(self, record):
        if record.thread != self.thread or record.levelno < logging.ERROR:
            return True
        cause = record.exc_info[1] if record.exc_info else None
        if cause is not None:
            self.seen.append("%s: %s" % (type(cause).__name__, cause))
        return False

    def __enter__(self):
        for name in self.LOGGERS:
            logging.getLogger(name).addFilter(self)
        return self

    def __exit__(self, *exc):
        for name in self.LOGGERS:
            logging.getLogger(name).removeFilter(self)


def _import(module, package):
    """*module*, which events need once configured; a clear error where it
    is not installed (an optional dependency: the 'events' extra)."""
    import importlib
    import warnings
    try:
        with warnings.catch_warnings():
            # eventlet and its DNS library warn about their own deprecations
            # as oslo.messaging imports them.
            warnings.simplefilter("ignore")
            return importlib.import_module(module)
    except ImportError:
        raise exceptions.ConfigurationError(
            "events are configured ([sealedmeta_notifications]) but %s is not"
            " installed (in a clone of sealedmeta: pip install '.[events]')"
            % package) from None


def iso(ts):
    import datetime
    return datetime.datetime.fromtimestamp(
        ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def version_payload(keyring, version):
    """What a key lifecycle event says of *version* (a KeyVersion): public
    facts only (the key id is in every envelope's clear header)."""
    payload = {"keyring": keyring, "version": version.number,
               "key_id": version.key_id.hex(), "state": str(version.state),
               "created_at": iso(version.created)}
    if version.deactivated is not None:
        payload["deactivated_at"] = iso(version.deactivated)
    return payload


def cadf_payload(events, event_type, payload, action, outcome):
    """*payload* as a CADF event (pycadf), as Keystone sends its audit
    events: the key version is the target, the operator's account on this
    host the initiator, this service the observer; the basic payload rides
    along as an attachment."""
    _import("pycadf", "pycadf")
    from pycadf import attachment
    from pycadf import cadftaxonomy as taxonomy
    from pycadf import event as cadf_event
    from pycadf import host as cadf_host
    from pycadf import resource

    def ident(*parts):
        return str(uuid.uuid5(uuid.NAMESPACE_URL,
                              "sealedmeta:" + "/".join(str(p) for p in parts)))

    user = _user()
    initiator = resource.Resource(
        typeURI=taxonomy.ACCOUNT_USER, id=ident("user", events.host, user),
        name=user, host=cadf_host.Host(address=events.host))
    target = resource.Resource(
        typeURI=taxonomy.SECURITY_KEY,
        id=str(uuid.UUID(hex=payload["key_id"])),
        name="keyring %s version %d" % (payload["keyring"], payload["version"]))
    observer = resource.Resource(
        typeURI=taxonomy.SERVICE_SECURITY, id=ident("service", events.host),
        name=events.publisher_id)
    event = cadf_event.Event(
        eventType="activity", action=action, outcome=outcome,
        initiator=initiator, target=target, observer=observer,
        name=event_type)
    event.add_attachment(attachment.Attachment(
        typeURI="mime:application/json", content=payload, name="sealedmeta"))
    return event.as_dict()


def _user():
    try:
        return getpass.getuser()
    except Exception:  # no name for this uid (containers)
        import os
        return "uid-%d" % os.geteuid()


_lock = threading.Lock()
_shared = {}


def get(conf):
    """The process's :class:`Events` for *conf* (built once per set of
    settings, so a Cinder service keeps one transport)."""
    key = (id(conf), settings(conf), host_name(conf))
    events = _shared.get(key)
    if events is None:
        with _lock:
            events = _shared.get(key)
            if events is None:
                events = _shared[key] = Events.from_config(conf)
    return events


def for_service(conf):
    """:func:`get` for a service's backups and restores, which must not
    fail because of their events: a sender that cannot be built is logged
    and none is used."""
    try:
        return get(conf)
    except Exception as exc:
        LOG.error("sealedmeta's events are off: %s", exc if isinstance(
            exc, exceptions.SealedMetaError) else type(exc).__name__)
        return Events(host=host_name(conf))


def close_all():
    """Close and forget the processes' shared :class:`Events` (tests; a
    reloaded configuration)."""
    with _lock:
        shared = list(_shared.values())
        _shared.clear()
    for events in shared:
        events.close()
