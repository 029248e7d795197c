"""``sealedmeta cinder reseal``: legacy backups sealed from the Cinder
database, through the real command line (cliff app, entry point
``cinder_reseal``) in this process, where the Cinder database lives."""

import json
import os
import subprocess
import sys

import pytest
from oslo_config import cfg

import sealedmeta
from cinder import exception
from cinder import objects
from cinder.db.api import volume_destroy
from sealedmeta.cinder import reseal

from tests.cinder import helpers
from tests.sm_cli import run_in_process as run_cli

CONF = cfg.CONF


@pytest.fixture
def cinder_conf(tmp_path, keys):
    path = tmp_path / "cinder.conf"
    path.write_text(
        "[DEFAULT]\n"
        "backup_driver = %s\n"
        "backup_posix_path = %s\n"
        "[database]\n"
        "connection = sqlite://\n"
        "[sealedmeta]\n"
        "key_repository = %s\n" % (helpers.SEALED_POSIX, CONF.backup_posix_path, keys.path))
    return str(path)


def reseal_json(capsys, cinder_conf, *args):
    code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder", "reseal",
                             *args, "-f", "json")
    return code, {row["backup_id"]: row for row in json.loads(out)}, err


@pytest.fixture
def legacy(cloud):
    src = cloud.volume(glance=helpers.GLANCE, user_meta={"tier": "gold"})
    backup = cloud.backup(src, cls=helpers.stock_class())
    return src, backup


def _tamper(cloud, backup, change):
    obj = cloud.read_object(backup)
    meta = json.loads(obj["volume_meta"])
    change(meta)
    obj["volume_meta"] = json.dumps(meta)
    cloud.write_object(backup, obj)


def _forge_billing(meta):
    glance = meta["volume-glance-metadata"]
    glance["billing_code_licence"] = "FREE"
    glance["image_id"] = helpers.OTHER_GLANCE["image_id"]
    glance["extra_licence_waiver"] = "granted"


def test_reseal_takes_glance_metadata_from_the_database(cloud, legacy, capsys, cinder_conf):
    src, backup = legacy
    _tamper(cloud, backup, _forge_billing)
    tampered = cloud.raw_object(backup)
    names_before = cloud.object_names(backup)

    code, rows, err = reseal_json(capsys, cinder_conf, "--backup-id", backup.id)

    assert code == 0, err
    assert rows[backup.id]["result"] == "resealed"
    assert rows[backup.id]["glance"] == "database: %d keys" % len(helpers.GLANCE)
    obj = cloud.read_object(backup)
    header = sealedmeta.inspect(obj["volume_meta"])
    assert dict(header.context) == {"backup_id": backup.id, "volume_id": src}
    assert objects.Backup.get_by_id(cloud.ctxt, backup.id).service == helpers.SEALED_POSIX
    assert cloud.object_names(backup) == names_before   # nothing added

    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.data(target) == cloud.data(src)
    assert cloud.glance(target) == helpers.GLANCE       # the truth, not the forgery
    assert cloud.bootable(target) is True
    assert cloud.user_meta(target) == {"tier": "gold"}

    # Putting the old plain object back is now a downgrade, refused.
    cloud.write_raw_object(backup, tampered)
    target = cloud.new_target()
    with pytest.raises(exception.InvalidBackup, match="not sealed"):
        cloud.restore(backup, target)


def test_reseal_puts_back_a_stripped_glance_section(cloud, legacy, capsys, cinder_conf):
    src, backup = legacy
    _tamper(cloud, backup, lambda meta: meta.pop("volume-glance-metadata"))
    code, rows, _ = reseal_json(capsys, cinder_conf, "--backup-id", backup.id)
    assert code == 0 and rows[backup.id]["result"] == "resealed"
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target) == helpers.GLANCE
    assert cloud.bootable(target) is True


def test_reseal_removes_a_glance_section_the_database_never_had(cloud, capsys, cinder_conf):
    src = cloud.volume()
    backup = cloud.backup(src, cls=helpers.stock_class())
    _tamper(cloud, backup, lambda meta: meta.update(
        {"volume-glance-metadata": dict(helpers.GLANCE)}))
    code, rows, _ = reseal_json(capsys, cinder_conf, "--backup-id", backup.id)
    assert code == 0 and rows[backup.id]["glance"] == "database: 0 keys"
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target) == {}
    assert cloud.bootable(target) is False


def test_reseal_of_a_backup_whose_source_volume_was_deleted(cloud, legacy, capsys,
                                                            cinder_conf):
    src, backup = legacy
    _tamper(cloud, backup, _forge_billing)
    volume_destroy(cloud.ctxt, src)
    code, rows, _ = reseal_json(capsys, cinder_conf, "--backup-id", backup.id)
    assert code == 0
    assert rows[backup.id]["glance"] == (
        "database: %d keys (source volume deleted)" % len(helpers.GLANCE))
    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target) == helpers.GLANCE


def test_reseal_base_metadata_security_fields_come_from_the_database(cloud, capsys,
                                                                     cinder_conf):
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())

    def forge(meta):
        meta["volume-base-metadata"]["encryption_key_id"] = "someone-elses-key"
    _tamper(cloud, backup, forge)
    code, _, _ = reseal_json(capsys, cinder_conf, "--backup-id", backup.id)
    assert code == 0
    armour = cloud.read_object(backup)["volume_meta"]
    text = sealedmeta.Sealer(sealedmeta.FileKeyStore(CONF.sealedmeta.key_repository)).open(
        armour, {"backup_id": backup.id, "volume_id": src})["volume_meta"]
    base = json.loads(text)["volume-base-metadata"]
    assert base["encryption_key_id"] is None
    assert base["volume_type_id"] == cloud.type_id


def test_reseal_reports_what_it_cannot_reseal(cloud, legacy, capsys, cinder_conf):
    src, backup = legacy
    donor = cloud.backup(src, cls=helpers.stock_class())
    cloud.write_raw_object(backup, cloud.raw_object(donor))     # whole object swapped
    before = cloud.raw_object(backup)
    sealed = cloud.backup(src)
    broken = cloud.backup(src)
    obj = cloud.read_object(broken)
    obj["volume_meta"] = obj["volume_meta"][:-4] + "AAAA"
    cloud.write_object(broken, obj)

    code, rows, err = reseal_json(capsys, cinder_conf, "--backup-id", backup.id,
                                  "--backup-id", sealed.id, "--backup-id", broken.id,
                                  "--backup-id", "no-such-backup")

    assert code == 1
    assert rows[backup.id]["result"] == "failed"
    assert "it was replaced" in rows[backup.id]["reason"]
    assert rows[sealed.id]["result"] == "already-sealed"
    assert rows[broken.id]["result"] == "failed"
    assert "does not authenticate" in rows[broken.id]["reason"]
    assert rows["no-such-backup"]["result"] == "failed"
    assert "could not be resealed" in err
    assert cloud.raw_object(backup) == before           # untouched
    assert objects.Backup.get_by_id(cloud.ctxt, backup.id).service == helpers.STOCK_POSIX


def test_reseal_all_dry_run_and_other_drivers(cloud, legacy, capsys, cinder_conf):
    src, backup = legacy
    other = cloud.backup(src, cls=helpers.stock_class(),
                         service="cinder.backup.drivers.swift.SwiftBackupDriver")
    before = cloud.raw_object(backup)

    code, rows, _ = reseal_json(capsys, cinder_conf, "--all", "--dry-run")
    assert code == 0
    assert rows[backup.id]["result"] == "would-reseal"
    assert rows[other.id]["result"] == "skipped"
    assert "another backup driver" in rows[other.id]["reason"]
    assert cloud.raw_object(backup) == before

    code, rows, _ = reseal_json(capsys, cinder_conf, "--all")
    assert rows[backup.id]["result"] == "resealed"
    code, rows, _ = reseal_json(capsys, cinder_conf, "--all")
    assert rows[backup.id]["result"] == "already-sealed"


def test_reseal_keeps_the_posix_file_mode_and_leaves_no_temp_file(cloud, legacy):
    src, backup = legacy
    path = cloud.metadata_path(backup)
    mode = os.stat(path).st_mode
    results = reseal.reseal([backup.id], driver=cloud.driver())
    assert [r.result for r in results] == ["resealed"]
    assert os.stat(path).st_mode == mode
    assert not [n for n in os.listdir(os.path.dirname(path))
                if n.startswith(reseal.TEMP_PREFIX)]


def test_reseal_refuses_a_stock_backup_driver_configuration(cloud, capsys, cinder_conf):
    CONF.set_override("backup_driver", helpers.STOCK_POSIX)
    try:
        code, out, err = run_cli(capsys, "--config-file", cinder_conf, "cinder", "reseal",
                                 "--all")
    finally:
        CONF.set_override("backup_driver", helpers.SEALED_POSIX)
    assert code != 0
    assert "is not a sealed driver class" in err


def test_reseal_needs_the_cinder_configuration(capsys):
    code, out, err = run_cli(capsys, "cinder", "reseal", "--all")
    assert code != 0
    assert "--config-file /etc/cinder/cinder.conf" in err


def test_reseal_without_cinder_installed_fails_with_one_clear_line(tmp_path):
    conf = tmp_path / "cinder.conf"
    conf.write_text("[sealedmeta]\nkey_repository = %s\n" % (tmp_path / "keys"))
    script = ("import sys; sys.modules['cinder'] = None\n"
              "from sealedmeta.cmd.main import main\n"
              "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.run(
        [sys.executable, "-c", script, "--config-file", str(conf), "cinder", "reseal",
         "--all"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["sealedmeta: 'sealedmeta cinder reseal' needs the cinder package in"
                     " this environment (in a clone of sealedmeta: pip install"
                     " '.[cinder]')"]
