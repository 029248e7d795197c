"""``sealedmeta cinder audit``: every backup in the Cinder database judged
through the real posix driver classes, with the real command line (cliff
app, entry point ``cinder_audit``) in this process, where the database is."""

import datetime
import json
import os
import shlex

import pytest
from oslo_config import cfg
from oslo_utils import timeutils

from cinder import exception
from cinder import objects
from sealedmeta.cinder import audit

from tests.cinder import helpers
from tests.cinder import test_policy_check
from tests.cinder.test_policy_check import policy_file  # noqa: F401 - fixture
from tests.cinder.test_reseal import cinder_conf  # noqa: F401 - fixture
from tests.sm_cli import run_in_process as run_cli

CONF = cfg.CONF


def audit_json(capsys, conf, *args):
    code, out, err = run_cli(capsys, "--config-file", conf, "cinder", "audit",
                             *args, "-f", "json")
    return code, {row["backup_id"]: row for row in json.loads(out)}, err


@pytest.fixture
def fleet(cloud):
    """Backups of two projects, one of each class; ``{name: backup}``."""
    return build_fleet(cloud)


def build_fleet(cloud, ids=None):
    """The backups of :func:`fleet`; *ids*: ``{name: (backup id, volume
    id)}`` to give them (default: random)."""
    made = {}
    first = cloud.project_id

    def backup(name, glance=None, **kwargs):
        backup_id, volume_id = (ids or {}).get(name, (None, None))
        return cloud.backup(cloud.volume(glance=glance, volume_id=volume_id),
                            backup_id=backup_id, **kwargs)

    made["sealed"] = backup("sealed", glance=helpers.GLANCE)
    made["legacy"] = backup("legacy", cls=helpers.stock_class())
    cloud.project_id = "second-project"
    made["sealed2"] = backup("sealed2")
    made["tampered"] = backup("tampered")
    obj = cloud.read_object(made["tampered"])
    value = obj["volume_meta"]
    middle = len(value) // 2
    obj["volume_meta"] = value[:middle] + ("A" if value[middle] != "A" else "B") \
        + value[middle + 1:]
    cloud.write_object(made["tampered"], obj)
    made["copied"] = backup("copied")
    obj = cloud.read_object(made["copied"])
    obj["volume_meta"] = cloud.read_object(made["sealed2"])["volume_meta"]
    cloud.write_object(made["copied"], obj)
    made["stripped"] = backup("stripped")
    obj = cloud.read_object(made["stripped"])
    obj["volume_meta"] = json.dumps({"version": 2})
    cloud.write_object(made["stripped"], obj)
    made["missing"] = backup("missing")
    os.unlink(cloud.metadata_path(made["missing"]))
    cloud.project_id = first
    return made


def mixed_fleet(cloud, other, stock_class):
    """{name: (backup, expected class)} for the object stores: one backup of
    each class in *cloud*'s project, edited or deleted through the store's
    own API (the cloud's ``read_object``, ``write_raw_object`` and
    ``delete_object``), and two sealed ones in *other*'s project."""
    made = {}

    def add(name, which, expected, **kwargs):
        made[name] = (which.backup(which.volume(glance=helpers.GLANCE), **kwargs),
                      expected)
        return made[name][0]

    add("sealed", cloud, audit.VALID)
    add("legacy", cloud, audit.LEGACY, cls=stock_class)
    tampered = add("tampered", cloud, audit.INVALID)
    obj = cloud.read_object(tampered)
    value = obj["volume_meta"]
    middle = len(value) // 2
    obj["volume_meta"] = value[:middle] + ("A" if value[middle] != "A" else "B") \
        + value[middle + 1:]
    cloud.write_raw_object(tampered, json.dumps(obj).encode())
    copied = add("copied", cloud, audit.CONTEXT_MISMATCH)
    obj = cloud.read_object(copied)
    obj["volume_meta"] = cloud.read_object(made["sealed"][0])["volume_meta"]
    cloud.write_raw_object(copied, json.dumps(obj).encode())
    missing = add("missing", cloud, audit.MISSING)
    cloud.delete_object(missing)
    add("other-sealed", other, audit.VALID)
    add("other-sealed-2", other, audit.VALID)
    return made


def check_mixed_fleet(fleet, rows, err, other_project):
    """The report and summary of an audit of :func:`mixed_fleet`."""
    assert {name: rows[backup.id]["class"] for name, (backup, _) in fleet.items()} \
        == {name: expected for name, (_, expected) in fleet.items()}
    for name, (backup, expected) in fleet.items():
        row = rows[backup.id]
        assert row["project_id"] == backup.project_id
        if expected in (audit.VALID, audit.LEGACY, audit.MISSING):
            assert row["key_version"] == (1 if expected == audit.VALID
                                          else None), (name, row)
    assert "summary: 7 backups: valid 3, legacy 1, invalid 1," \
        " context-mismatch 1, missing 1, unreadable 0" in err
    assert "project %s: valid 2\n" % other_project in err
    assert "key version 1: 3 valid" in err


EXPECTED = {"sealed": audit.VALID, "legacy": audit.LEGACY,
            "sealed2": audit.VALID, "tampered": audit.INVALID,
            "copied": audit.CONTEXT_MISMATCH, "stripped": audit.INVALID,
            "missing": audit.MISSING}


def classes(rows, fleet):
    return {name: rows[b.id]["class"] for name, b in fleet.items()}


def test_each_backup_lands_in_its_class(fleet, capsys, cinder_conf):  # noqa: F811
    code, rows, err = audit_json(capsys, cinder_conf, "--workers", "3")
    assert code == 1
    assert classes(rows, fleet) == EXPECTED
    assert len(rows) == len(fleet)
    assert rows[fleet["sealed"].id]["key_version"] == 1
    assert rows[fleet["legacy"].id]["key_version"] is None
    assert "missing" in rows[fleet["missing"].id]["reason"]
    assert "ContextMismatch" in rows[fleet["copied"].id]["reason"]
    assert "summary: 7 backups: valid 2, legacy 1, invalid 2," \
        " context-mismatch 1, missing 1, unreadable 0" in err
    assert "project second-project: valid 1, invalid 2," \
        " context-mismatch 1, missing 1" in err
    assert "key version 1: 2 valid" in err


def test_exit_zero_when_all_sealed_and_valid(fleet, capsys, cinder_conf):  # noqa: F811
    project = fleet["sealed"].project_id
    code, rows, err = audit_json(capsys, cinder_conf, "--project", project,
                                 "--status", "available")
    assert code == 1  # the project's legacy backup
    fleet["legacy"].destroy()
    code, rows, err = audit_json(capsys, cinder_conf, "--project", project)
    assert code == 0
    assert list(rows) == [fleet["sealed"].id]
    code, rows, err = audit_json(capsys, cinder_conf, "--since", "2999-01-01")
    assert (code, rows) == (0, {})


def test_cannot_run_exits_2(fleet, capsys, cinder_conf):  # noqa: F811
    code, out, err = run_cli(capsys, "cinder", "audit")
    assert code == 2 and "needs Cinder's configuration" in err
    code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder", "audit",
                             "--shard", "3/2")
    assert code == 2 and "bad --shard" in err
    code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder", "audit",
                             "--workers", "0")
    assert code == 2 and "--workers must be at least 1" in err


def test_state_resumes_without_reading_finished_backups(fleet, cloud, capsys,
                                                        cinder_conf, tmp_path):  # noqa: F811
    state = tmp_path / "audit.state"
    code, full, err = audit_json(capsys, cinder_conf, "--state", str(state))
    header, *lines = state.read_text().splitlines()
    assert json.loads(header) == {"selection": {
        "project": None, "status": None, "since": None, "shard": None,
        "public_keys": False, "chain": False}}
    assert len(lines) == len(fleet)
    # As a kill would leave it: two rows finished, a third half written.
    state.write_text("\n".join([header] + lines[:2]) + "\n" + lines[2][:20])
    finished = [json.loads(line)["backup_id"] for line in lines[:2]]
    for backup_id in finished:  # not read again: their rows stay as recorded
        path = cloud.metadata_path(objects.Backup.get_by_id(cloud.ctxt, backup_id))
        if os.path.exists(path):
            os.unlink(path)
    code, resumed, err = audit_json(capsys, cinder_conf, "--state", str(state))
    assert resumed == full
    assert code == 1


def test_two_shards_make_the_whole_report(fleet, capsys, cinder_conf,  # noqa: F811
                                          tmp_path):
    code, full, err_full = audit_json(capsys, cinder_conf)
    code1, one, err = audit_json(capsys, cinder_conf, "--shard", "1/2")
    code2, two, err = audit_json(capsys, cinder_conf, "--shard", "2/2")
    assert not set(one) & set(two)
    assert {**one, **two} == full
    paths = []
    for number in (1, 2):
        code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder", "audit",
                                 "--shard", "%d/2" % number, "-f", "json")
        paths.append(tmp_path / ("shard%d.json" % number))
        paths[-1].write_text(out)
    code, out, merged_err = run_cli(capsys, "cinder", "audit-merge", *map(str, paths),
                                    "-f", "json")
    assert code == 1
    assert {row["backup_id"]: row for row in json.loads(out)} == full
    assert merged_err.splitlines()[-4:] == [
        line for line in err_full.splitlines() if not line.startswith("Cinder policy")][-4:]
    code, out, err = run_cli(capsys, "cinder", "audit-merge", str(paths[0]), str(paths[0]))
    assert code == 2 and "is in two reports" in err


def test_state_is_read_alongside_the_database(tmp_path):
    """Rows are found in id order, a line at a time: a line too long to be
    a row, a blank line and a half-written last line are passed over, and
    the rows this run appends are not read back."""
    rows = [audit.Row("%08d" % n, "p", "v", "available", audit.VALID, 1)
            for n in range(5)]
    path = tmp_path / "audit.state"
    lines = [json.dumps(row.as_dict()) for row in rows]
    header = json.dumps({"selection": {}})
    path.write_text("\n".join([header] + lines[:2]
                              + ["x" * (3 * audit.State.MAX_LINE), ""]
                              + lines[2:4]) + "\n" + lines[4][:30])
    state = audit.State(str(path))
    try:
        assert state.recorded("00000000") == rows[0]
        assert state.recorded("00000001a") is None  # not recorded
        state.record(audit.Row("00000009", "p", "v", "available", audit.LEGACY))
        assert state.recorded("00000002") == rows[2]
        assert state.recorded("00000003") == rows[3]
        assert state.recorded("00000004") is None   # its line was cut short
        assert state.recorded("00000009") is None   # appended by this run
    finally:
        state.close()
    assert path.read_text().splitlines()[-1].startswith('{"backup_id": "00000009"')


def test_a_state_file_of_another_selection_is_refused(fleet, capsys, cinder_conf,  # noqa: F811
                                                      tmp_path):
    state = tmp_path / "audit.state"
    code, full, err = audit_json(capsys, cinder_conf, "--state", str(state),
                                 "--shard", "1/2")
    before = state.read_bytes()
    for args in (("--shard", "2/2"), ("--project", "second-project"), ()):
        code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder",
                                 "audit", "--state", str(state), *args, "-f", "json")
        assert code == 2, args
        assert "written by an audit of another selection" in err
        assert state.read_bytes() == before
    other = tmp_path / "not-a-state"
    other.write_text("some notes\n")
    code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder", "audit",
                             "--state", str(other))
    assert code == 2 and "not a state file" in err
    assert other.read_text() == "some notes\n"


def test_public_keys_judge_without_any_key_store(cloud, keys, capsys, tmp_path):
    """--public-keys: signatures, headers and contexts checked with the
    public keys file alone (the configuration names no usable key store).
    A suite 1 envelope made with the symmetric key of a signing version is
    invalid; one under a version without a key pair cannot be checked."""
    from sealedmeta import envelope
    from sealedmeta import public
    from sealedmeta.cinder import options
    from sealedmeta.cinder import volume_meta as vm
    from tests.unit.helpers import seal_raw

    made = {"unsigned": cloud.backup(cloud.volume(glance=helpers.GLANCE))}
    keys.rotate("cinder-backup", signing=True)       # version 2 has a key pair
    options.clear_sealer_cache()
    for name in ("signed", "tampered", "copied", "forged"):
        made[name] = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    made["legacy"] = cloud.backup(cloud.volume(), cls=helpers.stock_class())
    obj = cloud.read_object(made["tampered"])
    value = obj["volume_meta"]
    obj["volume_meta"] = value[:-10] + ("A" if value[-10] != "A" else "B") + value[-9:]
    cloud.write_object(made["tampered"], obj)
    obj = cloud.read_object(made["copied"])
    obj["volume_meta"] = cloud.read_object(made["signed"])["volume_meta"]
    cloud.write_object(made["copied"], obj)
    forged = made["forged"]
    obj = cloud.read_object(forged)
    obj["volume_meta"] = envelope.armor(seal_raw(
        keys.get_key("cinder-backup", 2), "cinder-backup", 2,
        envelope.encode_payload({"forged": True}),
        context=vm.context_for(forged.id, forged.volume_id)))
    cloud.write_object(forged, obj)

    pub = tmp_path / "public-keys.json"
    pub.write_bytes(public.dumps([keys.get_keyring("cinder-backup")]))
    conf = tmp_path / "cinder-no-keys.conf"
    conf.write_text("[DEFAULT]\nbackup_driver = %s\nbackup_posix_path = %s\n"
                    "[database]\nconnection = sqlite://\n[sealedmeta]\n"
                    "key_repository = %s\n" % (helpers.SEALED_POSIX,
                                                CONF.backup_posix_path,
                                                tmp_path / "no-such-keys"))
    code, rows, err = audit_json(capsys, str(conf), "--public-keys", str(pub))
    assert code == 1, err
    assert {name: rows[b.id]["class"] for name, b in made.items()} == {
        "unsigned": audit.UNSIGNED, "signed": audit.VALID,
        "tampered": audit.INVALID, "copied": audit.CONTEXT_MISMATCH,
        "forged": audit.INVALID, "legacy": audit.LEGACY}
    assert rows[made["signed"].id]["key_version"] == 2
    assert not os.path.exists(tmp_path / "no-such-keys")


def test_chain_gives_an_incremental_the_class_of_a_bad_parent(cloud, capsys,
                                                                 cinder_conf):  # noqa: F811
    src = cloud.volume(glance=helpers.GLANCE)
    full = cloud.backup(src)
    cloud.write(src, 0, b"newer" * 100)
    middle = cloud.backup(src, parent=full)
    cloud.write(src, 0, b"newest" * 100)
    last = cloud.backup(src, parent=middle)
    obj = cloud.read_object(full)
    value = obj["volume_meta"]
    obj["volume_meta"] = value[:-10] + ("A" if value[-10] != "A" else "B") + value[-9:]
    cloud.write_object(full, obj)

    code, plain, err = audit_json(capsys, cinder_conf)
    assert [plain[b.id]["class"] for b in (full, middle, last)] == [
        audit.INVALID, audit.VALID, audit.VALID]
    code, chained, err = audit_json(capsys, cinder_conf, "--chain")
    assert code == 1
    assert [chained[b.id]["class"] for b in (full, middle, last)] == [
        audit.INVALID] * 3
    for backup in (middle, last):
        assert chained[backup.id]["reason"].startswith("parent %s: invalid" % full.id)


def test_chain_under_reject_refuses_an_incremental_of_a_legacy_parent(
        cloud, capsys, cinder_conf, tmp_path):  # noqa: F811
    """Under legacy_backups = reject a restore of a sealed incremental whose
    parent was made before sealing is refused (the whole chain is judged
    first): the audit gives the incremental the class the restore acts on,
    not valid. Under trust the same chain restores, and is fine."""
    src = cloud.volume(glance=helpers.GLANCE)
    full = cloud.backup(src, cls=helpers.stock_class())
    cloud.write(src, 0, b"newer" * 100)
    last = cloud.backup(src, parent=full)

    code, rows, err = audit_json(capsys, cinder_conf, "--chain")
    assert [rows[b.id]["class"] for b in (full, last)] == [audit.LEGACY,
                                                           audit.VALID]
    reject = tmp_path / "reject.conf"
    reject.write_text(open(cinder_conf).read() + "legacy_backups = reject\n")
    code, rows, err = audit_json(capsys, str(reject), "--chain")
    assert code == 1, err
    assert [rows[b.id]["class"] for b in (full, last)] == [audit.LEGACY] * 2
    assert rows[last.id]["reason"].startswith("parent %s: legacy (" % full.id)
    assert "legacy_backups = reject" in rows[last.id]["reason"]
    # What a restore does with that chain under reject.
    CONF.set_override("legacy_backups", "reject", group="sealedmeta")
    with pytest.raises(exception.InvalidBackup, match="made before sealing"):
        cloud.restore(last, cloud.new_target())


def test_chain_refuses_a_loop_in_the_database(cloud, capsys, cinder_conf):  # noqa: F811
    src = cloud.volume(glance=helpers.GLANCE)
    first = cloud.backup(src)
    cloud.write(src, 0, b"newer" * 100)
    second = cloud.backup(src, parent=first)
    first.parent_id = second.id     # what a broken or edited database says
    first.save()

    code, rows, err = audit_json(capsys, cinder_conf, "--chain")
    assert code == 1, err
    for backup in (first, second):
        assert rows[backup.id]["class"] == audit.INVALID
        assert "a loop in the chain" in rows[backup.id]["reason"]


def test_chain_gives_missing_for_a_parent_not_in_the_database(cloud, capsys,
                                                             cinder_conf):  # noqa: F811
    import uuid

    src = cloud.volume(glance=helpers.GLANCE)
    first = cloud.backup(src)
    cloud.write(src, 0, b"newer" * 100)
    second = cloud.backup(src, parent=first)
    gone = str(uuid.uuid4())
    second.parent_id = gone
    second.save()

    code, rows, err = audit_json(capsys, cinder_conf, "--chain")
    assert code == 1, err
    assert rows[first.id]["class"] == audit.VALID
    assert rows[second.id]["class"] == audit.MISSING
    assert rows[second.id]["reason"] == (
        "parent %s: missing (no such backup in the database)" % gone)


def test_chain_reads_the_database_in_one_thread(cloud, capsys, cinder_conf,  # noqa: F811
                                                monkeypatch):
    """Parents are looked up by the thread that pages the database, not
    by the workers: a database connection (SQLite's in-process one above
    all) is not shared between threads, and sharing it broke audits."""
    import threading

    for _ in range(3):
        src = cloud.volume(glance=helpers.GLANCE)
        parent = cloud.backup(src)
        for n in range(3):
            cloud.write(src, 0, b"%d" % n * 100)
            parent = cloud.backup(src, parent=parent)
    threads = set()
    real = objects.Backup.get_by_id.__func__

    def get_by_id(cls, *args, **kwargs):
        threads.add(threading.current_thread())
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(objects.Backup, "get_by_id", classmethod(get_by_id))
    code, rows, err = audit_json(capsys, cinder_conf, "--chain", "--workers", "4")
    assert code == 0, err
    assert len(rows) == 12 and {r["class"] for r in rows.values()} == {
        audit.VALID}
    assert threads == {threading.current_thread()}


def test_key_destroy_scan_cinder_refuses_while_a_backup_is_under_the_version(
        cloud, keys, capsys, cinder_conf, tmp_path):  # noqa: F811
    """key destroy --scan-cinder reads every backup of the Cinder database
    through the driver: a version is not destroyed while any backup's
    metadata is under it (legacy and missing objects do not hold it)."""
    from sealedmeta.cinder import options

    old = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    keys.rotate("cinder-backup")
    keys.set_state("cinder-backup", 1, "retired")
    options.clear_sealer_cache()
    cloud.backup(cloud.volume(glance=helpers.GLANCE))             # version 2
    cloud.backup(cloud.volume(), cls=helpers.stock_class())        # legacy
    gone = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    os.unlink(cloud.metadata_path(gone))                           # missing
    conf = tmp_path / "sealedmeta.conf"
    # cache_ttl = 0: no agent runs beside the test's key destroy (the
    # agents' cinder.conf says the same: its window is checked too).
    conf.write_text("[sealedmeta]\nkey_repository = %s\ncache_ttl = 0\n" % keys.path)
    with open(cinder_conf, "a") as handle:
        handle.write("cache_ttl = 0\n")

    code, out, err = run_cli(capsys, "--config-file", str(conf), "key", "destroy",
                             "cinder-backup", "1", "--scan-cinder", cinder_conf)
    assert code == 1, err
    assert "the scan found 1 envelope under it: cinder backup %s" % old.id in err
    assert keys.get_keyring("cinder-backup").version(1).state.value == "retired"

    cloud.driver().delete_backup(old)
    old.destroy()
    code, out, err = run_cli(capsys, "--config-file", str(conf), "key", "destroy",
                             "cinder-backup", "1", "--scan-cinder", cinder_conf)
    assert code == 0, err
    assert keys.get_keyring("cinder-backup").version(1).state.value == "destroyed"


def test_key_destroy_scan_cinder_waits_the_agents_settle_window(
        cloud, keys, capsys, cinder_conf, tmp_path):  # noqa: F811
    """The settle window counts with the cache_ttl + stale_grace of the
    configuration key destroy runs with, not the agents'. With
    --scan-cinder it reads theirs in cinder.conf and waits the longer one,
    saying so (it destroyed at once with its own cache_ttl = 0)."""
    cloud.backup(cloud.volume(glance=helpers.GLANCE))
    keys.rotate("cinder-backup")
    keys.set_state("cinder-backup", 1, "retired")
    conf = tmp_path / "sealedmeta.conf"
    conf.write_text("[sealedmeta]\nkey_repository = %s\ncache_ttl = 0\n" % keys.path)
    with open(cinder_conf, "a") as handle:
        handle.write("cache_ttl = 500\nstale_grace = 100\n")
    code, out, err = run_cli(capsys, "--config-file", str(conf), "key", "destroy",
                             "cinder-backup", "1", "--force", "--scan-cinder",
                             cinder_conf)
    assert code == 2, err
    text = " ".join(err.split())
    assert ("the agents' cache_ttl + stale_grace in cinder.conf (600s) is longer"
            " than this configuration's (0s): waiting 600s; give both the same"
            " values") in text
    assert ("refusing to destroy version 1 of keyring 'cinder-backup': it stopped"
            " being active at ") in text
    assert "(cache_ttl + stale_grace, 600s from the next whole second)" in text
    assert keys.get_keyring("cinder-backup").version(1).state.value == "retired"


# The audit page's transcript of a real run: the fleet above, with the ids
# and the clock the page shows.
PAGE = "docs/source/audit.rst"
PAGE_BLOCK = "cinder-audit-transcript"
PAGE_PROJECT = "1b6eaaca-60f8-40c1-9eb5-694f317a2c30"
PAGE_IDS = {
    "sealed": ("83a0b62d-2c1e-4f6b-9a3d-5e7f1b2c4d6e", "5e9c1a7b-0d2f-4a6c-8e1b-3d5f7a9c1e3b"),
    "legacy": ("0ca7352e-8b4d-4e2f-a6c1-9d3e5f7b1a2c", "6f1d2b8c-1e3a-4b7d-9f2c-4e6a8b0d2f4a"),
    "sealed2": ("09385980-4a6c-4d8e-b0f2-1a3c5e7d9f1b", "7a2e3c9d-2f4b-4c8e-a03d-5f7b9c1e3a5b"),
    "tampered": ("feecf4ae-5b7d-4e9f-81a3-2b4d6f8e0a2c", "8b3f4dae-3a5c-4d9f-b14e-6a8c0d2f4b6c"),
    "copied": ("6b07476e-6c8e-4fa0-92b4-3c5e7a9f1b3d", "9c4a5ebf-4b6d-4ea0-825f-7b9d1e3a5c7d"),
    "stripped": ("7c06294f-7d9f-4ab1-a3c5-4d6f8b0a2c4e", "ad5b6fc0-5c7e-4fb1-9360-8cae2f4b6d8e"),
    "missing": ("f9e7849d-8eaf-4bc2-b4d6-5e7a9c1b3d5f", "be6c70d1-6d8f-4ac2-a471-9dbf3a5c7e9f"),
}
PAGE_TIME = datetime.datetime(2026, 3, 14, 9, 26, 53)


def page_transcript():
    """(command argv after ``sealedmeta``, the lines it shows, the exit
    status shown) of the page's block named PAGE_BLOCK."""
    from tests import doc_blocks
    blocks = [body for _, _, options, body in doc_blocks._RST.code_blocks(
        doc_blocks.read(PAGE)) if options.get("name") == PAGE_BLOCK]
    assert len(blocks) == 1, "%s has no block named %s" % (PAGE, PAGE_BLOCK)
    lines = blocks[0].splitlines()
    command = lines.pop(0)
    while command.endswith("\\"):
        command = command[:-1] + lines.pop(0).strip()
    assert command.startswith("$ sealedmeta "), command
    assert lines[-2:-1] == ["$ echo $?"], lines[-2:]
    return shlex.split(command[len("$ sealedmeta "):]), lines[:-2], int(lines[-1])


def test_the_audit_pages_transcript_is_a_real_run(cloud, capsys, cinder_conf,  # noqa: F811
                                                  policy_file):  # noqa: F811
    argv, shown, status = page_transcript()
    # As the page says: Cinder's policy file closes the rules its defaults
    # leave open (else each is named on standard error).
    policy_file("".join('"%s": "rule:admin_api"\n' % rule for rule in (
        test_policy_check.IMAGE_SET, test_policy_check.IMAGE_REMOVE,
        test_policy_check.UPDATE, test_policy_check.BACKUP_UPDATE)))
    cloud.project_id = PAGE_PROJECT
    timeutils.set_time_override(PAGE_TIME)
    try:
        build_fleet(cloud, PAGE_IDS)
    finally:
        timeutils.clear_time_override()
    argv = [cinder_conf if a == "cinder.conf" else a for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert (out + err).rstrip("\n").splitlines() == shown
    assert code == status
