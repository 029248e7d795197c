"""Options of the sealed Swift driver: the service user that reads every
tenant's backups when Cinder keeps them in the tenants' own Swift accounts
(``backup_swift_auth = per_user``), a Keystone user holding Swift's reseller
admin role. Imports nothing from Cinder.

The user is given with keystoneauth's standard options in the group
``[sealedmeta_swift_service_user]`` (``auth_type``, ``auth_url``,
``username``, ... and the session's ``cafile``, ``timeout``, ...), loaded by
keystoneauth as Cinder loads its ``[service_user]``. The ``[sealedmeta]
swift_service_*`` options of earlier releases are deprecated: they are still
read when the group sets no ``auth_type``.
"""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

from sealedmeta import conf as sm_conf
from sealedmeta import exceptions

GROUP = "sealedmeta_swift_service_user"

#: What the service user needs at least (keystoneauth's password plugin).
SERVICE_OPTS = ("auth_type", "auth_url", "username", "password", "project_name")

_DEPRECATED = ("Give the service user with keystoneauth's options in [%s]"
               " (auth_type = password)." % GROUP)

deprecated_opts = [
    cfg.StrOpt("swift_service_auth_url", deprecated_for_removal=True,
               deprecated_reason=_DEPRECATED,
               help="Keystone v3 URL of the Swift service user: [%s] auth_url."
                    % GROUP),
    cfg.StrOpt("swift_service_username", deprecated_for_removal=True,
               deprecated_reason=_DEPRECATED,
               help="User name of that service user: [%s] username." % GROUP),
    cfg.StrOpt("swift_service_password", secret=True, deprecated_for_removal=True,
               deprecated_reason=_DEPRECATED,
               help="Password of that service user: [%s] password." % GROUP),
    cfg.StrOpt("swift_service_user_domain_name", default="Default",
               deprecated_for_removal=True, deprecated_reason=_DEPRECATED,
               help="Domain of that service user: [%s] user_domain_name." % GROUP),
    cfg.StrOpt("swift_service_project_name", deprecated_for_removal=True,
               deprecated_reason=_DEPRECATED,
               help="Project the service user's token is scoped to: [%s]"
                    " project_name." % GROUP),
    cfg.StrOpt("swift_service_project_domain_name", default="Default",
               deprecated_for_removal=True, deprecated_reason=_DEPRECATED,
               help="Domain of that project: [%s] project_domain_name." % GROUP),
]
_DEPRECATED_REQUIRED = ("swift_service_auth_url", "swift_service_username",
                        "swift_service_password", "swift_service_project_name")


def register_opts(conf):
    conf.register_opts(deprecated_opts, group=sm_conf.GROUP)
    ks_loading.register_auth_conf_options(conf, GROUP)
    ks_loading.register_session_conf_options(conf, GROUP)


def list_opts():
    # The password plugin's options, as Cinder lists its [service_user].
    return [(sm_conf.GROUP, deprecated_opts),
            (GROUP, ks_loading.get_session_conf_options()
             + ks_loading.get_auth_common_conf_options()
             + ks_loading.get_auth_plugin_conf_options("password"))]


def _unset(what):
    return exceptions.ConfigurationError(
        "backup_swift_auth = per_user keeps each backup in its project's"
        " own Swift account: set %s (a Keystone service user holding Swift's"
        " reseller admin role, e.g. ResellerAdmin) so that each project's"
        " account can be reached" % what)


def _load_auth(conf):
    """keystoneauth's ``load_auth_from_conf_options``, but for one thing:
    the plugin's options are registered as optional. Registered as
    required (keystoneauth's way), they would make every later parse of a
    configuration without them fail (a reloaded cinder.conf, a second
    command in one process); the plugin itself still refuses to load
    without them (``MissingRequiredOptions``)."""
    from keystoneauth1 import exceptions as ks_exc
    section = conf[GROUP].auth_section or GROUP
    name = conf[section].auth_type
    try:
        loader = ks_loading.get_plugin_loader(name)
        opts = []
        for opt in ks_loading.get_auth_plugin_conf_options(loader):
            opt.required = False
            opts.append(opt)
        conf.register_opts(opts, group=section)
        return loader.load_from_options_getter(lambda opt: conf[section][opt.dest])
    except ks_exc.ClientException as exc:
        raise exceptions.ConfigurationError("[%s]: %s" % (section, exc)) from None


def service_session(conf, insecure=False):
    """A keystoneauth session of the service user; *insecure*: Cinder's
    ``backup_swift_auth_insecure``. Raises
    :class:`~sealedmeta.exceptions.ConfigurationError` when the user is
    not configured."""
    group = conf[GROUP]
    if group.auth_type or group.auth_section:
        auth = _load_auth(conf)
        return ks_loading.load_session_from_conf_options(
            conf, GROUP, auth=auth, **({"insecure": True} if insecure else {}))
    old = conf[sm_conf.GROUP]
    unset = [name for name in _DEPRECATED_REQUIRED if not old[name]]
    if len(unset) == len(_DEPRECATED_REQUIRED):
        raise _unset("in [%s] %s" % (GROUP, ", ".join(SERVICE_OPTS)))
    if unset:
        raise _unset("%s in [sealedmeta] (deprecated: better, the group [%s])"
                     % (", ".join(unset), GROUP))
    from keystoneauth1.identity import v3
    from keystoneauth1 import session as ks_session
    return ks_session.Session(auth=v3.Password(
        auth_url=old.swift_service_auth_url,
        username=old.swift_service_username,
        password=old.swift_service_password,
        user_domain_name=old.swift_service_user_domain_name,
        project_name=old.swift_service_project_name,
        project_domain_name=old.swift_service_project_domain_name),
        verify=not insecure)
