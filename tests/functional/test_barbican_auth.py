"""Refusals and unreachable servers give one clear KeyStoreError.

Each case builds a key store from a changed copy of DIR/sealedmeta.conf in
this process and asserts the message: it names the endpoint and what to
check, and never carries a password or a token.
"""

import socket
import time
import uuid

import pytest

from sealedmeta import exceptions


def _closed_port():
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()        # nothing listens there now
    return port


def _refused(store_factory, conf_path, name):
    store = store_factory(conf_path)
    t0 = time.monotonic()
    with pytest.raises(exceptions.KeyStoreError) as info:
        store.get_keyring(name)
    return str(info.value), time.monotonic() - t0


def _assert_clean(message, bk):
    for secret in bk.secrets():
        assert secret not in message
    assert "X-Auth-Token" not in message
    assert "Traceback" not in message


@pytest.fixture
def keyring_ks(barbican_keystone, open_store, ring_name):
    open_store(barbican_keystone.conf_path).create_keyring(ring_name)
    return ring_name


def test_good_credentials_read_the_keyring(barbican_keystone, open_store,
                                           keyring_ks):
    ring = open_store(barbican_keystone.conf_path).get_keyring(keyring_ks)
    assert ring.active.number == 1


def test_wrong_password_is_a_clear_401(barbican_keystone, open_store,
                                       keyring_ks, tmp_path):
    bk = barbican_keystone
    conf = bk.write_conf(tmp_path / "c.conf", {
        ("key_manager", "password"): "not-the-password"})
    message, _ = _refused(open_store, conf, keyring_ks)
    print("\n" + message)
    assert "401" in message and "credentials refused" in message
    assert "[key_manager]" in message
    assert bk.env["auth_url"] in message or bk.barbican_url in message
    assert "not-the-password" not in message
    _assert_clean(message, bk)


def test_unknown_project_is_a_clear_401(barbican_keystone, open_store,
                                        keyring_ks, tmp_path):
    bk = barbican_keystone
    conf = bk.write_conf(tmp_path / "c.conf", {
        ("key_manager", "project_name"): "no-such-project"})
    message, _ = _refused(open_store, conf, keyring_ks)
    print("\n" + message)
    assert "401" in message and "project" in message
    _assert_clean(message, bk)


def test_another_project_does_not_see_the_keyring(barbican_keystone, open_store,
                                                  keyring_ks, tmp_path):
    # The user is a member of project 'other' too: authenticated and allowed,
    # but the keyring (and its secrets) belong to project 'sealedmeta'.
    bk = barbican_keystone
    conf = bk.write_conf(tmp_path / "c.conf", {
        ("key_manager", "project_name"): bk.env["other_project"]["name"]})
    store = open_store(conf)
    with pytest.raises(exceptions.NoSuchKeyring) as info:
        store.get_keyring(keyring_ks)
    message = str(info.value)
    print("\n" + message)
    assert keyring_ks in message and bk.barbican_url in message
    _assert_clean(message, bk)


def test_user_without_role_is_a_clear_403(barbican_keystone, open_store,
                                          keyring_ks, tmp_path):
    bk = barbican_keystone
    norole = bk.env["norole"]
    conf = bk.write_conf(tmp_path / "c.conf", {
        ("key_manager", "username"): norole["username"],
        ("key_manager", "password"): norole["password"]})
    message, _ = _refused(open_store, conf, keyring_ks)
    print("\n" + message)
    _assert_needs_member(message, bk)


def _assert_needs_member(message, bk):
    assert "403" in message and "needs the member role" in message, message
    # creator alone is not enough (see below): never suggested.
    assert "creator" not in message, message
    assert bk.barbican_url in message
    _assert_clean(message, bk)


@pytest.fixture
def creator_only(barbican_keystone):
    """(username, password) of a new user whose only role on the keyrings'
    project is ``creator``, made with Keystone's admin API; removed after."""
    from keystoneauth1 import identity
    from keystoneauth1 import session as ks_session
    env = barbican_keystone.env
    admin = env["admin"]
    sess = ks_session.Session(auth=identity.Password(
        auth_url=admin["auth_url"], username=admin["username"],
        password=admin["password"], user_domain_name=admin["user_domain_name"],
        system_scope="all"))
    api = admin["auth_url"].rstrip("/")
    roles = sess.get(api + "/roles?name=creator").json()["roles"]
    if roles:
        role = roles[0]["id"]
    else:
        role = sess.post(api + "/roles", json={
            "role": {"name": "creator"}}).json()["role"]["id"]
    name, password = "creator-%s" % uuid.uuid4().hex[:8], uuid.uuid4().hex
    user = sess.post(api + "/users", json={"user": {
        "name": name, "password": password, "domain_id": "default",
        "enabled": True}}).json()["user"]["id"]
    sess.put(api + "/projects/%s/users/%s/roles/%s" % (
        env["project_id"], user, role))
    yield name, password
    sess.delete(api + "/users/%s" % user)


def test_creator_role_alone_is_a_clear_403(barbican_keystone, open_store,
                                           keyring_ks, creator_only, tmp_path):
    """With only ``creator`` Barbican refuses to list containers, so no
    keyring can be read: the message asks for ``member``."""
    bk = barbican_keystone
    username, password = creator_only
    conf = bk.write_conf(tmp_path / "c.conf", {
        ("key_manager", "username"): username,
        ("key_manager", "password"): password})
    message, _ = _refused(open_store, conf, keyring_ks)
    print("\n" + message)
    assert "listing containers" in message, message
    _assert_needs_member(message, bk)
    assert password not in message


def test_barbican_endpoint_on_a_closed_port_fails_fast(barbican, open_store,
                                                       tmp_path, ring_name):
    url = "http://127.0.0.1:%d" % _closed_port()
    conf = barbican.write_conf(tmp_path / "c.conf", {
        ("barbican", "barbican_endpoint"): url})
    message, seconds = _refused(open_store, conf, ring_name)
    print("\n%s (%.2fs)" % (message, seconds))
    assert url in message and "cannot connect" in message
    assert seconds < 5, seconds
    _assert_clean(message, barbican)


def test_keystone_on_a_closed_port_fails_fast(barbican_keystone, open_store,
                                              tmp_path, ring_name):
    bk = barbican_keystone
    url = "http://127.0.0.1:%d/v3" % _closed_port()
    conf = bk.write_conf(tmp_path / "c.conf", {
        ("key_manager", "auth_url"): url, ("barbican", "auth_endpoint"): url})
    message, seconds = _refused(open_store, conf, ring_name)
    print("\n%s (%.2fs)" % (message, seconds))
    assert "cannot connect" in message and "auth_url" in message
    assert seconds < 5, seconds
    _assert_clean(message, bk)
