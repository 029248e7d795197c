"""sealedmeta.audit: statuses, the JSON report, never writing."""

import json
import os

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import armor
from sealedmeta import audit
from sealedmeta import carriers
from sealedmeta import envelope
from sealedmeta import exceptions
from sealedmeta import public
from sealedmeta import rewrap
from sealedmeta.cinder import carrier as cinder_carrier

from tests import sm_cli
from tests.unit.helpers import forge

RING = "cinder-backup"

ENTRY_KEYS = ["key_id", "keyring", "path", "reason", "status", "version"]
VERSION_KEYS = ["counts", "envelopes", "key_id", "keyring", "state", "version"]
SUMMARY_KEYS = ["all_valid", "counts", "envelopes", "files", "skipped"]


@pytest.fixture
def tree(tmp_path, store, ring):
    """One file per status, plus files that are skipped."""
    sealer = Sealer(store, keyring=RING, cache_ttl=0)
    root = tmp_path / "tree"
    (root / "sub").mkdir(parents=True)

    def seal(name, context, armoured=False):
        raw = sealer.seal({"name": name}, context)
        data = (armor(raw) + "\n").encode() if armoured else raw
        (root / name).write_bytes(data)
        return raw

    seal("retired.env", {"backup_id": "r"})
    seal("destroyed.env", {"backup_id": "d"})
    store.rotate(RING)
    seal("retired-too.env", {"backup_id": "r2"})
    store.rotate(RING)
    store.set_state(RING, 1, "retired")
    store.set_state(RING, 1, "destroyed")
    store.set_state(RING, 2, "retired")
    # version 1 destroyed, 2 retired, 3 active
    (root / "destroyed.env").rename(root / "destroyed-key.env")
    seal("valid.env", {"backup_id": "v", "volume_id": "vol"})
    seal("sub/valid-armoured.txt", {"backup_id": "v", "volume_id": "vol"},
         armoured=True)
    seal("mismatch.env", {"backup_id": "other"})
    raw = seal("invalid.env", {"backup_id": "v"})
    flipped = bytearray(raw)
    flipped[-40] ^= 1
    (root / "invalid.env").write_bytes(bytes(flipped))
    (root / "truncated.env").write_bytes(raw[:40])
    (root / "bad-armour.txt").write_text("sealedmeta:U01FVE!!!\n")
    foreign_store = FileKeyStore(str(tmp_path / "other-keys"))
    foreign_store.create_keyring(RING)
    (root / "unknown-key.env").write_bytes(
        Sealer(foreign_store, keyring=RING).seal({}, {"backup_id": "v"}))
    foreign_store.create_keyring("elsewhere")
    (root / "unknown-ring.env").write_bytes(
        Sealer(foreign_store, keyring="elsewhere").seal({}, {"backup_id": "v"}))
    (root / "notes.txt").write_text("not an envelope\n")
    (root / "sub" / "junk.bin").write_bytes(os.urandom(64))
    (root / ".tmp-abc123").write_bytes(raw)
    os.symlink("valid.env", root / "link.env")
    os.mkfifo(root / "fifo")
    return root


def test_every_status(tree, store):
    report = audit.Auditor(store, expect={"backup_id": "v"}).run(
        [str(tree), "/proc/self/mem"])
    status = {os.path.relpath(f.path, tree) if f.path.startswith(str(tree))
              else f.path: f.status for f in report.findings}
    assert status == {
        "valid.env": "valid",
        "sub/valid-armoured.txt": "valid",
        "mismatch.env": "context-mismatch",
        "invalid.env": "invalid",
        "truncated.env": "malformed",
        "bad-armour.txt": "malformed",
        "unknown-key.env": "unknown-key",
        "unknown-ring.env": "unknown-key",
        "retired.env": "destroyed-key",   # sealed under v1, now destroyed
        "destroyed-key.env": "destroyed-key",
        "retired-too.env": "retired-key",
        "/proc/self/mem": "unreadable",
    }
    skipped = {os.path.relpath(p, tree): r for p, r in report.skipped}
    assert skipped == {
        "notes.txt": "not an envelope",
        "sub/junk.bin": "not an envelope",
        ".tmp-abc123": "temporary file of an interrupted write",
        "link.env": "symbolic link, not followed",
        "fifo": "not a regular file",
    }
    assert not report.all_valid
    reasons = {os.path.basename(f.path): f.reason for f in report.findings}
    assert reasons["valid.env"] is None
    assert reasons["mismatch.env"] == "context differs from --expect in: backup_id"
    assert reasons["invalid.env"] == "envelope failed authentication"
    assert reasons["mem"] == "cannot read: Input/output error"
    assert "no keyring 'elsewhere'" in reasons["unknown-ring.env"]


def test_damaged_envelopes_are_findings_not_skips(tmp_path, store, ring,
                                                 capsys):
    # Which files are envelopes (docs/source/audit.rst): one named NAME.env,
    # or whose bytes after the magic are an envelope's, must be one. Its
    # first bytes damaged, it is malformed -- exit 1, named in the table --
    # while a file that looks like neither is skipped, listed and counted.
    sealer = Sealer(store, keyring=RING)
    root = tmp_path / "store"
    root.mkdir()
    raw = sealer.seal({"image_id": "1b6a2f4e"}, {"backup_id": "b1"})
    damaged = bytes([raw[0] ^ 1]) + raw[1:]
    (root / "b1.env").write_bytes(raw)
    (root / "b2.env").write_bytes(damaged)
    (root / "b3.env").write_text("hello\n")           # named as an envelope
    (root / "b4").write_bytes(damaged)                 # unnamed, damaged magic
    (root / "b5.txt").write_text(armor(raw)[:11] + "V" + armor(raw)[12:] + "\n")
    (root / "notes.txt").write_text("not an envelope\n")
    (root / "sealedmeta.log").write_text("sealedmeta: 1 of 1 envelopes\n")
    (root / ".env").write_text("DEBUG=1\n")            # a dotenv file
    code, out, err = sm_cli.run_in_process(
        capsys, "--key-repository", str(tmp_path / "keys"), "verify",
        str(root), "-f", "json")
    report = json.loads(out)
    status = {os.path.basename(e["path"]): (e["status"], e["reason"])
              for e in report["envelopes"]}
    magic = "malformed envelope: not a sealedmeta envelope (bad magic)"
    assert status == {
        "b1.env": ("valid", None),
        "b2.env": ("malformed", magic + ", yet named NAME.env"),
        "b3.env": ("malformed", magic + ", yet named NAME.env"),
        "b4": ("malformed", magic + ", yet an envelope's bytes follow it"),
        "b5.txt": ("malformed", magic),
    }
    assert sorted(os.path.basename(s["path"]) for s in report["skipped"]) == [
        ".env", "notes.txt", "sealedmeta.log"]
    assert report["summary"]["skipped"] == 3
    assert code == 1
    assert err == ("sealedmeta: 4 of 5 envelopes are not valid (malformed 4)\n")
    code, out, err = sm_cli.run_in_process(
        capsys, "--key-repository", str(tmp_path / "keys"), "verify",
        str(root / "b2.env"))
    assert code == 1
    assert "b2.env: malformed: " + magic in out


def test_json_report_schema(tree, store):
    report = audit.Auditor(store, expect={"backup_id": "v"}).run([str(tree)])
    data = json.loads(json.dumps(report.as_dict(), sort_keys=True))
    assert sorted(data) == ["envelopes", "format", "skipped", "summary", "versions"]
    assert data["format"] == 1
    assert sorted(data["summary"]) == SUMMARY_KEYS
    assert sorted(data["summary"]["counts"]) == sorted(audit.STATUSES)
    assert data["summary"]["counts"] == {
        "valid": 2, "invalid": 1, "malformed": 2, "unknown-key": 2,
        "retired-key": 1, "destroyed-key": 2, "context-mismatch": 1,
        "unreadable": 0, "unsealed": 0}
    assert data["summary"]["envelopes"] == 11 == len(data["envelopes"])
    assert data["summary"]["skipped"] == 5 == len(data["skipped"])
    assert data["summary"]["files"] == 16
    assert data["summary"]["all_valid"] is False
    for entry in data["envelopes"]:
        assert sorted(entry) == ENTRY_KEYS
    paths = [e["path"] for e in data["envelopes"]]
    assert paths == sorted(paths)
    for entry in data["skipped"]:
        assert sorted(entry) == ["path", "reason"]
    rows = [(v["keyring"], v["version"], v["state"], v["envelopes"],
             v["counts"]["valid"]) for v in data["versions"]]
    for row in data["versions"]:
        assert sorted(row) == VERSION_KEYS
        assert sorted(row["counts"]) == sorted(audit.STATUSES)
    ring = store.get_keyring(RING)
    # Every version of the keyring, with its counts; foreign key ids as
    # "unknown" (two: another store's cinder-backup v1 and 'elsewhere' v1).
    known = [r for r in rows if r[2] != "unknown"]
    assert known == [(RING, 1, "destroyed", 2, 0), (RING, 2, "retired", 1, 0),
                     (RING, 3, "active", 4, 2)]  # valid x2, mismatch, invalid
    unknown = sorted((r[0], r[1], r[3]) for r in rows if r[2] == "unknown")
    assert unknown == [(RING, 1, 1), ("elsewhere", 1, 1)]
    assert [v["key_id"] for v in data["versions"] if v["state"] != "unknown"] == [
        v.key_id.hex() for v in ring.versions]


def test_all_valid_and_version_counts(tmp_path, store, ring):
    sealer = Sealer(store, keyring=RING, cache_ttl=0)
    for i in range(3):
        (tmp_path / ("e%d" % i)).write_bytes(sealer.seal({}, {"backup_id": str(i)}))
    store.rotate(RING)
    (tmp_path / "e3").write_bytes(sealer.seal({}, {"backup_id": "3"}))
    report = audit.audit(store, [str(tmp_path / n) for n in ("e0", "e1", "e2", "e3")])
    assert report.all_valid
    assert [(v["version"], v["state"], v["envelopes"]) for v in report.versions()] == [
        (1, "decrypt-only", 3), (2, "active", 1)]
    assert len(report.under(RING, store.get_keyring(RING).version(1).key_id)) == 3


def test_nothing_found_is_not_all_valid(tmp_path, store, ring):
    (tmp_path / "junk").write_text("x")
    report = audit.audit(store, [str(tmp_path)])
    assert not report.all_valid and report.findings == []


def test_audit_never_writes(tree, store, tmp_path):
    before = sm_cli.tree_digest(tree, tmp_path / "keys")
    audit.Auditor(store).run([str(tree)])
    assert sm_cli.tree_digest(tree, tmp_path / "keys") == before


def test_missing_path_stops_before_reading(store, ring, tmp_path):
    with pytest.raises(carriers.PathError, match="nope: no such file or directory"):
        audit.audit(store, [str(tmp_path), str(tmp_path / "nope")])


def test_unreachable_store_stops_the_audit(tmp_path, store, ring):
    sealer = Sealer(store, keyring=RING)
    (tmp_path / "e").write_bytes(sealer.seal({}, {"backup_id": "1"}))
    os.chmod(store.path, 0o755)  # the file store refuses a non-private repository
    with pytest.raises(exceptions.KeyStoreError, match="lets group or others in"):
        audit.audit(store, [str(tmp_path / "e")])


def test_bad_expect_is_refused(store):
    with pytest.raises(exceptions.InvalidMetadata, match="bad --expect"):
        audit.Auditor(store, expect={"bad key!": "x"})


def test_keyring_cache_refreshes_on_unknown_key_id(tmp_path, store, ring):
    """A rotation during the audit: an envelope under the new version is
    valid, not unknown-key."""
    cache = audit.KeyringCache(store, refresh_interval=0)
    sealer = Sealer(store, keyring=RING, cache_ttl=0)
    auditor = audit.Auditor(store)
    auditor.rings = cache
    (tmp_path / "a").write_bytes(sealer.seal({}, {"backup_id": "a"}))
    assert auditor.run([str(tmp_path / "a")]).all_valid
    store.rotate(RING)
    (tmp_path / "b").write_bytes(sealer.seal({}, {"backup_id": "b"}))
    assert auditor.run([str(tmp_path / "b")]).all_valid


# -- carriers that know the context an envelope must have --------------------

def cinder_object(path, backup_id, volume_id, armour):
    """A Cinder ``*_metadata`` object as the chunked drivers write it."""
    path.write_text(json.dumps({
        "backup_id": backup_id, "volume_id": volume_id, "version": "1.0.0",
        "backup_name": None, "volume_meta": armour, "objects": []},
        sort_keys=True, indent=2))


@pytest.fixture
def copied(tmp_path, store, ring):
    """backups/: backup_b-donor_metadata sealed for its own ids;
    backup_b-victim_metadata holding the donor's envelope."""
    sealer = Sealer(store, keyring=RING)
    root = tmp_path / "backups"
    root.mkdir()
    donor = armor(sealer.seal({"glance": "x"},
                              {"backup_id": "b-donor", "volume_id": "v-1"}))
    cinder_object(root / "backup_b-donor_metadata", "b-donor", "v-1", donor)
    cinder_object(root / "backup_b-victim_metadata", "b-victim", "v-1", donor)
    return root


CINDER_CARRIERS = [cinder_carrier.CinderMetadataCarrier(),
                   carriers.RawCarrier()]


def test_envelope_copied_to_another_cinder_object_is_a_context_mismatch(
        copied, store):
    report = audit.Auditor(store, carriers=CINDER_CARRIERS).run([str(copied)])
    found = {os.path.basename(f.path): f for f in report.findings}
    assert found["backup_b-donor_metadata"].status == "valid"
    victim = found["backup_b-victim_metadata"]
    assert victim.status == "context-mismatch"
    assert victim.reason == (
        "sealed for another context than its file expects (cinder-metadata):"
        " backup_id is 'b-donor', not 'b-victim'")
    # Authentic under a known version: counted under it like any envelope.
    assert (victim.keyring, victim.version) == (RING, 1)
    data = report.as_dict()
    assert data["format"] == 1
    assert data["summary"]["counts"]["context-mismatch"] == 1
    assert data["summary"]["counts"]["malformed"] == 0
    assert data["versions"][0]["counts"]["context-mismatch"] == 1


def test_expect_and_the_files_context_are_one_check(copied, store):
    report = audit.Auditor(store, expect={"volume_id": "v-2"},
                           carriers=CINDER_CARRIERS).run([str(copied)])
    reasons = {os.path.basename(f.path): (f.status, f.reason)
               for f in report.findings}
    assert reasons == {
        "backup_b-donor_metadata": ("context-mismatch",
                           "context differs from --expect in: volume_id"),
        "backup_b-victim_metadata": ("context-mismatch",
                            "context differs from --expect in: volume_id;"
                            " sealed for another context than its file"
                            " expects (cinder-metadata): backup_id is"
                            " 'b-donor', not 'b-victim'"),
    }


def test_forged_context_is_invalid_not_a_mismatch(copied, store):
    """The header rewritten to the object's own ids: authentication fails
    first, so the file's context never makes it look authentic."""
    victim = copied / "backup_b-victim_metadata"
    obj = json.loads(victim.read_text())
    forged = forge(envelope.dearmor(obj["volume_meta"]),
                   context={"backup_id": "b-victim", "volume_id": "v-1"})
    cinder_object(victim, "b-victim", "v-1", armor(forged))
    report = audit.Auditor(store, carriers=CINDER_CARRIERS).run([str(victim)])
    assert [f.status for f in report.findings] == ["invalid"]


def test_public_mode_reports_a_copied_envelope_as_a_context_mismatch(tmp_path):
    store = FileKeyStore(str(tmp_path / "keys"))
    store.create_keyring(RING, signing=True)
    signed = armor(Sealer(store, keyring=RING).seal(
        {}, {"backup_id": "b-donor", "volume_id": "v-1"}))
    root = tmp_path / "backups"
    root.mkdir()
    cinder_object(root / "backup_b-victim_metadata", "b-victim", "v-1", signed)
    rings = public.parse(public.dumps([store.get_keyring(RING)]))
    report = audit.public_audit(rings, [str(root)], carriers=CINDER_CARRIERS)
    data = report.as_dict()
    assert (data["format"], data["mode"]) == (2, "public")
    assert [(e["status"], e["reason"]) for e in data["envelopes"]] == [
        ("context-mismatch",
         "sealed for another context than its file expects (cinder-metadata):"
         " backup_id is 'b-donor', not 'b-victim'")]


def test_rewrap_leaves_a_copied_envelope_alone(copied, store):
    store.rotate(RING)
    victim = copied / "backup_b-victim_metadata"
    before = victim.read_bytes()
    summary = rewrap.Rewrapper(store, carriers=CINDER_CARRIERS).run([str(copied)])
    outcomes = {os.path.basename(o.path): o for o in summary.outcomes}
    assert outcomes["backup_b-donor_metadata"].status == "rewrapped"
    assert outcomes["backup_b-victim_metadata"].status == "failed"
    assert ("backup_id is 'b-donor', not 'b-victim'"
            in outcomes["backup_b-victim_metadata"].reason)
    assert victim.read_bytes() == before
