"""``sealedmeta cinder audit`` over backups in each tenant's own Swift
account (per_user): the real command line and a real cinder.conf, acting in
each backup's project as a Keystone service user with Swift's reseller
admin role; the tenant edits and deletes objects through Swift's own API."""

import re

import pytest

from cinder import context as cinder_context
from sealedmeta.cinder import audit

from tests.cinder import test_audit as cinder_audit
from tests.swift import helpers
from tests.swift.test_legacy_and_reseal import write_cinder_conf


@pytest.fixture
def mode():
    return "per_user"


@pytest.fixture
def other_cloud(stores, tenant, container, tmp_path, cloud):
    """The same tenant in its second project: another Swift account."""
    other = helpers.Tenant(stores["ks"], stores["ks"]["other_project"]["id"])
    ctxt = cinder_context.RequestContext(
        user_id=other.user_id, project_id=other.project_id,
        auth_token=other.token, is_admin=True)
    made = helpers.SwiftCloud(ctxt, str(tmp_path / "other-volumes"), other.conn(),
                              container)
    yield made
    made.remove_containers()


@pytest.fixture
def fleet(cloud, other_cloud):
    return cinder_audit.mixed_fleet(cloud, other_cloud, helpers.stock_class())


def test_each_backup_in_each_account_lands_in_its_class(fleet, cloud, other_cloud,
                                                          capsys, tmp_path, keys, stores):
    conf = write_cinder_conf(tmp_path, keys, stores)
    code, rows, err = cinder_audit.audit_json(capsys, conf, "--workers", "3")
    assert code == 1, err
    cinder_audit.check_mixed_fleet(fleet, rows, err, other_cloud.project_id)


def test_a_clean_project_exits_zero(fleet, other_cloud, capsys, tmp_path, keys, stores):
    conf = write_cinder_conf(tmp_path, keys, stores)
    code, rows, err = cinder_audit.audit_json(capsys, conf, "--project",
                                              other_cloud.project_id)
    assert code == 0, err
    assert {row["class"] for row in rows.values()} == {audit.VALID}
    assert set(rows) == {fleet[name][0].id for name in ("other-sealed", "other-sealed-2")}


def test_without_the_service_user_the_audit_refuses(
        fleet, capsys, tmp_path, keys, stores):
    """per_user needs the reseller admin service user: refused up front
    (exit 2), nothing judged."""
    conf = write_cinder_conf(tmp_path, keys, stores, service_user=False)
    code, out, err = cinder_audit.run_cli(capsys, "--config-file", conf, "cinder",
                                          "audit", "-f", "json")
    assert code == 2
    assert "reseller admin" in err
    assert out.strip() in ("", "[]")


# A token header as swiftclient logs a request: "-H "X-Auth-Token: VALUE"".
TOKEN_HEADER = re.compile(r"X-Auth-Token[\"']?\s*[:=]\s*[\"']?([^\s\"',}]+)", re.IGNORECASE)


def test_the_requests_logged_hold_no_part_of_a_token(fleet, capsys, tmp_path, keys, stores):
    """swiftclient logs each request with its X-Auth-Token cut to a
    16-character prefix (at INFO when Swift refused it, as for the missing
    backup's object): none of a token may reach the terminal (``-v``) or
    the log file."""
    conf = write_cinder_conf(tmp_path, keys, stores)
    log = tmp_path / "audit.log"
    code, _, err = cinder_audit.run_cli(capsys, "-v", "--log-file", str(log),
                                        "--config-file", conf, "cinder", "audit", "-f", "json")
    assert code == 1, err
    logged = err + log.read_text()
    assert "RESP STATUS: 404" in logged, logged[-3000:]   # the refused request was logged
    shown = TOKEN_HEADER.findall(logged)
    assert shown and set(shown) == {"..."}, sorted(set(shown))
