"""``sealedmeta keyring copy``: from the file key store into Barbican."""

import json

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import exceptions
from sealedmeta.sealer import Sealer


def test_keyring_copy_from_file_store_to_barbican(barbican, sealedmeta_cli,
                                                  open_store, tmp_path,
                                                  ring_name):
    repo = str(tmp_path / "keys")
    source = FileKeyStore(repo)
    source.create_keyring(ring_name)
    file_sealer = Sealer(source, keyring=ring_name, cache_ttl=0)
    envelopes = {}
    for number in (1, 2, 3):
        if number > 1:
            source.rotate(ring_name)
        ctx = {"backup_id": "b%d" % number}
        envelopes[number] = (file_sealer.seal({"n": number}, ctx), ctx)
    source.set_state(ring_name, 1, "retired")
    src_ring = source.get_keyring(ring_name)
    assert [v.state.value for v in src_ring.versions] == [
        "retired", "decrypt-only", "active"]

    proc = sealedmeta_cli.run("--key-repository", repo, "keyring", "copy",
                              ring_name, "--to-config", barbican.conf_path,
                              "-f", "json")
    result = json.loads(proc.stdout)
    assert result["versions_copied"] == 3
    assert result["active_version"] == 3
    assert "Barbican" in result["destination"]

    target = open_store(barbican.conf_path)
    ring = target.get_keyring(ring_name)
    assert [(v.number, v.key_id, v.state, v.created) for v in ring.versions] == [
        (v.number, v.key_id, v.state, v.created) for v in src_ring.versions]

    # Envelopes of the file store open against Barbican; the retired one is
    # refused there too.
    sealer = Sealer(target, keyring=ring_name)
    for number in (2, 3):
        env, ctx = envelopes[number]
        assert sealer.open(env, ctx) == {"n": number}
    env1, ctx1 = envelopes[1]
    with pytest.raises(exceptions.KeyUnavailable, match="retired"):
        sealer.open(env1, ctx1)
    # Barbican seals under version 3, which the file store opens: same key.
    new = sealer.seal({"n": "new"}, {"backup_id": "new"})
    assert file_sealer.open(new, {"backup_id": "new"}) == {"n": "new"}
    # The retired version's key was carried: reinstated, it opens again.
    target.set_state(ring_name, 1, "decrypt-only")
    assert Sealer(target, keyring=ring_name).open(env1, ctx1) == {"n": 1}

    # A second copy is refused, one line, nothing changed.
    again = sealedmeta_cli.run("--key-repository", repo, "keyring", "copy",
                               ring_name, "--to-config", barbican.conf_path,
                               check=False)
    assert again.returncode != 0
    assert "already exists" in again.stderr and "Traceback" not in again.stderr
    assert len(open_store(barbican.conf_path).get_keyring(ring_name).versions) == 3
