"""``sealedmeta keyring status`` against the file store and a real Barbican
(alone and behind Keystone): each version's state and times as the store
records them, and the settle window an operator would otherwise learn only
by being refused."""

import datetime
import json

import pytest

from sealedmeta import keyring as kr


def iso(ts):
    return datetime.datetime.fromtimestamp(
        ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.fixture(params=["file", "barbican-noauth", "barbican-keystone"])
def store_conf(request, tmp_path):
    """``conf(cache_ttl, stale_grace)`` -> a config file of the store."""
    if request.param == "file":
        def conf(cache_ttl, stale_grace):
            path = tmp_path / ("file-%d-%d.conf" % (cache_ttl, stale_grace))
            path.write_text("[sealedmeta]\nkey_repository = %s\ncache_ttl = %d\n"
                            "stale_grace = %d\n" % (tmp_path / "keys", cache_ttl,
                                                    stale_grace))
            return str(path)
        return conf
    env = request.getfixturevalue(request.param.replace("-", "_"))

    def conf(cache_ttl, stale_grace):
        return env.write_conf(
            tmp_path / ("barbican-%d-%d.conf" % (cache_ttl, stale_grace)),
            {("sealedmeta", "cache_ttl"): cache_ttl,
             ("sealedmeta", "stale_grace"): stale_grace})
    return conf


def status(cli, conf, name, *more):
    proc = cli.run("--config-file", conf, "keyring", "status", name, *more)
    return proc.stdout


def test_status_shows_states_times_and_the_settle_window(
        store_conf, sealedmeta_cli, open_store, ring_name, tmp_path):
    cli = sealedmeta_cli
    waiting = store_conf(100000, 5)
    cli.run("--config-file", waiting, "keyring", "create", ring_name)
    cli.run("--config-file", waiting, "rekey", ring_name)
    cli.run("--config-file", waiting, "rekey", ring_name)
    ring = open_store(waiting).get_keyring(ring_name)
    asked = kr.now()
    rows = json.loads(status(cli, waiting, ring_name, "-f", "json"))
    answered = kr.now()
    assert [r["version"] for r in rows] == [1, 2, 3]
    assert [r["state"] for r in rows] == ["decrypt-only", "decrypt-only", "active"]
    for row in rows:
        version = ring.version(row["version"])
        assert row["key_id"] == version.key_id.hex()
        assert row["created"] == iso(version.created)
        assert row["pending_destruction"] is None
        assert "backups" not in row
        since = kr.inactive_since(ring, version.number)
        if since is None:
            assert (row["deactivated"], row["settle_ends"],
                    row["settle_left_seconds"]) == (None, None, None)
            continue
        ends = since + 1 + 100005
        assert row["deactivated"] == iso(since)
        assert row["settle_ends"] == iso(ends)
        assert ends - answered <= row["settle_left_seconds"] <= ends - asked
    # What the window means: retire is refused, naming the same time left.
    proc = cli.run("--config-file", waiting, "key", "retire", ring_name, "1",
                   check=False)
    assert proc.returncode == 2 and "left" in proc.stderr

    # A table leaves what does not apply empty (never "None").
    table = status(cli, waiting, ring_name)
    assert "None" not in table
    assert "settle_ends" in table and "pending_destruction" in table

    # No window: settled at once, and retire goes through.
    settled = store_conf(0, 0)
    rows = json.loads(status(cli, settled, ring_name, "-f", "json"))
    assert [r["settle_left_seconds"] for r in rows] == [0, 0, None]
    assert rows[0]["settle_ends"] == rows[0]["deactivated"]
    cli.run("--config-file", settled, "key", "retire", ring_name, "1")
    rows = json.loads(status(cli, settled, ring_name, "-f", "json"))
    assert [r["state"] for r in rows] == ["retired", "decrypt-only", "active"]

    # Pending destruction: when it is due, as the store records it.
    empty = tmp_path / "no-backups"
    empty.mkdir()
    cli.run("--config-file", settled, "key", "destroy", ring_name, "1",
            "--after", "2d", "--scan", str(empty))
    due = open_store(settled).get_keyring(ring_name).version(1).destroy_after
    rows = json.loads(status(cli, settled, ring_name, "-f", "json"))
    assert [(r["state"], r["pending_destruction"]) for r in rows] == [
        ("pending-destruction", iso(due)), ("decrypt-only", None),
        ("active", None)]
    assert iso(due) in status(cli, settled, ring_name)


def test_status_of_a_missing_keyring_fails_clearly(store_conf, sealedmeta_cli,
                                                   ring_name):
    proc = sealedmeta_cli.run("--config-file", store_conf(0, 0), "keyring",
                              "status", ring_name, check=False)
    assert proc.returncode == 2
    assert ring_name in proc.stderr and "Traceback" not in proc.stderr
