"""Key rotation, retired keys, an unusable key store, the per-process Sealer."""

import os

import pytest
from oslo_config import cfg

import sealedmeta
from cinder import exception
from sealedmeta.cinder import options

from tests.cinder import helpers

CONF = cfg.CONF


def _version(cloud, backup):
    return sealedmeta.inspect(cloud.read_object(backup)["volume_meta"]).key_version


def test_rotation_between_backup_and_restore(cloud, keys):
    src = cloud.volume(glance=helpers.GLANCE)
    old = cloud.backup(src)
    assert _version(cloud, old) == 1

    keys.rotate("cinder-backup")          # version 1 becomes decrypt-only
    options.clear_sealer_cache()          # a backup service restarted since

    target = cloud.new_target()
    cloud.restore(old, target)
    assert cloud.glance(target) == helpers.GLANCE
    assert cloud.data(target) == cloud.data(src)

    new = cloud.backup(src)
    assert _version(cloud, new) == 2
    target = cloud.new_target()
    cloud.restore(new, target)
    assert cloud.glance(target) == helpers.GLANCE


def test_rotation_by_another_agent_is_seen_without_restart(cloud, keys):
    """A running service that cached version 1 opens envelopes sealed under
    version 2 by another agent (unknown key id -> one refresh)."""
    CONF.set_override("refresh_interval", 0, group="sealedmeta")
    src = cloud.volume(glance=helpers.GLANCE)
    cloud.backup(src)                     # warms this process's cache (v1)
    keys.rotate("cinder-backup")
    other_agent = sealedmeta.Sealer(keys)
    backup = cloud.backup(src)            # still sealed under cached v1
    obj = cloud.read_object(backup)
    text = sealedmeta.Sealer(keys).open(
        obj["volume_meta"], {"backup_id": backup.id, "volume_id": src})["volume_meta"]
    obj["volume_meta"] = sealedmeta.armor(other_agent.seal(
        {"format": "cinder-volume-meta/1", "volume_meta": text},
        {"backup_id": backup.id, "volume_id": src}))
    cloud.write_object(backup, obj)
    assert _version(cloud, backup) == 2

    target = cloud.new_target()
    cloud.restore(backup, target)
    assert cloud.glance(target) == helpers.GLANCE


def test_retired_key_is_a_clear_error_before_any_write(cloud, keys):
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src)
    keys.rotate("cinder-backup")
    keys.set_state("cinder-backup", 1, "retired")
    options.clear_sealer_cache()

    target = cloud.volume(glance=helpers.OTHER_GLANCE)
    before = cloud.data(target)
    with pytest.raises(exception.InvalidBackup) as info:
        cloud.restore(backup, target, volume_is_new=False)
    message = str(info.value)
    assert "version 1" in message and "retired" in message
    assert cloud.data(target) == before

    # Not an authenticity failure: on_invalid = drop does not apply.
    CONF.set_override("on_invalid", "drop", group="sealedmeta")
    with pytest.raises(exception.InvalidBackup, match="retired"):
        cloud.restore(backup, target, volume_is_new=False)
    assert cloud.data(target) == before

    keys.set_state("cinder-backup", 1, "decrypt-only")   # key reinstate
    options.clear_sealer_cache()
    cloud.restore(backup, target, volume_is_new=False)
    assert cloud.glance(target) == helpers.GLANCE


def test_backup_without_a_usable_key_store_fails_and_leaves_nothing(cloud, tmp_path):
    empty = tmp_path / "no-keys"
    empty.mkdir(mode=0o700)
    CONF.set_override("key_repository", str(empty), group="sealedmeta")
    options.clear_sealer_cache()
    src = cloud.volume(glance=helpers.GLANCE)
    with pytest.raises(exception.BackupOperationError, match="cannot seal"):
        cloud.backup(src)
    # The driver deleted what it had written: no unsealed metadata anywhere.
    leftovers = [name for _, _, files in os.walk(CONF.backup_posix_path) for name in files]
    assert leftovers == []


def test_one_sealer_per_process_and_configuration(cloud, keys, tmp_path):
    first = cloud.driver().sealer
    assert cloud.driver().sealer is first
    assert options.get_sealer(CONF) is first
    other = tmp_path / "other-keys"
    sealedmeta.FileKeyStore(str(other)).create_keyring("cinder-backup")
    CONF.set_override("key_repository", str(other), group="sealedmeta")
    second = cloud.driver().sealer
    assert second is not first
    assert second.store.path == str(other)
