"""The configured sealed backup driver, loaded for the tools that read
Cinder's backups outside the backup service (``cinder reseal``,
``mark-legacy``, ``audit``, ``key destroy --scan-cinder``): the class
``backup_driver`` names, checked to be a sealed one under a policy that
keeps what sealing cannot protect, and its instances, one per project
where the store keeps backups per project.
"""

from oslo_config import cfg

from cinder import context as cinder_context
from sealedmeta import exceptions
from sealedmeta.cinder import mixin
from sealedmeta.cinder import policy_check

CONF = cfg.CONF


def driver_class():
    """The configured ``backup_driver``, which must be a sealed driver class
    (it writes what it will read)."""
    from cinder.backup import manager  # noqa: F401 - registers backup_driver
    from oslo_utils import importutils
    name = CONF.backup_driver
    try:
        cls = importutils.import_class(name)
    except Exception as exc:  # ImportError, AttributeError, a driver's own
        raise exceptions.SetupError("cannot import backup_driver %s: %s" % (name, exc)) from None
    if not (isinstance(cls, type) and issubclass(cls, mixin.SealedMetadataMixin)):
        raise exceptions.SetupError(
            "backup_driver %s is not a sealed driver class; set backup_driver to"
            " one of sealedmeta.cinder's (e.g. sealedmeta.cinder.posix."
            "SealedPosixBackupDriver) in the configuration given: reseal writes"
            " metadata only that driver can read" % name)
    try:
        policy_check.check(CONF)
    except policy_check.PermissivePolicy as exc:
        raise exceptions.SetupError(str(exc)) from None
    return cls


def load_driver(ctxt=None, cls=None):
    """An instance of the configured sealed ``backup_driver`` (*cls*: its
    class, when :func:`driver_class` already checked it)."""
    cls = cls or driver_class()
    name = CONF.backup_driver
    ctxt = ctxt or cinder_context.get_admin_context()
    try:
        driver = cls(ctxt)
        driver.connect_as_service()
    except Exception as exc:
        raise exceptions.SetupError("cannot set up backup_driver %s: %s" % (name, exc)) from None
    return driver


def project_drivers():
    """A function ``project_id -> driver`` for tools that read every tenant's
    backups: the configured driver acting in each backup's project where the
    store keeps backups per project (Swift ``per_user``), else one driver.
    Raises :class:`~sealedmeta.exceptions.SetupError` up front when that
    cannot be set up."""
    cls = driver_class()
    try:
        per_project = cls.project_drivers()
    except exceptions.ConfigurationError as exc:
        raise exceptions.SetupError(str(exc)) from None
    if per_project is not None:
        return per_project
    # The class as checked above: checking it again would name each
    # permissive policy rule twice.
    driver = load_driver(cls=cls)
    return lambda project_id: driver
