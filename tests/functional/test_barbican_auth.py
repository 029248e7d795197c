"""Refusals and unreachable servers give one clear KeyStoreError.

Each case builds a key store from a changed copy of DIR/sealedmeta.conf in
this process and asserts the message: it names the endpoint and what to
check, and never carries a password or a token.
"""

import socket
import time

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
    assert "403" in message and "role" in message
    assert bk.barbican_url in message
    _assert_clean(message, bk)


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
