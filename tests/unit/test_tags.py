"""Sealer.tag / check_tag: the short MAC the Cinder adapter's legacy claims
use where an envelope would not fit (a 255-character database column)."""

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import exceptions

RING = "cinder-backup"
MSG = b'["claim","backup-1","volume-1"]'


@pytest.fixture
def sealer(tmp_path):
    store = FileKeyStore(str(tmp_path / "keys"))
    store.create_keyring(RING)
    return Sealer(store, RING, cache_ttl=0, refresh_interval=0)


def test_a_tag_checks_for_its_purpose_message_and_version(sealer):
    version, mac = sealer.tag("purpose", MSG)
    assert version == 1 and len(mac) == 32
    assert sealer.check_tag("purpose", MSG, version, mac) == 1
    flipped = bytes([mac[0] ^ 1]) + mac[1:]
    for purpose, message, number, tag in (
            ("other purpose", MSG, version, mac),
            ("purpose", MSG + b" ", version, mac),
            ("purpose", MSG, version, flipped),
            ("purpose", MSG, version, mac[:31]),
            ("purpose", MSG, version, "not bytes")):
        with pytest.raises(exceptions.InvalidEnvelope):
            sealer.check_tag(purpose, message, number, tag)


def test_a_tag_follows_the_key_version_states(sealer):
    version, mac = sealer.tag("purpose", MSG)
    sealer.store.rotate(RING)
    assert sealer.check_tag("purpose", MSG, version, mac) == 1  # decrypt-only
    new_version, new_mac = sealer.tag("purpose", MSG)
    assert new_version == 2 and new_mac != mac
    with pytest.raises(exceptions.InvalidEnvelope):
        sealer.check_tag("purpose", MSG, 2, mac)   # another version's tag
    sealer.store.set_state(RING, 1, "retired")
    with pytest.raises(exceptions.KeyUnavailable, match="retired"):
        sealer.check_tag("purpose", MSG, version, mac)
    with pytest.raises(exceptions.UnknownKey):
        sealer.check_tag("purpose", MSG, 7, mac)
