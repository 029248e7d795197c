"""Rotation on a schedule against a real Barbican (alone and behind
Keystone): ``sealedmeta rekey --if-older-than`` from several hosts' timers
at once rotates once.

A version's creation time is part of what Barbican holds (the container
entry), so the keyring is made old in the file store and brought in with
``keyring copy``, which keeps it.
"""

import json
import subprocess

DAY = 86400


def _old_keyring_in_barbican(cli, barbican, tmp_path, name, age):
    from sealedmeta import FileKeyStore
    repo = tmp_path / "keys"
    FileKeyStore(str(repo)).create_keyring(name)
    path = repo / name / "keyring.json"
    data = json.loads(path.read_text())
    data["versions"][0]["created"] -= age
    path.write_text(json.dumps(data))
    cli.run("--key-repository", str(repo), "keyring", "copy", name,
            "--to-config", barbican.conf_path)


def test_rekey_if_older_than_from_several_hosts_at_once(
        barbican, sealedmeta_cli, open_store, tmp_path, ring_name):
    cli = sealedmeta_cli
    conf = barbican.conf_path
    _old_keyring_in_barbican(cli, barbican, tmp_path, ring_name, 91 * DAY)
    created = open_store(conf).get_keyring(ring_name).active.created

    # Younger than the limit: nothing changes, exit 0.
    proc = cli.run("--config-file", conf, "rekey", ring_name,
                   "--if-older-than", "100d", "-f", "json")
    assert json.loads(proc.stdout)["rotated"] is False
    assert open_store(conf).get_keyring(ring_name).active.created == created

    # Four timers fire together: one rotates, three find the new version.
    procs = [subprocess.Popen(
        cli.command + ["--config-file", conf, "rekey", ring_name,
                       "--if-older-than", "90d", "-f", "json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, env=cli.env) for _ in range(4)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["rotated"] for r in results) == [False, False, False, True]
    assert {r["version"] for r in results} == {2}
    ring = open_store(conf).get_keyring(ring_name)
    assert [(v.number, v.state.value) for v in ring.versions] == [
        (1, "decrypt-only"), (2, "active")]
