"""A destroy that can be taken back, against a real Barbican (alone and
behind Keystone): ``key destroy --after``, ``keyring status``, ``key
reinstate`` and ``key destroy --due``, the state and its due time kept in
the version secret's metadata and carried by ``keyring copy``.

A due time in the past cannot be asked for (``--after`` takes at least a
second); the version is made due in the file store, where its description
is a file, and brought into Barbican with ``keyring copy``, which keeps it.
"""

import json

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import crypto
from sealedmeta import keyring as kr

DAY = 86400
CTX = {"backup_id": "pending-destroy"}


def _json(cli, *args, check=True):
    proc = cli.run(*args, "-f", "json", check=check)
    return proc.returncode, json.loads(proc.stdout) if proc.stdout else None, \
        proc.stderr


def _metadata(store, name, number):
    """The user metadata of version *number*'s secret, as Barbican has it."""
    store.get_keyring(name)
    return store.meta.read(store.reader.secrets[(name, number)])


def test_destroy_after_status_and_reinstate(barbican, sealedmeta_cli,
                                            open_store, tmp_path, ring_name):
    cli = sealedmeta_cli
    # No agent runs here: no settle window to wait after the rekey.
    conf = barbican.write_conf(tmp_path / "lab.conf",
                               {("sealedmeta", "cache_ttl"): 0})
    data = tmp_path / "data"
    data.mkdir()
    cli.run("--config-file", conf, "keyring", "create", ring_name)
    store = open_store(conf)
    (data / "b1.env").write_bytes(
        Sealer(store, keyring=ring_name, cache_ttl=0).seal({"n": 1}, CTX))
    cli.run("--config-file", conf, "rekey", ring_name)
    cli.run("--config-file", conf, "key", "retire", ring_name, "1")

    # In use: refused at request time, nothing changes.
    code, out, err = _json(cli, "--config-file", conf, "key", "destroy",
                           ring_name, "1", "--after", "30d", "--scan",
                           str(data), check=False)
    assert (code, out) == (1, None)
    assert ("refusing to schedule the destruction of version 1 of keyring %r:"
            " the scan found 1 envelope under it" % ring_name) in err, err
    assert open_store(conf).get_keyring(ring_name).version(1).state is \
        kr.KeyState.RETIRED

    cli.run("--config-file", conf, "key", "reinstate", ring_name, "1")
    cli.run("--config-file", conf, "rewrap", str(data))
    cli.run("--config-file", conf, "key", "retire", ring_name, "1")
    asked = kr.now()
    code, out, err = _json(cli, "--config-file", conf, "key", "destroy",
                           ring_name, "1", "--after", "30d", "--scan",
                           str(data))
    answered = kr.now()
    assert code == 0, err
    assert (out["state"], out["scanned_envelopes"],
            out["envelopes_under_version"]) == ("pending-destruction", 1, 0)
    store = open_store(conf)
    version = store.get_keyring(ring_name).version(1)
    assert version.state is kr.KeyState.PENDING_DESTRUCTION
    assert asked + 30 * DAY <= version.destroy_after <= answered + 30 * DAY
    meta = _metadata(store, ring_name, 1)
    assert (meta["state"], meta["destroy_after"]) == (
        "pending-destruction", str(version.destroy_after))
    rows = json.loads(cli.run("--config-file", conf, "keyring", "status",
                              ring_name, "-f", "json").stdout)
    assert [(r["state"], r["pending_destruction"]) for r in rows] == [
        ("pending-destruction", out["destroy_after"]), ("active", None)]
    # Not due yet: --due destroys nothing.
    code, out, err = _json(cli, "--config-file", conf, "key", "destroy",
                           ring_name, "--due", "--scan", str(data))
    assert (code, out["destroyed"], out["not_due"]) == (0, "", "1"), err

    # Cancelled: decrypt-only again, the time gone from the metadata, the
    # key as it was.
    code, out, err = _json(cli, "--config-file", conf, "key", "reinstate",
                           ring_name, "1")
    assert (code, out["state"]) == (0, "decrypt-only"), err
    store = open_store(conf)
    assert store.get_keyring(ring_name).version(1).destroy_after is None
    assert "destroy_after" not in _metadata(store, ring_name, 1)
    rows = json.loads(cli.run("--config-file", conf, "keyring", "status",
                              ring_name, "-f", "json").stdout)
    assert [r["pending_destruction"] for r in rows] == [None, None]
    assert crypto.key_id(store.get_key(ring_name, 1)) == version.key_id


def test_destroy_due_rechecks_and_copies_keep_the_due_time(
        barbican, sealedmeta_cli, open_store, tmp_path, ring_name):
    cli = sealedmeta_cli
    conf = barbican.write_conf(tmp_path / "lab.conf",
                               {("sealedmeta", "cache_ttl"): 0})
    # In the file store: version 1 pending destruction, its time come; one
    # backup under it in late/, which the scan at --after time did not see.
    repo = tmp_path / "keys"
    source = FileKeyStore(str(repo))
    source.create_keyring(ring_name)
    late = tmp_path / "late"
    late.mkdir()
    (late / "old.env").write_bytes(
        Sealer(source, keyring=ring_name, cache_ttl=0).seal({"n": 1}, CTX))
    source.rotate(ring_name)
    source.set_state(ring_name, 1, "retired")
    due = kr.now() - 1
    source.set_state(ring_name, 1, "pending-destruction", destroy_after=due)
    cli.run("--key-repository", str(repo), "keyring", "copy", ring_name,
            "--to-config", conf)
    store = open_store(conf)
    assert store.get_keyring(ring_name) == source.get_keyring(ring_name)
    assert _metadata(store, ring_name, 1)["destroy_after"] == str(due)

    # And out again into another file store, as it is.
    back = tmp_path / "back.conf"
    back.write_text("[sealedmeta]\nkey_repository = %s\n" % (tmp_path / "back"))
    cli.run("--config-file", conf, "keyring", "copy", ring_name,
            "--to-config", str(back))
    assert open_store(str(back)).get_keyring(ring_name) == \
        source.get_keyring(ring_name)

    # Due, but an envelope under it is found: kept pending, exit 1.
    code, out, err = _json(cli, "--config-file", conf, "key", "destroy",
                           ring_name, "--due", "--scan", str(late),
                           check=False)
    assert code == 1, err
    assert (out["destroyed"], out["in_use"], out["scanned_envelopes"]) == (
        "", "1", 1)
    assert "version 1 is due to be destroyed but the scan found 1 envelope" \
        " under it: %s" % (late / "old.env") in err, err
    version = open_store(conf).get_keyring(ring_name).version(1)
    assert (version.state, version.destroy_after) == (
        kr.KeyState.PENDING_DESTRUCTION, due)

    # The backup gone: destroyed (tombstone listed, secret deleted).
    (late / "old.env").unlink()
    code, out, err = _json(cli, "--config-file", conf, "key", "destroy",
                           ring_name, "--due", "--scan", str(late))
    assert (code, out["destroyed"], out["in_use"]) == (0, "1", ""), err
    store = open_store(conf)
    version = store.get_keyring(ring_name).version(1)
    assert (version.state, version.destroy_after) == (
        kr.KeyState.DESTROYED, None)
    assert (ring_name, 1) not in store.reader.secrets
    assert store.leftovers(ring_name) == []
