"""The key store contract (tests/keystore_contract.py) on the file store."""

import pytest

from sealedmeta import FileKeyStore

from tests.keystore_contract import KeyStoreContract


class TestFileKeyStore(KeyStoreContract):

    @pytest.fixture
    def store(self, tmp_path):
        return FileKeyStore(str(tmp_path / "keys"))

    @pytest.fixture
    def name(self):
        return "contract"
