"""The key store contract (tests/keystore_contract.py) on the Barbican key
store, against a real Barbican behind a real Keystone (tools/dev-openstack)."""

import pytest

from tests.keystore_contract import KeyStoreContract


class TestBarbicanKeyStore(KeyStoreContract):

    @pytest.fixture
    def store(self, barbican_keystone, open_store):
        return open_store(barbican_keystone.conf_path)

    @pytest.fixture
    def name(self, ring_name):
        return ring_name
