import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer

from tests.unit.helpers import CountingStore
from tests.unit.helpers import FakeClock

RING = "cinder-backup"


@pytest.fixture
def repo(tmp_path):
    return str(tmp_path / "keys")


@pytest.fixture
def store(repo):
    return FileKeyStore(repo)


@pytest.fixture
def ring(store):
    return store.create_keyring(RING)


@pytest.fixture
def sealer(store, ring):
    return Sealer(store, keyring=RING)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def counting(store, ring):
    """A counting proxy over a real FileKeyStore holding keyring RING."""
    return CountingStore(store)
