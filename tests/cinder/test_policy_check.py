"""Cinder's policy decides what sealing cannot protect: a project member who
may set a volume's Glance image metadata or bootable flag through Cinder's
API gets it back authentic from a sealed backup. The attack runs through
Cinder's own API controllers and policy enforcement; the check runs
oslo.policy over Cinder's registered rules and the policy file."""

import logging

import pytest
from oslo_config import cfg

from cinder.api.contrib import volume_actions
from cinder.api.contrib import volume_image_metadata
from cinder.api.openstack import api_version_request as api_version
from cinder.api.openstack import wsgi
from cinder import context as cinder_context
from cinder import exception
from cinder import objects
from cinder import policy as cinder_policy
from sealedmeta import exceptions
from sealedmeta.cinder import drivers
from sealedmeta.cinder import policy_check

from tests.cinder import helpers
from tests.cinder import test_records

CONF = cfg.CONF

IMAGE_SET = "volume_extension:volume_image_metadata:set"
IMAGE_REMOVE = "volume_extension:volume_image_metadata:remove"
UPDATE = "volume:update"
BACKUP_UPDATE = "backup:update"

RESTRICTED = "".join('"%s": "rule:admin_api"\n' % rule for rule in policy_check.RULES)


@pytest.fixture
def policy_file(tmp_path):
    """Use a policy file with the given text (Cinder's API and the check)."""
    def use(text):
        path = tmp_path / "policy.yaml"
        path.write_text(text)
        CONF.set_override("policy_file", str(path), group="oslo_policy")
        cinder_policy.reset()
    yield use
    CONF.clear_override("policy_file", group="oslo_policy")
    cinder_policy.reset()


@pytest.fixture
def refuse():
    CONF.set_override("refuse_permissive_policy", True, group="sealedmeta")
    yield
    CONF.clear_override("refuse_permissive_policy", group="sealedmeta")


@pytest.fixture(autouse=True)
def fresh_enforcer():
    cinder_policy.reset()
    yield
    cinder_policy.reset()


def member(cloud):
    return cinder_context.RequestContext(
        user_id=cloud.user_id, project_id=cloud.project_id,
        roles=["member", "reader"], is_admin=False)


def _request(ctxt, volume_id):
    req = wsgi.Request.blank("/v3/%s/volumes/%s/action" % (ctxt.project_id, volume_id))
    req.api_version_request = api_version.APIVersionRequest("3.0")
    req.environ["cinder.context"] = ctxt
    return req


def set_image_metadata(ctxt, volume_id, **metadata):
    controller = volume_image_metadata.VolumeImageMetadataController()
    return controller.create(_request(ctxt, volume_id), volume_id,
                             body={"os-set_image_metadata": {"metadata": metadata}})


def set_bootable(ctxt, volume_id, bootable):
    controller = volume_actions.VolumeActionsController()
    return controller._set_bootable(_request(ctxt, volume_id), volume_id,
                                    body={"os-set_bootable": {"bootable": bootable}})


def _errors(caplog):
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.ERROR and r.name == policy_check.__name__]


def test_under_cinders_defaults_a_member_forges_billing_that_restores_authentic(
        cloud, caplog):
    # The attack as an operator would see it: through Cinder's API.
    src = cloud.volume(glance=helpers.GLANCE)
    set_image_metadata(member(cloud), src, billing_code_licence="FREE")
    plain = cloud.volume()
    set_bootable(member(cloud), plain, True)
    assert cloud.bootable(plain) is True
    backup = cloud.backup(src)
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target)["billing_code_licence"] == "FREE"
    assert cloud.bootable(target) is True

    # Sealing cannot stop that: the driver says so when it starts.
    with caplog.at_level(logging.ERROR):
        cloud.driver().check_for_setup_error()
    errors = _errors(caplog)
    for rule in (IMAGE_SET, IMAGE_REMOVE, UPDATE, BACKUP_UPDATE):
        assert [e for e in errors if rule + " " in e], (rule, errors)
    # Admin-only by Cinder's defaults: not named.
    assert not [e for e in errors if "volume_manage" in e or "backup-import" in e]
    assert all('"rule:admin_api"' in e for e in errors)


def test_permissive_rules_of_cinders_defaults():
    found = dict(policy_check.permissive_rules(CONF))
    assert found == {IMAGE_SET: "a project member",
                     IMAGE_REMOVE: "a project member",
                     UPDATE: "a project member",
                     BACKUP_UPDATE: "a project member"}


def test_permissive_rules_under_the_deprecated_defaults():
    CONF.set_override("enforce_new_defaults", False, group="oslo_policy")
    try:
        found = dict(policy_check.permissive_rules(CONF))
    finally:
        CONF.clear_override("enforce_new_defaults", group="oslo_policy")
    assert {IMAGE_SET, IMAGE_REMOVE, UPDATE, BACKUP_UPDATE} <= set(found)


def test_refuse_permissive_policy_stops_the_driver_and_reseal(cloud, refuse):
    with pytest.raises(exception.BackupDriverException, match=IMAGE_SET):
        cloud.driver().check_for_setup_error()
    with pytest.raises(exceptions.SetupError, match=UPDATE):
        drivers.load_driver(cloud.ctxt)


def test_restricted_policy_file_passes_and_stops_the_member(
        cloud, policy_file, refuse, caplog):
    policy_file(RESTRICTED)
    with caplog.at_level(logging.ERROR):
        assert policy_check.check(CONF) == []
        cloud.driver().check_for_setup_error()
        assert isinstance(drivers.load_driver(cloud.ctxt), helpers.sealed_class())
    assert _errors(caplog) == []

    src = cloud.volume(glance=helpers.GLANCE)
    with pytest.raises(exception.PolicyNotAuthorized):
        set_image_metadata(member(cloud), src, billing_code_licence="FREE")
    plain = cloud.volume()
    with pytest.raises(exception.PolicyNotAuthorized):
        set_bootable(member(cloud), plain, True)
    assert cloud.glance(src) == helpers.GLANCE
    assert cloud.bootable(plain) is False
    backup = cloud.backup(plain)
    with pytest.raises(exception.PolicyNotAuthorized):
        test_records.update_backup_metadata(member(cloud), backup.id, {"k": "v"})
    assert objects.Backup.get_by_id(cloud.ctxt, backup.id).metadata == {}


@pytest.mark.parametrize("rule,check,persona", [
    (UPDATE, "role:member and project_id:%(project_id)s", "a project member"),
    (BACKUP_UPDATE, "role:member and project_id:%(project_id)s", "a project member"),
    (IMAGE_SET, "role:reader", "a project reader"),
    (IMAGE_REMOVE, "", "a project reader"),
])
def test_a_policy_file_reopening_one_rule_is_named(
        policy_file, caplog, rule, check, persona):
    policy_file(RESTRICTED + '"%s": "%s"\n' % (rule, check))
    with caplog.at_level(logging.ERROR):
        assert policy_check.check(CONF, refuse=False) == [(rule, persona)]
    assert len(_errors(caplog)) == 1 and rule in _errors(caplog)[0]
    with pytest.raises(policy_check.PermissivePolicy, match=rule):
        policy_check.check(CONF, refuse=True)
