"""Backups made by Cinder's stock Swift driver: restored by the sealed class
under each legacy_backups policy, and sealed by ``sealedmeta cinder reseal``
through the real command line and a real cinder.conf -- in per_user mode as
a Keystone service user holding Swift's reseller admin role, acting in each
backup's project; superseded plaintext versions removed."""

import json

import pytest
from oslo_config import cfg
from swiftclient import exceptions as swift_exc

from cinder import exception
from cinder import objects
from sealedmeta.cinder import swift as sealed_swift
from sealedmeta.cinder import swift_options

from tests.cinder import test_reseal as cinder_reseal
from tests.swift import helpers

CONF = cfg.CONF


def _forge(cloud, backup):
    """The tenant rewrites the billing code of its stock backup."""
    obj = cloud.read_object(backup)
    meta = json.loads(obj["volume_meta"])
    meta["volume-glance-metadata"]["billing_code_licence"] = "FREE"
    obj["volume_meta"] = json.dumps(meta)
    cloud.write_raw_object(backup, json.dumps(obj).encode())


@pytest.fixture
def legacy(cloud):
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    return src, cloud.backup(src, cls=helpers.stock_class())


@pytest.mark.parametrize("policy", ["trust", "drop-glance", "reject"])
def test_stock_backup_restored_by_the_sealed_class(cloud, legacy, policy):
    src, backup = legacy
    CONF.set_override("legacy_backups", policy, group="sealedmeta")
    target = cloud.new_target()
    if policy == "reject":
        before = cloud.data(target)
        with pytest.raises(exception.InvalidBackup, match="made before sealing"):
            cloud.restore(backup, target)
        assert cloud.data(target) == before
        return
    cloud.restore(backup, target)
    assert cloud.data(target) == cloud.data(src)
    assert cloud.user_meta(target) == {"tier": "gold"}
    if policy == "trust":
        assert cloud.glance(target) == helpers.GLANCE
        assert cloud.bootable(target) is True
    else:
        assert cloud.glance(target) == {}
        assert cloud.bootable(target) is False


def write_cinder_conf(tmp_path, keys, stores, service_user=True):
    """A cinder.conf as an operator writes it: the overrides of the test's
    mode (conftest) are the same values."""
    lines = [
        "[DEFAULT]",
        "backup_driver = %s" % helpers.SEALED_SWIFT,
        "backup_swift_auth = %s" % CONF.backup_swift_auth,
        "backup_swift_url = %s" % stores["ks"]["storage_url_prefix"],
        "backup_swift_container = %s" % CONF.backup_swift_container,
        "[database]",
        "connection = sqlite://",
        "[sealedmeta]",
        "key_repository = %s" % keys.path,
    ]
    if service_user:
        cred = stores["ks"]["reseller_user"]
        lines += [
            "swift_service_auth_url = %s" % cred["auth_url"],
            "swift_service_username = %s" % cred["username"],
            "swift_service_password = %s" % cred["password"],
            "swift_service_project_name = %s" % cred["project_name"],
        ]
    path = tmp_path / "cinder.conf"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def write_group_conf(tmp_path, keys, stores, **drop):
    """The same cinder.conf with the service user given with keystoneauth's
    options in [sealedmeta_swift_service_user], not the deprecated
    [sealedmeta] swift_service_* ones; *drop*: options left out."""
    cred = stores["ks"]["reseller_user"]
    group = {"auth_type": "password", "auth_url": cred["auth_url"],
             "username": cred["username"], "password": cred["password"],
             "user_domain_name": "Default", "project_name": cred["project_name"],
             "project_domain_name": "Default"}
    path = write_cinder_conf(tmp_path, keys, stores, service_user=False)
    with open(path, "a") as handle:
        handle.write("[%s]\n" % swift_options.GROUP)
        handle.writelines("%s = %s\n" % (name, value) for name, value in group.items()
                          if name not in drop)
    return path


def reseal(capsys, conf, *args):
    return cinder_reseal.reseal_json(capsys, conf, *args)


@pytest.fixture
def mode():
    return "per_user"


def test_per_user_reseal_refuses_up_front_without_a_service_user(
        cloud, legacy, capsys, tmp_path, keys, stores):
    src, backup = legacy
    before = cloud.raw_object(backup)
    conf = write_cinder_conf(tmp_path, keys, stores, service_user=False)
    code, out, err = cinder_reseal.run_cli(capsys, "--config-file", conf, "cinder", "reseal",
                                           "--all")
    assert code != 0
    for name in sealed_swift.SERVICE_OPTS:
        assert name in err
    assert "reseller admin" in err
    assert "Unsupported scheme" not in out + err
    assert cloud.raw_object(backup) == before


@pytest.mark.parametrize("write_conf", [write_cinder_conf, write_group_conf],
                         ids=["deprecated-swift_service-options", "keystoneauth-group"])
def test_per_user_reseal_acts_in_the_tenants_account(cloud, legacy, capsys, tmp_path, keys,
                                                     stores, tenant, write_conf):
    """As the service user of the deprecated [sealedmeta] swift_service_*
    options, and as the one of [sealedmeta_swift_service_user], loaded by
    keystoneauth."""
    src, backup = legacy
    _forge(cloud, backup)
    conf = write_conf(tmp_path, keys, stores)

    code, rows, err = reseal(capsys, conf, "--all")

    assert code == 0, err
    assert rows[backup.id]["result"] == "resealed", rows
    # written into the tenant's own account, sealed, with the truth
    obj = json.loads(tenant.conn().get_object(*cloud.location(backup))[1])
    assert obj["volume_meta"].startswith("sealedmeta:")
    assert objects.Backup.get_by_id(cloud.ctxt, backup.id).service == helpers.SEALED_SWIFT
    assert [n for n, data in cloud.every_stored_byte().items() if helpers.BILLING in data] == []
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target) == helpers.GLANCE     # from the database, not "FREE"
    assert cloud.bootable(target) is True


def test_an_incomplete_keystoneauth_group_is_refused_up_front(
        cloud, legacy, capsys, tmp_path, keys, stores):
    """auth_type set without auth_url: keystoneauth's own refusal, named
    with the group, before any backup is read."""
    src, backup = legacy
    before = cloud.raw_object(backup)
    conf = write_group_conf(tmp_path, keys, stores, auth_url=None)
    code, out, err = cinder_reseal.run_cli(capsys, "--config-file", conf, "cinder", "reseal",
                                           "--all")
    assert code == 2, out + err
    assert "[%s]" % swift_options.GROUP in err
    assert "auth-url" in err or "auth_url" in err
    assert stores["ks"]["reseller_user"]["password"] not in out + err
    assert cloud.raw_object(backup) == before


def test_service_user_without_the_reseller_role_cannot_reseal(
        cloud, legacy, capsys, tmp_path, keys, stores):
    """A service user without Swift's reseller admin role (here the tenant
    itself, scoped to its other project) cannot act in the backup's project:
    the backup fails, nothing is written there."""
    src, backup = legacy
    before = cloud.raw_object(backup)
    tenant_cred = stores["ks"]["tenant"]
    reseller = stores["ks"]["reseller_user"]
    conf = write_cinder_conf(tmp_path, keys, stores)
    text = open(conf).read()
    text = (text.replace(reseller["username"], tenant_cred["username"])
            .replace(reseller["password"], tenant_cred["password"])
            .replace("swift_service_project_name = service",
                     "swift_service_project_name = %s" % stores["ks"]["other_project"]["name"]))
    open(conf, "w").write(text)
    code, rows, err = reseal(capsys, conf, "--backup-id", backup.id)
    assert code == 1
    assert rows[backup.id]["result"] == "failed"
    assert "403" in rows[backup.id]["reason"]
    assert tenant_cred["password"] not in err + json.dumps(rows)
    assert cloud.raw_object(backup) == before
    assert objects.Backup.get_by_id(cloud.ctxt, backup.id).service == helpers.STOCK_SWIFT


VERSIONING = {
    "history": lambda archive: {"X-History-Location": archive},
    "stack": lambda archive: {"X-Versions-Location": archive},
    "object-versioning": lambda archive: {"X-Versions-Enabled": "true"},
}


@pytest.mark.parametrize("kind", sorted(VERSIONING))
def test_reseal_removes_the_plaintext_versions_it_supersedes(
        cloud, capsys, tmp_path, keys, stores, kind):
    archive = cloud.container + "-archive"
    cloud.conn.put_container(archive)
    cloud.conn.put_container(cloud.container, headers=VERSIONING[kind](archive))
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())
    _forge(cloud, backup)   # one more plaintext version
    plain = [n for n, data in cloud.every_stored_byte().items() if helpers.BILLING in data]
    assert plain    # the stock backup's object holds the code in clear

    code, rows, err = reseal(capsys, write_cinder_conf(tmp_path, keys, stores),
                             "--backup-id", backup.id)

    assert code == 0, err
    assert rows[backup.id]["result"] == "resealed"
    assert rows[backup.id]["versions_removed"] >= 1
    stored = cloud.every_stored_byte()
    assert [n for n, data in stored.items() if helpers.BILLING in data] == []
    assert [n for n, data in stored.items() if b"FREE" in data] == []
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target) == helpers.GLANCE


def test_reseal_reports_each_plaintext_version_it_could_not_remove(
        cloud, capsys, tmp_path, keys, stores, monkeypatch):
    """Where the store refuses a deletion, the version is reported and the
    command exits 1 (the refusal is injected: the reseller admin may delete
    anything in a real Swift)."""
    archive = cloud.container + "-archive"
    cloud.conn.put_container(archive)
    cloud.conn.put_container(cloud.container, headers={"X-History-Location": archive})
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())
    real_delete = sealed_swift.swift_exc and __import__(
        "swiftclient.client", fromlist=["Connection"]).Connection.delete_object

    def refuse_archive(self, container, obj, *args, **kwargs):
        if container == archive:
            raise swift_exc.ClientException("Forbidden", http_status=403)
        return real_delete(self, container, obj, *args, **kwargs)
    monkeypatch.setattr("swiftclient.client.Connection.delete_object", refuse_archive)

    code, rows, err = reseal(capsys, write_cinder_conf(tmp_path, keys, stores),
                             "--backup-id", backup.id)

    assert code == 1
    row = rows[backup.id]
    assert row["result"] == "resealed-plaintext-left"
    _, name = cloud.location(backup)
    assert "superseded plaintext versions left: %s/%03x%s/" % (archive, len(name), name) \
        in row["reason"]
    assert "HTTP 403" in row["reason"]
    assert "plaintext versions" in err
