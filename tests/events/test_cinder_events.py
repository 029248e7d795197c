"""Events of the sealed Cinder driver and of ``cinder audit``: the real
SealedPosixBackupDriver in the Cinder sandbox of tests/cinder (Cinder 29,
SQLite, no services) sends to a real RabbitMQ; a real consumer reads them."""

import base64
import json

import pytest
from oslo_config import cfg

from cinder import exception

from sealedmeta import events

from tests.cinder import helpers
from tests.cinder.conftest import cloud, ctxt, keys, sealedmeta_conf  # noqa: F401
from tests.cinder.test_reseal import cinder_conf  # noqa: F401 - fixture
from tests.cinder.test_reseal import run_cli
from tests.cinder.test_tamper import victim  # noqa: F401 - fixture

CONF = cfg.CONF
GROUP = events.GROUP


def _override(group, **values):
    for name, value in values.items():
        CONF.set_override(name, value, group=group)


@pytest.fixture
def to_bus(bus, rabbitmq):
    """Cinder's configuration names the bus in [sealedmeta_notifications]."""
    _override(GROUP, transport_url=rabbitmq["transport_url"],
              driver="messagingv2", topics=[bus.topic])
    yield bus
    for name in ("transport_url", "driver", "topics"):
        CONF.clear_override(name, group=GROUP)
    for name in ("keyring", "on_invalid", "legacy_backups"):
        CONF.clear_override(name, group="sealedmeta")
    events.close_all()


def tamper(cloud, backup):  # noqa: F811
    obj = cloud.read_object(backup)
    value = obj["volume_meta"]
    middle = len(value) // 2
    obj["volume_meta"] = value[:middle] + ("A" if value[middle] != "A" else "B") \
        + value[middle + 1:]
    cloud.write_object(backup, obj)


def secrets(keys, *objects):  # noqa: F811
    """What no payload may hold: the keys (raw, hex, base64), the volume's
    metadata values, the sealed armour."""
    _, material = keys.export_keyring("cinder-backup")
    found = [v for v in helpers.GLANCE.values() if len(v) > 3] + ["gold"]
    for key in material.values():
        found += [key.hex(), base64.b64encode(key).decode(), key.decode("latin-1")]
    for obj in objects:
        found.append(obj["volume_meta"][len("sealedmeta:"):][:40])
    return found


def assert_clean(bus, found):
    messages = bus.drain()
    assert messages
    for message in messages:
        text = json.dumps(message, ensure_ascii=False)
        for secret in found:
            assert secret not in text, (secret, message["event_type"])


def refused(bus, backup, target, reason_class, outcome=events.REFUSED):
    """The one restore.refused event of *backup* (asserting its payload)."""
    message, = [m for m in bus.wait(events.RESTORE_REFUSED, len(
        [m for m in bus.seen if m["event_type"] == events.RESTORE_REFUSED]) + 1)
        if m["payload"]["backup_id"] == backup.id]
    payload = message["payload"]
    assert message["publisher_id"] == "sealedmeta.%s" % CONF.host
    assert sorted(payload) == ["backup_id", "error", "outcome", "project_id",
                               "reason_class", "volume_id"]
    assert (payload["project_id"], payload["volume_id"], payload["reason_class"],
            payload["outcome"]) == (backup.project_id, target, reason_class,
                                    outcome)
    return payload


def test_refused_restores_are_events(cloud, keys, to_bus, victim):  # noqa: F811
    src, backup, target = victim
    original = cloud.read_object(backup)
    tamper(cloud, backup)
    with pytest.raises(exception.InvalidBackup, match="cannot be trusted"):
        cloud.restore(backup, target, volume_is_new=False)
    payload = refused(to_bus, backup, target, "invalid")
    assert payload["error"] == "InvalidEnvelope"

    other = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    copied = cloud.read_object(other)
    copied["volume_meta"] = cloud.read_object(cloud.backup(src))["volume_meta"]
    cloud.write_object(other, copied)
    with pytest.raises(exception.InvalidBackup, match="cannot be trusted"):
        cloud.restore(other, target, volume_is_new=False)
    payload = refused(to_bus, other, target, "context-mismatch")
    assert payload["error"] == "ContextMismatch"
    assert_clean(to_bus, secrets(keys, original, copied))


def test_dropped_metadata_is_an_event(cloud, keys, to_bus, victim):  # noqa: F811
    src, backup, target = victim
    original = cloud.read_object(backup)
    tamper(cloud, backup)
    CONF.set_override("on_invalid", "drop", group="sealedmeta")
    cloud.restore(backup, target, volume_is_new=False)
    assert cloud.glance(target) == {}
    refused(to_bus, backup, target, "invalid", events.DROPPED)
    assert_clean(to_bus, secrets(keys, original))


def test_legacy_backup_rejected_and_retired_key_are_events(cloud, keys, to_bus):  # noqa: F811
    legacy = cloud.backup(cloud.volume(glance=helpers.GLANCE),
                          cls=helpers.stock_class())
    target = cloud.new_target()
    CONF.set_override("legacy_backups", "reject", group="sealedmeta")
    with pytest.raises(exception.InvalidBackup, match="made before sealing"):
        cloud.restore(legacy, target)
    payload = refused(to_bus, legacy, target, "legacy")
    assert payload["error"] is None

    from sealedmeta.cinder import options
    sealed = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    obj = cloud.read_object(sealed)
    keys.rotate("cinder-backup")
    keys.set_state("cinder-backup", 1, "retired")
    options.clear_sealer_cache()
    with pytest.raises(exception.InvalidBackup, match="cannot be used"):
        cloud.restore(sealed, target)
    payload = refused(to_bus, sealed, target, "unreadable")
    assert payload["error"] is not None
    assert_clean(to_bus, secrets(keys, obj))


def test_a_seal_that_failed_is_an_event(cloud, keys, to_bus):  # noqa: F811
    volume = cloud.volume(glance=helpers.GLANCE)
    CONF.set_override("keyring", "no-such-keyring", group="sealedmeta")
    with pytest.raises(exception.BackupOperationError, match="cannot seal"):
        cloud.backup(volume)
    message, = to_bus.wait(events.SEAL_FAILED)
    payload = message["payload"]
    assert payload["keyring"] == "no-such-keyring"
    assert payload["volume_id"] == volume
    assert payload["project_id"] == cloud.project_id
    assert payload["error"] == "NoSuchKeyring"
    assert_clean(to_bus, secrets(keys))


def test_events_follow_cinders_own_notification_settings(cloud, bus, rabbitmq,  # noqa: F811
                                                         victim):  # noqa: F811
    """[sealedmeta_notifications] left unset: the events go where Cinder's
    notifications go ([oslo_messaging_notifications]), on its transport."""
    src, backup, target = victim
    saved = {n: CONF.oslo_messaging_notifications[n]
             for n in ("driver", "transport_url", "topics")}
    _override("oslo_messaging_notifications", driver=["messagingv2"],
              transport_url=rabbitmq["transport_url"], topics=[bus.topic])
    try:
        tamper(cloud, backup)
        with pytest.raises(exception.InvalidBackup):
            cloud.restore(backup, target, volume_is_new=False)
        refused(bus, backup, target, "invalid")
    finally:
        _override("oslo_messaging_notifications", **saved)
    # Cinder's notifications off ([] drivers): sealedmeta's are off too.
    _override("oslo_messaging_notifications", driver=[],
              transport_url=rabbitmq["transport_url"], topics=[bus.topic])
    try:
        other = cloud.backup(cloud.volume())
        tamper(cloud, other)
        with pytest.raises(exception.InvalidBackup):
            cloud.restore(other, cloud.new_target())
    finally:
        _override("oslo_messaging_notifications", **saved)
        events.close_all()
    assert [m["payload"]["backup_id"] for m in bus.drain()] == [backup.id]


def test_audit_end_is_an_event(cloud, keys, capsys, bus, rabbitmq, tmp_path,  # noqa: F811
                               cinder_conf):  # noqa: F811
    good = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    bad = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    obj = cloud.read_object(bad)
    tamper(cloud, bad)
    cloud.backup(cloud.volume(), cls=helpers.stock_class())
    conf = tmp_path / "cinder-events.conf"
    conf.write_text(open(cinder_conf).read() + "[sealedmeta_notifications]\n"
                    "transport_url = %s\ntopics = %s\n"
                    % (rabbitmq["transport_url"], bus.topic))
    code, out, err = run_cli(capsys, "--config-file", str(conf), "cinder",
                             "audit", "--shard", "1/1", "-f", "json")
    assert code == 1, err
    message, = bus.wait(events.AUDIT_END)
    payload = message["payload"]
    assert payload["total"] == 3
    assert payload["classes"] == {
        "valid": 1, "legacy": 1, "invalid": 1, "context-mismatch": 0,
        "missing": 0, "unreadable": 0, "unsigned": 0, "unknown-key": 0}
    assert payload["key_versions"] == {"1": 1}
    assert (payload["projects"], payload["errors"]) == (1, 0)
    assert payload["selection"]["shard"] == "1/1"
    assert payload["started_at"] <= payload["ended_at"]
    assert payload["duration_seconds"] >= 0
    assert good.id not in json.dumps(payload)
    assert_clean(bus, secrets(keys, obj))
