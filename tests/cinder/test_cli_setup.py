"""What the Cinder commands say before they judge a backup, run as an
operator runs them: the real console script in a child process, with a
cinder.conf naming a real SQLite database file.

* A database without Cinder's tables (``cinder-manage db sync`` never ran,
  or ``[database] connection`` names another database) is one line naming
  both, exit status 2 (cannot run), for every command that reads Cinder's
  backups -- not the SQL of the failed query.
* Each of Cinder's permissive policy rules is named once per run.
"""

import os
import subprocess
import sys

import pytest

from sealedmeta.cinder import policy_check

from tests import sm_cli
from tests.cinder import helpers

PERMISSIVE_BY_DEFAULT = {
    "volume_extension:volume_image_metadata:set",
    "volume_extension:volume_image_metadata:remove",
    "volume:update",
    "backup:update",
}
NO_TABLES = (
    "sealedmeta: Cinder's database has no table backups: create Cinder's"
    " tables with 'cinder-manage db sync', or set [database] connection in"
    " %s to Cinder's database")


def write_conf(tmp_path, database, keys):
    backups = tmp_path / "backups"
    backups.mkdir(exist_ok=True)
    conf = tmp_path / "cinder.conf"
    conf.write_text(
        "[DEFAULT]\n"
        "backup_driver = %s\n"
        "backup_posix_path = %s\n"
        "[database]\n"
        "connection = sqlite:///%s\n"
        "[sealedmeta]\n"
        "key_repository = %s\n" % (helpers.SEALED_POSIX, backups, database, keys.path))
    return conf


@pytest.fixture
def empty_db(tmp_path, keys):
    """cinder.conf naming a SQLite database without any table."""
    database = tmp_path / "cinder.sqlite"
    database.write_bytes(b"")   # an empty file is an empty SQLite database
    return write_conf(tmp_path, database, keys)


@pytest.fixture
def synced_db(tmp_path, keys):
    """cinder.conf naming a SQLite database made by ``cinder-manage db
    sync``, with no backup in it."""
    conf = write_conf(tmp_path, tmp_path / "cinder.sqlite", keys)
    manage = os.path.join(os.path.dirname(sys.executable), "cinder-manage")
    proc = subprocess.run([manage, "--config-file", str(conf), "db", "sync"],
                          capture_output=True, text=True, timeout=sm_cli.HANG,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return conf


@pytest.mark.parametrize("argv", [
    ["cinder", "audit"],
    ["cinder", "reseal", "--all", "--dry-run"],
    ["keyring", "status", "cinder-backup", "--scan-cinder", "{conf}"],
])
def test_a_database_without_tables_is_one_line_and_cannot_run(
        argv, empty_db, keys, tmp_path):
    argv = [a.format(conf=empty_db) for a in argv]
    config = None if "--scan-cinder" in argv else empty_db
    code, out, err = sm_cli.run(argv, tmp_path, keys.path, config=config)
    assert (code, out, err.splitlines()) == (2, "", [NO_TABLES % empty_db])


def test_each_policy_warning_is_printed_once(synced_db, keys, tmp_path):
    code, out, err = sm_cli.run(["cinder", "reseal", "--all", "--dry-run",
                                 "-f", "json"],
                                tmp_path, keys.path, config=synced_db)
    assert (code, out.strip()) == (0, "[]"), err
    named = {rule: [line for line in err.splitlines() if line.startswith(
        "sealedmeta: Cinder policy rule %s lets " % rule)]
        for rule in policy_check.RULES}
    # Cinder's default policy lets a member use these four
    # (tests/cinder/test_policy_check.py): each named once, the others not.
    assert {rule: len(lines) for rule, lines in named.items()} == {
        rule: int(rule in PERMISSIVE_BY_DEFAULT) for rule in policy_check.RULES}, err
