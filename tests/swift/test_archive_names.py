"""``sealedmeta cinder reseal`` removes the superseded versions of a backup's
metadata object that Swift keeps in the archive container a tenant names
(X-History-Location / X-Versions-Location), acting as the reseller admin
service user, who may act in every account. The archive's listing is the
tenant's to write: an entry whose name leaves the backup's account must never
be read or deleted.

Two accounts of the Keystone-backed Swift: the tenant's (the backup's
project) and a victim's (another user in another project). The tenant plants
its entry through Swift's own API with its own token; the operator runs the
real command line."""

import http.client
import json
import urllib.parse

import pytest
from swiftclient import client as swift_client
from swiftclient import exceptions as swift_exc

from tests.swift import helpers
from tests.swift import test_legacy_and_reseal as legacy_reseal

VICTIM_DATA = b"the victim's own object, not a backup of anyone else"


@pytest.fixture
def mode():
    return "per_user"


class Victim(helpers.Tenant):
    """Another user in another project: Keystone's admin user in project
    admin, a member of neither of the tenant's projects."""

    def __init__(self, env):
        with open("%s/env.json" % env["openstack_dir"]) as handle:
            cred = json.load(handle)["admin"]
        super().__init__(dict(env, tenant=cred))


@pytest.fixture
def victim(stores, container):
    victim = Victim(stores["ks"])
    conn = victim.conn()
    name = container + "-victim"
    conn.put_container(name)
    conn.put_object(name, "precious", VICTIM_DATA)
    yield victim, name
    for entry in conn.get_container(name, full_listing=True)[1]:
        conn.delete_object(name, entry["name"])
    conn.delete_container(name)


def raw(tenant, method, container, name, data=None):
    """*method* on the object *name* of the tenant's *container* with the
    tenant's token, the dot segments percent-encoded so that no client on
    the way removes them (Swift decodes them: the name holds them as they
    are). The HTTP status."""
    quoted = "/".join(urllib.parse.quote(part, safe="").replace(".", "%2E")
                      for part in name.split("/"))
    url = urllib.parse.urlsplit(tenant.storage_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        conn.request(method, "%s/%s/%s" % (url.path, urllib.parse.quote(container), quoted),
                     body=data, headers={"X-Auth-Token": tenant.token})
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    return response.status


@pytest.fixture
def planted(tenant):
    """Objects the test plants; removed by their exact names afterwards
    (swiftclient would send the normalised path)."""
    names = []

    def plant(container, name, data=b"not a metadata object"):
        assert raw(tenant, "PUT", container, name, data) == 201
        names.append((container, name))
    yield plant
    for container, name in names:
        assert raw(tenant, "DELETE", container, name) in (204, 404)


def archive_prefix(name):
    return "%03x%s/" % (len(name.encode("utf-8")), name)


@pytest.mark.parametrize("location", ["X-History-Location", "X-Versions-Location"])
def test_reseal_never_deletes_in_another_account(cloud, capsys, tmp_path, keys, stores,
                                                 tenant, victim, planted, location):
    victim, victim_container = victim
    archive = cloud.container + "-archive"
    cloud.conn.put_container(archive)
    cloud.conn.put_container(cloud.container, headers={location: archive})
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())
    legacy_reseal._forge(cloud, backup)   # one genuine archived version
    _, name = cloud.location(backup)
    hostile = archive_prefix(name) + "../" * 5 + "AUTH_%s/%s/precious" % (
        victim.project_id, victim_container)
    planted(archive, hostile)
    listed = [e["name"] for e in cloud.conn.get_container(
        archive, prefix=archive_prefix(name), full_listing=True)[1]]
    assert hostile in listed
    # The tenant's own token cannot touch the victim's account.
    with pytest.raises(swift_exc.ClientException) as refused:
        swift_client.delete_object(victim.storage_url, tenant.token, victim_container,
                                   "precious")
    assert refused.value.http_status == 403

    code, rows, err = legacy_reseal.reseal(
        capsys, legacy_reseal.write_cinder_conf(tmp_path, keys, stores),
        "--backup-id", backup.id)

    # The victim's object is still there, whole.
    assert victim.conn().get_object(victim_container, "precious")[1] == VICTIM_DATA
    row = rows[backup.id]
    assert row["result"] == "resealed-plaintext-left", (row, err)
    assert code == 1
    # The planted entry is named, refused, and left alone in the tenant's archive.
    assert "not a version Swift names" in row["reason"]
    assert raw(tenant, "HEAD", archive, hostile) == 200
    # The genuine superseded versions went as before.
    assert row["versions_removed"] >= 1
    assert raw(tenant, "DELETE", archive, hostile) == 204
    assert [n for n, data in cloud.every_stored_byte().items()
            if helpers.BILLING in data] == []
