"""Disaster recovery to a new cloud, end to end, as the administration
guide's runbook ("Disaster recovery to a new cloud", docs/source/admin.rst)
says, step by step: the test runs the runbook's ``bash`` blocks.

Cloud A is this process's Cinder (in-memory database, file key store): it
makes sealed backups (and one made by the stock driver before the switch),
escrows its keyring and exports the backups' records; then its key store is
lost. Cloud B is a second Cinder in its own process (tests/cinder/dr_cloud.py:
a fresh SQLite database) whose key store is a real Barbican started by
tools/dev-openstack: the escrowed keyring is copied there (file store ->
Barbican, the real ``sealedmeta`` command), the backup store is audited, the
records are imported through Cinder's own backup API and BackupManager, the
one made before the switch is marked so (``sealedmeta cinder mark-legacy``
with its record), and the backups are restored. Glance metadata and
bootable come back authentic; a backup whose object was tampered with is
still refused.

The runbook's ``sealedmeta`` lines run as written, its paths mapped to
scratch ones; its ``openstack`` lines are done by Cinder's API and
BackupManager in the cloud they name (the client itself needs the REST API,
which no test here runs).
"""

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest
from oslo_config import cfg

from cinder import objects

from tests import doc_blocks
from tests.cinder import helpers
from tests.cinder import test_manager
from tests.dev_servers import DEV_OPENSTACK
from tests.dev_servers import TOP
from tests.dev_servers import run_tool

GUIDE = "docs/source/admin.rst"
HEADING = "Disaster recovery to a new cloud"
RING = "cinder-backup"
mgr = test_manager.mgr  # cloud A's BackupManager with the sealed driver
# The runbook's steps, in order: what must stay in it (and so be run here).
STEPS = ["keyring copy", "record export", "keyring copy", "keyring show",
         "verify", "record import", "cinder mark-legacy", "restore"]


@pytest.fixture(scope="module")
def barbican(tmp_path_factory):
    """Cloud B's key store: a real Barbican (no Keystone) on 127.0.0.1."""
    for var in ("no_proxy", "NO_PROXY"):
        os.environ[var] = ",".join(
            [h for h in os.environ.get(var, "").split(",") if h]
            + ["127.0.0.1", "localhost"])
    directory = str(tmp_path_factory.mktemp("dev-openstack"))
    status, output = run_tool(DEV_OPENSTACK, "start", "--dir", directory)
    if status != 0:
        run_tool(DEV_OPENSTACK, "stop", "--dir", directory, timeout=120)
        pytest.fail("cannot start Barbican: dev-openstack start exited %s:\n%s"
                    % (status, output), pytrace=False)
    yield os.path.join(directory, "sealedmeta.conf")
    status, output = run_tool(DEV_OPENSTACK, "stop", "--dir", directory, timeout=120)
    assert status == 0, output


def runbook():
    """``(line, command)`` of the runbook's ``bash`` blocks: the ``sealedmeta``
    and ``openstack`` commands, continuations joined."""
    lines = doc_blocks.read(GUIDE).splitlines()
    start = lines.index(HEADING)
    end = next((i for i in range(start + 2, len(lines))
                if re.fullmatch(r"-{3,}", lines[i])), len(lines)) - 1
    found = []
    for lineno, text in doc_blocks.code_blocks(GUIDE, "bash"):
        if not start < lineno < end:
            continue
        pending = ""
        for offset, line in enumerate(text.splitlines()):
            line = line.strip()
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            command, pending = pending + line, ""
            if command.split()[:1] in (["sealedmeta"], ["openstack"]):
                found.append((lineno + offset, command))
    return found


def step_of(args):
    if args[0] == "openstack":
        return " ".join(args[3:5]) if args[3] == "record" else args[3]
    words = [a for a in args[1:] if not a.startswith("-")]
    for i, word in enumerate(words):
        if word in ("keyring", "key", "cinder"):
            return "%s %s" % (word, words[i + 1])
        if word in ("verify", "rekey", "rewrap"):
            return word
    return None


def cli(*args):
    proc = subprocess.run(
        [sys.executable, "-m", "sealedmeta.cmd.main"] + list(args),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, cwd=TOP, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def cloud_b_conf(path, barbican_conf, backups, state):
    """cinder.conf of cloud B: the sealed driver on the surviving backup
    store, a fresh database, and the guide's [sealedmeta]/castellan sections
    (here: dev-openstack's, for its Barbican)."""
    with open(barbican_conf) as handle:
        sealedmeta_sections = handle.read()
    path.write_text(
        "[DEFAULT]\n"
        "state_path = %s\n"
        "backup_driver = %s\n"
        "backup_posix_path = %s\n"
        "backup_file_size = %d\n"
        "backup_sha_block_size_bytes = %d\n"
        "backup_enable_progress_timer = false\n"
        "transport_url = fake:/\n"
        "[database]\nconnection = sqlite:///%s/cinder.sqlite\n"
        "[oslo_messaging_notifications]\ndriver = test\n"
        % (state, helpers.SEALED_POSIX, backups, helpers.CHUNK,
           helpers.SHA_BLOCK, state) + sealedmeta_sections)
    os.chmod(path, 0o600)
    return str(path)


def cloud_b(conf, job, tmp_path):
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps(job))
    proc = subprocess.run(
        [sys.executable, "-m", "tests.cinder.dr_cloud", conf, str(job_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, cwd=TOP, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def test_disaster_recovery_to_a_new_cloud(cloud, mgr, keys, barbican,
                                          tmp_path):
    commands = runbook()
    steps = [step_of(shlex.split(c)) for _, c in commands]
    assert steps == STEPS, "the runbook's steps changed: %s" % steps

    # Cloud A: sealed backups, one made before the switch, one that an
    # attacker will edit in the store.
    bootable = cloud.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    other = cloud.volume(glance=helpers.OTHER_GLANCE)
    old = cloud.volume(glance=helpers.GLANCE)
    sealed = cloud.backup(bootable)
    tampered = cloud.backup(other)
    legacy = cloud.backup(old, cls=helpers.stock_class())
    backups = {b.id: b for b in (sealed, tampered, legacy)}
    sources = {sealed.id: bootable, tampered.id: other, legacy.id: old}
    store = cfg.CONF.backup_posix_path

    escrow = tmp_path / "escrow"
    (escrow / "records").mkdir(parents=True)
    escrow_conf = escrow / "escrow.conf"
    escrow_conf.write_text("[sealedmeta]\nkey_repository = %s\n"
                           % (escrow / "sealedmeta-keys"))
    state_b = tmp_path / "cloud-b"
    (state_b / "volumes").mkdir(parents=True)
    conf_b = cloud_b_conf(tmp_path / "cinder-b.conf", barbican, store, state_b)
    paths = {"/var/lib/sealedmeta/keys": keys.path,
             "/escrow/escrow.conf": str(escrow_conf),
             "/etc/sealedmeta/sealedmeta.conf": barbican,
             "/var/lib/cinder/backup": store}
    job = {"project_id": cloud.project_id, "user_id": cloud.user_id,
           "volume_dir": str(state_b / "volumes"), "ops": []}

    lost = False
    results = []
    for (lineno, command), step in zip(commands, steps):
        where = "%s:%d: %s" % (GUIDE, lineno, command)
        args = [paths.get(a, a) for a in shlex.split(command)]
        if step == "record export":        # cloud A, as an administrator
            records = {}
            for backup_id in backups:
                backup = objects.Backup.get_by_id(cloud.ctxt, backup_id)
                records[backup_id] = mgr.export_record(cloud.ctxt, backup)
                (escrow / "records" / ("%s.json" % backup_id)).write_text(
                    json.dumps(records[backup_id]))
            continue
        if step == "record import":        # cloud B
            job["ops"] += [{"op": "import", "record": json.loads(p.read_text())}
                           for p in sorted((escrow / "records").iterdir())]
            continue
        if step == "restore":              # cloud B
            job["ops"] += [{"op": "restore", "backup_id": b} for b in sorted(backups)]
            continue
        if step == "cinder mark-legacy":   # cloud B, after its imports
            results += cloud_b(conf_b, job, tmp_path)
            job["ops"] = []
            args = [conf_b if a == "/etc/cinder/cinder.conf" else a for a in args]
            glob = args.index("/escrow/records/*.json")
            args[glob:glob + 1] = sorted(str(p) for p in (escrow / "records").iterdir())
            proc = cli(*args[1:])
            assert proc.returncode == 0, where + "\n" + proc.stdout + proc.stderr
            marked = {row["backup_id"]: row["result"] for row in json.loads(proc.stdout)}
            assert marked == {sealed.id: "no-claim", tampered.id: "no-claim",
                              legacy.id: "marked"}, marked
            continue
        if args[1:3] == ["--config-file", str(escrow_conf)] and not lost:
            # The disaster: cloud A's key store and database are gone. The
            # attacker edits a sealed backup's object in the store meanwhile.
            shutil.rmtree(keys.path)
            obj = cloud.read_object(tampered)
            meta = json.loads(cloud.driver().get_metadata(other))
            meta["volume-glance-metadata"]["billing_code_licence"] = "FREE"
            obj["volume_meta"] = json.dumps(meta)
            cloud.write_object(tampered, obj)
            lost = True
        proc = cli(*args[1:])
        if step == "verify":
            # Exit 1: the legacy object is not sealed, the edited one is not
            # sealed either although a sealed driver made it.
            assert proc.returncode == 1, where + "\n" + proc.stdout + proc.stderr
            continue
        assert proc.returncode == 0, where + "\n" + proc.stdout + proc.stderr
        if step == "keyring show":
            assert "active" in proc.stdout, where + "\n" + proc.stdout
    assert lost and not os.path.exists(keys.path)

    results += cloud_b(conf_b, job, tmp_path)
    imports = [r for r in results if r["op"] == "import"]
    assert [r.get("error") for r in imports] == [None] * 3, imports
    assert {r["service"] for r in imports} == {helpers.SEALED_POSIX}
    restores = {r["backup_id"]: r for r in results if r["op"] == "restore"}
    for backup_id in (sealed.id, legacy.id):
        got = restores[backup_id]
        assert got.get("error") is None, got
        assert got["volume_status"] == "available"
        assert got["glance"] == helpers.GLANCE
        assert got["bootable"] is True
        assert got["sha256"] == sha256(cloud.data(sources[backup_id]))
    refused = restores[tampered.id]
    assert refused["error"] == "InvalidBackup", refused
    assert "not sealed" in refused["message"]
    assert refused["volume_status"] == "error_restoring"
    assert refused["glance"] == {} and refused["bootable"] is False
