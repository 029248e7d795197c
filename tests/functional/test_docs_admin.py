"""The administration guide's commands, as written in docs/source/admin.rst,
against a real Barbican behind a real Keystone and a real redis-server.

The configuration is the guide's ``ini`` block with its example addresses
and password replaced; the commands are the ``sealedmeta`` lines of its
``shell`` blocks with the guide's paths mapped to scratch ones. So the guide
cannot drift from what works. (The guide's ``openstack`` commands need an
administrator's client; dev-openstack creates the same user, project and
role.)
"""

import json
import os
import shlex
import sys
import uuid

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if TOP not in sys.path:  # tests/functional is not a package: reach tests.*
    sys.path.insert(0, TOP)

from sealedmeta import FileKeyStore  # noqa: E402
from sealedmeta import Sealer  # noqa: E402
from tests import doc_blocks  # noqa: E402
from tests.dev_servers import RedisServer  # noqa: E402

GUIDE = "docs/source/admin.rst"
RING = "cinder-backup"
MIGRATION_HEADING = "Migrating a keyring from the file store to Barbican"
# Every step of the guide that must stay in it (and so be run here).
STEPS = {"keyring create", "rekey", "keyring show", "rewrap", "verify",
         "key retire", "key destroy", "keyring copy"}


@pytest.fixture
def redis_url(tmp_path):
    server = RedisServer(tmp_path / "redis").start()
    yield server.url
    server.stop()


def guide_config(env, redis_url, name_prefix):
    """The guide's configuration, pointed at the test's servers."""
    blocks = doc_blocks.code_blocks(GUIDE, "ini")
    assert len(blocks) == 1, "expected one ini block in %s" % GUIDE
    text = blocks[0][1]
    user = env["sealedmeta"]
    for example, real in (
            ("https://barbican.example.org:9311", env["barbican_url"]),
            ("https://keystone.example.org/v3", env["auth_url"]),
            ("password = ...", "password = %s" % user["password"]),
            ("redis://redis.example.org:6379", redis_url),
            # No agent runs here: retire and destroy need not wait the
            # settle window after the guide's rekey.
            ("cache_ttl = 300", "cache_ttl = 0")):
        assert text.count(example) == 1, "%r not once in %s" % (example, GUIDE)
        text = text.replace(example, real)
    for option in ("username = %s" % user["username"],
                   "project_name = %s" % user["project_name"]):
        assert option in text, "%r: not dev-openstack's service user" % option
    # Tests share the servers: the store's names are made unique, the
    # guide's keyring name stays.
    return text + "\n[barbican_store]\nname_prefix = %s\n" % name_prefix


def write_private(path, text):
    path.write_text(text)
    os.chmod(path, 0o600)
    return str(path)


def seal_some(store, directory, count):
    os.makedirs(directory, exist_ok=True)
    sealer = Sealer(store, keyring=RING)
    for i in range(count):
        context = {"backup_id": "b%d" % i, "volume_id": "v"}
        with open(os.path.join(directory, "b%d.env" % i), "wb") as handle:
            handle.write(sealer.seal({"image_id": "i%d" % i}, context))


def step(args):
    """'key destroy', 'rekey', ... of a command's arguments."""
    words = [a for a in args if not a.startswith("-")]
    for i, word in enumerate(words):
        if word in ("keyring", "key"):
            return "%s %s" % (word, words[i + 1])
        if word in ("rekey", "rewrap", "verify"):
            return word
    return None


def test_admin_guide_commands(barbican_keystone, redis_url, sealedmeta_cli,
                              open_store, tmp_path):
    env = barbican_keystone.env
    prefix = "docs-%s" % uuid.uuid4().hex[:8]
    conf = write_private(tmp_path / "sealedmeta.conf",
                         guide_config(env, redis_url, prefix))
    target = write_private(tmp_path / "barbican.conf",
                           guide_config(env, redis_url, prefix + "-copy"))
    backups = str(tmp_path / "backup")
    migrated = str(tmp_path / "migrated-backup")
    keys = str(tmp_path / "keys")
    # The file store the migration starts from: two versions, envelopes.
    file_store = FileKeyStore(keys)
    file_store.create_keyring(RING)
    seal_some(file_store, migrated, 1)
    file_store.rotate(RING)
    seal_some(file_store, os.path.join(migrated, "later"), 2)

    guide_lines = doc_blocks.read(GUIDE).splitlines()
    migration_line = guide_lines.index(MIGRATION_HEADING) + 1
    commands = doc_blocks.shell_commands(GUIDE, "sealedmeta")
    done = set()
    for lineno, command in commands:
        paths = {"/etc/sealedmeta/sealedmeta.conf": conf,
                 "/etc/sealedmeta/barbican.conf": target,
                 "/var/lib/sealedmeta/keys": keys,
                 "/var/lib/cinder/backup":
                     migrated if lineno > migration_line else backups}
        args = shlex.split(command, comments=True)[1:]
        args = [paths.get(a, a) for a in args]
        proc = sealedmeta_cli.run(*args, check=False)
        where = "%s:%d: %s" % (GUIDE, lineno, command)
        assert proc.returncode == 0, "%s\nexit %d\n%s%s" % (
            where, proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, where
        what = step(args)
        done.add(what)
        if what == "keyring create":
            # Backups sealed under version 1 before the rotation.
            seal_some(open_store(conf), backups, 3)
        elif what == "keyring show":
            assert proc.stdout.count("| active ") == 1, where + "\n" + proc.stdout
        elif what == "verify" and "-f" in args:
            report = json.loads(proc.stdout)
            assert report["summary"]["all_valid"], report
            assert {v["version"]: v["envelopes"] for v in report["versions"]} \
                == {1: 0, 2: 3}, report
        elif what == "key destroy":
            assert "destroyed" in proc.stdout, where
    assert STEPS <= done, "steps missing from %s: %s" % (GUIDE, STEPS - done)

    ring = open_store(conf).get_keyring(RING)
    assert [(v.number, v.state.value) for v in ring.versions] == [
        (1, "destroyed"), (2, "active")]
    copied = open_store(target).get_keyring(RING)
    assert [(v.number, v.key_id, v.state) for v in copied.versions] == [
        (v.number, v.key_id, v.state) for v in file_store.get_keyring(RING).versions]
