"""What Cinder's policy lets a tenant change that sealing cannot protect.

Sealing authenticates what the backup service wrote. But a restore applies
a volume's Glance image metadata and bootable flag as the *volume* had them
when it was backed up, and Cinder's API lets a project member set both on
their own volume under Cinder's default policy: a member who sets
``billing_code_licence`` through the API, backs the volume up and restores
it gets that value back, authentic. So the sealed drivers (at start, in
``check_for_setup_error``) and ``sealedmeta cinder reseal`` ask Cinder's
effective policy -- oslo.policy with Cinder's registered rules, the
deployment's policy file and ``[oslo_policy]`` settings -- whether a
project member or reader may use each rule of :data:`RULES`, and log an
error naming each one that lets them; ``[sealedmeta]
refuse_permissive_policy`` turns that into a refusal to start.
"""

from oslo_log import log as logging
from oslo_policy import policy as oslo_policy

from cinder import context as cinder_context
from cinder import policy as cinder_policy
from sealedmeta import exceptions

LOG = logging.getLogger(__name__)

#: Cinder policy rules that let their holder change what a restore makes
#: authentic, with what they allow.
RULES = {
    "volume_extension:volume_image_metadata:set":
        "set a volume's Glance image metadata (os-set_image_metadata)",
    "volume_extension:volume_image_metadata:remove":
        "remove a volume's Glance image metadata (os-unset_image_metadata)",
    "volume:update":
        "set a volume's bootable flag (os-set_bootable)",
    "volume_extension:volume_manage":
        "bring a storage volume under Cinder marked bootable (manage)",
    "backup:backup-import":
        "import a backup record, which says which driver made the backup"
        " and so whether its metadata must be sealed",
    "backup:update":
        "write a backup's metadata (API microversion 3.43), where earlier"
        " sealedmeta releases kept an imported backup's legacy claim: a"
        " backup host still running one restores as legacy a backup whose"
        " claim and old plain object the member puts back",
}

#: The non-admin callers asked about (roles of a project-scoped token),
#: least privileged first.
PERSONAS = (
    ("a project reader", ["reader"]),
    ("a project member", ["member", "reader"]),
)

_PROJECT = "00000000000040008000000000000001"
_USER = "00000000000040008000000000000002"


class PermissivePolicy(exceptions.SealedMetaError):
    """Cinder's policy lets a non-admin change what sealing cannot protect."""


def _enforcer(conf):
    enforcer = oslo_policy.Enforcer(conf, use_conf=True)
    cinder_policy.register_rules(enforcer)
    enforcer.load_rules()
    return enforcer


def permissive_rules(conf):
    """``[(rule, persona)]``: each rule of :data:`RULES` that Cinder's
    effective policy (*conf*: Cinder's configuration, its policy file
    included) grants a non-admin of :data:`PERSONAS` on their own volume,
    with the least privileged persona it is granted to."""
    enforcer = _enforcer(conf)
    target = {"project_id": _PROJECT, "user_id": _USER}
    found = []
    for rule in RULES:
        for persona, roles in PERSONAS:
            ctxt = cinder_context.RequestContext(
                user_id=_USER, project_id=_PROJECT, roles=roles,
                is_admin=False)
            try:
                allowed = enforcer.enforce(rule, target, ctxt)
            except oslo_policy.InvalidScope:
                allowed = False
            if allowed:
                found.append((rule, persona))
                break
    return found


def check(conf, refuse=None):
    """Log an error per permissive rule; raise :class:`PermissivePolicy`
    naming them when *refuse* (default ``[sealedmeta]
    refuse_permissive_policy``). Returns the ``[(rule, persona)]`` found."""
    found = permissive_rules(conf)
    for rule, persona in found:
        LOG.error(
            "Cinder policy rule %(rule)s lets %(persona)s %(what)s: sealed"
            " backups cannot protect what the API lets a tenant change, and"
            " a restore makes it authentic. Set \"%(rule)s\":"
            " \"rule:admin_api\" in Cinder's policy file.",
            {"rule": rule, "persona": persona, "what": RULES[rule]})
    if refuse is None:
        refuse = conf.sealedmeta.refuse_permissive_policy
    if found and refuse:
        raise PermissivePolicy(
            "Cinder's policy lets non-admins change Glance image metadata or"
            " bootable through rules %s; [sealedmeta] refuse_permissive_policy"
            " is set" % ", ".join(rule for rule, _ in found))
    return found
