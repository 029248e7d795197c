"""An operator's figures: ``cinder audit --textfile`` (Prometheus text
format, read back with prometheus-client's own parser) and ``keyring
status --scan-cinder``, over the real posix driver classes and the real
command line in this process."""

import json
import os

from prometheus_client.parser import text_string_to_metric_families

from sealedmeta.cinder import audit

from tests.cinder import helpers
from tests.cinder.test_audit import EXPECTED
from tests.cinder.test_audit import fleet  # noqa: F401 - fixture
from tests.cinder.test_reseal import cinder_conf  # noqa: F401 - fixture
from tests.cinder.test_reseal import run_cli


def samples(path):
    """{(metric, frozenset(labels)): value} of a textfile."""
    with open(path) as handle:
        text = handle.read()
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def test_audit_textfile_holds_the_reports_counts(fleet, cloud, capsys,  # noqa: F811
                                                 cinder_conf, tmp_path):  # noqa: F811
    path = tmp_path / "textfile" / "sealedmeta_audit.prom"
    path.parent.mkdir()
    code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder",
                             "audit", "--textfile", str(path), "-f", "json")
    assert code == 1, err
    rows = json.loads(out)
    found = samples(path)
    prefix = "sealedmeta_cinder_audit_"

    def value(name, **labels):
        return found[(prefix + name, frozenset(labels.items()))]

    expected = {klass: 0 for klass in audit.CLASSES}
    for klass in EXPECTED.values():
        expected[klass] += 1
    assert {klass: value("backups", **{"class": klass}) for klass in
            audit.CLASSES} == expected
    per_project = {}
    for row in rows:
        key = (row["project_id"], row["class"])
        per_project[key] = per_project.get(key, 0) + 1
    assert {(dict(labels)["project_id"], dict(labels)["class"]): v
            for (name, labels), v in found.items()
            if name == prefix + "project_backups"} == per_project
    assert {dict(labels)["key_version"]: v for (name, labels), v in found.items()
            if name == prefix + "key_version_backups"} == {"1": 2}
    assert value("errors") == 0
    started, ended = value("start_time_seconds"), value("end_time_seconds")
    assert started <= ended
    assert value("duration_seconds") == ended - started
    # Written whole: no temporary file beside it.
    assert os.listdir(path.parent) == [path.name]


def test_audit_textfile_counts_unreadable_backups_as_errors(
        cloud, capsys, cinder_conf, tmp_path):  # noqa: F811
    cloud.backup(cloud.volume(glance=helpers.GLANCE))
    broken = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    os.chmod(cloud.metadata_path(broken), 0)
    path = tmp_path / "audit.prom"
    try:
        code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder",
                                 "audit", "--textfile", str(path), "-f", "json")
    finally:
        os.chmod(cloud.metadata_path(broken), 0o600)
    classes = {row["backup_id"]: row["class"] for row in json.loads(out)}
    if os.geteuid() == 0:
        # root reads a mode-0 file: the object is read, the backup valid.
        assert classes[broken.id] == audit.VALID
        expected_errors = 0
    else:
        assert classes[broken.id] == audit.UNREADABLE
        expected_errors = 1
    found = samples(path)
    assert found[("sealedmeta_cinder_audit_errors", frozenset())] == \
        expected_errors
    assert found[("sealedmeta_cinder_audit_backups",
                  frozenset({("class", audit.UNREADABLE)}))] == expected_errors


def test_audit_textfile_in_a_missing_directory_is_refused_before_the_audit(
        cloud, capsys, cinder_conf, tmp_path, monkeypatch):  # noqa: F811
    cloud.backup(cloud.volume(glance=helpers.GLANCE))
    judged = []
    real = audit.judge_backup
    monkeypatch.setattr(audit, "judge_backup",
                        lambda *a: judged.append(a) or real(*a))
    path = tmp_path / "no-such-dir" / "audit.prom"
    code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder",
                             "audit", "--textfile", str(path), "-f", "json")
    assert code == 2
    assert "--textfile %s: no directory %s" % (path, path.parent) in err
    assert judged == [] and not path.parent.exists()


def test_keyring_status_counts_backups_per_version(cloud, keys, capsys,
                                                   cinder_conf, tmp_path):  # noqa: F811
    from sealedmeta.cinder import options
    cloud.backup(cloud.volume(glance=helpers.GLANCE))
    cloud.backup(cloud.volume(glance=helpers.GLANCE))
    keys.rotate("cinder-backup")
    options.clear_sealer_cache()
    cloud.backup(cloud.volume(glance=helpers.GLANCE))
    cloud.backup(cloud.volume(), cls=helpers.stock_class())     # legacy: none
    gone = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    os.unlink(cloud.metadata_path(gone))                        # missing: none
    conf = tmp_path / "sealedmeta.conf"
    conf.write_text("[sealedmeta]\nkey_repository = %s\n" % keys.path)
    code, out, err = run_cli(capsys, "--config-file", str(conf), "keyring",
                             "status", "cinder-backup", "--scan-cinder",
                             cinder_conf, "-f", "json")
    assert code == 0, err
    rows = {row["version"]: row for row in json.loads(out)}
    assert {v: row["backups"] for v, row in rows.items()} == {1: 2, 2: 1}
    assert [rows[v]["state"] for v in (1, 2)] == ["decrypt-only", "active"]
    code, out, err = run_cli(capsys, "--config-file", str(conf), "keyring",
                             "status", "cinder-backup", "-f", "json")
    assert code == 0, err
    assert all("backups" not in row for row in json.loads(out))
