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


def _show(cli, store_args, name):
    return json.loads(cli.run(*store_args, "keyring", "show", name,
                              "-f", "json").stdout)


def _statuses(cli, store_args, path):
    """{file name: status} of ``sealedmeta verify PATH``."""
    proc = cli.run(*store_args, "verify", str(path), "-f", "json", check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return {e["path"].rsplit("/", 1)[-1]: e["status"]
            for e in json.loads(proc.stdout)["envelopes"]}


def test_keyring_copy_keeps_destroyed_versions(barbican, sealedmeta_cli,
                                               open_store, tmp_path,
                                               ring_name):
    """A destroyed version is copied as destroyed both ways: into Barbican
    it becomes a listed tombstone, as a destroy made there leaves it, so
    ``verify`` still reports envelopes under it as ``destroyed-key`` (not
    ``unknown-key``), for a plain and for a signing keyring."""
    cli = sealedmeta_cli
    repo = str(tmp_path / "keys")
    source = FileKeyStore(repo)
    envs = tmp_path / "envelopes"
    envs.mkdir()
    plain, signed = ring_name, ring_name + "-sig"
    # plain: 1 destroyed, 2 retired, 3 decrypt-only, 4 active;
    # signed: 1 destroyed, 2 active.
    for name, rotations in ((plain, 3), (signed, 1)):
        source.create_keyring(name, signing=name == signed)
        for number in range(1, rotations + 2):
            if number > 1:
                source.rotate(name)
            ctx = {"backup_id": "%s-%d" % (name, number)}
            (envs / ("%s.v%d" % (name, number))).write_bytes(
                Sealer(source, keyring=name, cache_ttl=0).seal({"n": number}, ctx))
        source.set_state(name, 1, "retired")
        source.set_state(name, 1, "destroyed")
    source.set_state(plain, 2, "retired")
    expected = {"%s.v1" % plain: "destroyed-key", "%s.v2" % plain: "retired-key",
                "%s.v3" % plain: "valid", "%s.v4" % plain: "valid",
                "%s.v1" % signed: "destroyed-key", "%s.v2" % signed: "valid"}
    file_args = ("--key-repository", repo)
    assert _statuses(cli, file_args, envs) == expected

    barbican_args = ("--config-file", barbican.conf_path)
    target = open_store(barbican.conf_path)
    client = barbican.barbican_client()
    for name in (plain, signed):
        result = json.loads(cli.run(*file_args, "keyring", "copy", name,
                                    "--to-config", barbican.conf_path,
                                    "-f", "json").stdout)
        src_ring = source.get_keyring(name)
        assert result["versions_copied"] == len(src_ring.versions) - 1
        # Version by version (number, key id, state, created, public key).
        assert target.get_keyring(name) == src_ring
        assert _show(cli, barbican_args, name) == _show(cli, file_args, name)
        # Stored as Barbican's own destroy stores it: a listed tombstone
        # secret (no key material) carrying the version's facts; nothing
        # is left over, and destroying again finds nothing to finish.
        destroyed = src_ring.version(1)
        container = client.client.get("containers/%s" % target.layout.containers[name])
        refs = {r["name"]: r["secret_ref"] for r in container["secret_refs"]}
        assert len(refs) == len(src_ring.versions)
        tomb_ref = refs["v1.%s.%d" % (destroyed.key_id.hex(), destroyed.created)]
        tomb = client.secrets.get(tomb_ref)
        assert tomb.name == "sealedmeta:%s:v1:destroyed" % name
        assert tomb.payload == "destroyed"
        meta = client.secrets.get_secret_metadata(tomb_ref)
        meta = meta.get("metadata", meta)
        want = {"keyring": name, "version": "1", "state": "destroyed",
                "tombstone": "1", "key_id": destroyed.key_id.hex(),
                "created": str(destroyed.created)}
        if name == signed:
            want["public_key"] = destroyed.public_key.hex()
        # When it stopped being active (recorded by the rotation).
        assert destroyed.deactivated is not None
        want["deactivated"] = str(destroyed.deactivated)
        assert meta == want
        assert target.leftovers(name) == []
        assert target.finish_destroy(name, 1) == (destroyed, False)
    assert _statuses(cli, barbican_args, envs) == expected

    # Back from Barbican into a new file store: still destroyed.
    repo2 = str(tmp_path / "keys2")
    file_conf = tmp_path / "file.conf"
    file_conf.write_text("[sealedmeta]\nkeystore = file\nkey_repository = %s\n"
                         % repo2)
    for name in (plain, signed):
        cli.run(*barbican_args, "keyring", "copy", name,
                "--to-config", str(file_conf))
        assert FileKeyStore(repo2).get_keyring(name) == source.get_keyring(name)
        assert _show(cli, ("--key-repository", repo2), name) == _show(
            cli, file_args, name)
    assert _statuses(cli, ("--key-repository", repo2), envs) == expected
