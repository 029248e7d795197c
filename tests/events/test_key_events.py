"""Key lifecycle events, sent by the real ``sealedmeta`` console script over
a file key store to a real RabbitMQ, received by a real consumer."""

import base64
import json
import socket
import subprocess
import sys
import uuid

from sealedmeta import FileKeyStore
from sealedmeta import events

from tests import sm_cli

NAME = "cinder-backup"


def write_conf(tmp_path, repo, **notifications):
    """A sealedmeta.conf of the test: the file store at *repo*, no settle
    window (no agent runs beside the test's commands) and
    [sealedmeta_notifications] *notifications*."""
    groups = {"sealedmeta": {"key_repository": repo, "cache_ttl": 0,
                             "stale_grace": 0}}
    if notifications:
        groups["sealedmeta_notifications"] = notifications
    return sm_cli.write_config(tmp_path / ("sm-%s.conf" % uuid.uuid4().hex[:6]),
                               **groups)


def cli(tmp_path, repo, conf, *args):
    code, out, err = sm_cli.run(list(args), tmp_path, repo, conf)
    assert code == 0, "sealedmeta %s exited %d: %s" % (" ".join(args), code, err)
    return out, err


def secrets_of(store, name, *more):
    """Every form a key of *name* (or another secret) could take in a
    payload: raw, hex, base64."""
    _, keys = store.export_keyring(name)
    found = []
    for key in list(keys.values()) + [m.encode() for m in more]:
        found += [key.hex(), base64.b64encode(key).decode(),
                  base64.urlsafe_b64encode(key).decode().rstrip("="),
                  key.decode("latin-1")]
    return found


def assert_no_secret(messages, secrets):
    for message in messages:
        text = json.dumps(message, ensure_ascii=False)
        for secret in secrets:
            assert secret not in text, "a secret is in %s" % message["event_type"]


def test_each_key_change_is_an_event_on_the_bus(tmp_path, bus, rabbitmq):
    repo = str(tmp_path / "keys")
    conf = write_conf(tmp_path, repo, transport_url=rabbitmq["transport_url"],
                      topics=bus.topic)
    empty = tmp_path / "backups"
    empty.mkdir()
    cli(tmp_path, repo, conf, "keyring", "create", NAME)
    cli(tmp_path, repo, conf, "rekey", NAME)
    cli(tmp_path, repo, conf, "key", "retire", NAME, "1")
    cli(tmp_path, repo, conf, "key", "reinstate", NAME, "1")
    cli(tmp_path, repo, conf, "key", "retire", NAME, "1")
    store = FileKeyStore(repo)
    secrets = secrets_of(store, NAME, rabbitmq["password"])
    ring = store.get_keyring(NAME)
    cli(tmp_path, repo, conf, "key", "destroy", NAME, "1", "--scan", str(empty))

    rotated, = bus.wait(events.KEY_ROTATED)
    retired = bus.wait(events.KEY_RETIRED, 2)
    reinstated, = bus.wait(events.KEY_REINSTATED)
    destroyed, = bus.wait(events.KEY_DESTROYED)
    publisher = "sealedmeta.%s" % socket.gethostname()
    for message in [rotated, reinstated, destroyed] + retired:
        assert message["publisher_id"] == publisher
    v1, v2 = ring.version(1), ring.version(2)
    assert rotated["payload"] == {
        "keyring": NAME, "version": 2, "key_id": v2.key_id.hex(),
        "state": "active", "created_at": events.iso(v2.created),
        "previous_version": 1}
    assert [m["payload"]["state"] for m in retired] == ["retired", "retired"]
    assert reinstated["payload"]["state"] == "decrypt-only"
    for message in retired + [reinstated]:
        assert message["payload"]["version"] == 1
        assert message["payload"]["key_id"] == v1.key_id.hex()
        assert message["payload"]["deactivated_at"] == events.iso(v1.deactivated)
    assert destroyed["payload"]["state"] == "destroyed"
    assert (destroyed["payload"]["scanned_envelopes"],
            destroyed["payload"]["envelopes_under_version"],
            destroyed["payload"]["forced"]) == (0, 0, False)
    # Only these: keyring create sends none, a refusal sends none.
    seen = bus.drain()
    assert sorted(m["event_type"] for m in seen) == sorted(
        [events.KEY_ROTATED, events.KEY_RETIRED, events.KEY_RETIRED,
         events.KEY_REINSTATED, events.KEY_DESTROYED])
    assert_no_secret(seen, secrets)


def test_a_destroy_taken_back_and_one_made_when_due(tmp_path, bus, rabbitmq):
    """key destroy --after sends destroy_scheduled, key reinstate of the
    pending version reinstated, key destroy --due destroyed; --due with
    nothing due sends nothing."""
    repo = str(tmp_path / "keys")
    conf = write_conf(tmp_path, repo, transport_url=rabbitmq["transport_url"],
                      topics=bus.topic)
    empty = tmp_path / "backups"
    empty.mkdir()
    cli(tmp_path, repo, conf, "keyring", "create", NAME)
    cli(tmp_path, repo, conf, "rekey", NAME)
    cli(tmp_path, repo, conf, "key", "retire", NAME, "1")
    cli(tmp_path, repo, conf, "key", "destroy", NAME, "1", "--after", "30d",
        "--scan", str(empty))
    store = FileKeyStore(repo)
    first_due = store.get_keyring(NAME).version(1).destroy_after
    cli(tmp_path, repo, conf, "key", "destroy", NAME, "--due", "--scan",
        str(empty))
    cli(tmp_path, repo, conf, "key", "reinstate", NAME, "1")
    cli(tmp_path, repo, conf, "key", "retire", NAME, "1")
    # Scheduled again, then its time made to have come (the delay passed).
    store.set_state(NAME, 1, "pending-destruction",
                    destroy_after=first_due - 31 * 86400)
    secrets = secrets_of(store, NAME, rabbitmq["password"])
    cli(tmp_path, repo, conf, "key", "destroy", NAME, "--due", "--scan",
        str(empty))

    scheduled, = bus.wait(events.KEY_DESTROY_SCHEDULED)
    reinstated, = bus.wait(events.KEY_REINSTATED)
    destroyed, = bus.wait(events.KEY_DESTROYED)
    assert scheduled["payload"]["state"] == "pending-destruction"
    assert scheduled["payload"]["destroy_after"] == events.iso(first_due)
    assert reinstated["payload"]["state"] == "decrypt-only"
    assert "destroy_after" not in reinstated["payload"]
    assert destroyed["payload"]["state"] == "destroyed"
    assert (destroyed["payload"]["version"],
            destroyed["payload"]["scanned_envelopes"],
            destroyed["payload"]["envelopes_under_version"],
            destroyed["payload"]["forced"]) == (1, 0, 0, False)
    seen = bus.drain()
    assert sorted(m["event_type"] for m in seen) == sorted(
        [events.KEY_ROTATED, events.KEY_RETIRED, events.KEY_RETIRED,
         events.KEY_DESTROY_SCHEDULED, events.KEY_REINSTATED,
         events.KEY_DESTROYED])
    assert_no_secret(seen, secrets)


def test_a_refused_change_sends_nothing(tmp_path, bus, rabbitmq):
    repo = str(tmp_path / "keys")
    conf = write_conf(tmp_path, repo, transport_url=rabbitmq["transport_url"],
                      topics=bus.topic)
    cli(tmp_path, repo, conf, "keyring", "create", NAME)
    code, _, err = sm_cli.run(["key", "retire", NAME, "1"], tmp_path, repo, conf)
    assert code == 2 and "is the active version" in err
    cli(tmp_path, repo, conf, "rekey", NAME)
    bus.wait(events.KEY_ROTATED)
    assert [m["event_type"] for m in bus.drain()] == [events.KEY_ROTATED]


def test_key_events_in_cadf_form(tmp_path, bus, rabbitmq):
    repo = str(tmp_path / "keys")
    conf = write_conf(tmp_path, repo, transport_url=rabbitmq["transport_url"],
                      topics=bus.topic, notification_format="cadf")
    cli(tmp_path, repo, conf, "keyring", "create", NAME)
    cli(tmp_path, repo, conf, "rekey", NAME)
    cli(tmp_path, repo, conf, "key", "retire", NAME, "1")
    ring = FileKeyStore(repo).get_keyring(NAME)

    rotated, = bus.wait(events.KEY_ROTATED)
    retired, = bus.wait(events.KEY_RETIRED)
    for message, action, version in ((rotated, "create", 2),
                                     (retired, "disable", 1)):
        cadf = message["payload"]
        assert cadf["typeURI"] == "http://schemas.dmtf.org/cloud/audit/1.0/event"
        assert (cadf["eventType"], cadf["action"], cadf["outcome"]) == (
            "activity", action, "success")
        assert cadf["name"] == message["event_type"]
        target = cadf["target"]
        assert target["typeURI"] == "data/security/key"
        assert target["id"] == str(uuid.UUID(bytes=ring.version(version).key_id))
        assert cadf["observer"]["name"] == "sealedmeta.%s" % socket.gethostname()
        assert cadf["initiator"]["typeURI"] == "service/security/account/user"
        content = cadf["attachments"][0]["content"]
        assert (content["keyring"], content["version"]) == (NAME, version)
    # The CADF form validates as pycadf reads it.
    from pycadf import event as cadf_event
    from pycadf import attachment, resource
    rebuilt = cadf_event.Event(
        id=rotated["payload"]["id"], eventTime=rotated["payload"]["eventTime"],
        eventType="activity", action="create", outcome="success",
        initiator=resource.Resource(**{
            k: v for k, v in rotated["payload"]["initiator"].items()
            if k != "host"}),
        target=resource.Resource(**rotated["payload"]["target"]),
        observer=resource.Resource(**rotated["payload"]["observer"]))
    rebuilt.add_attachment(attachment.Attachment(
        **rotated["payload"]["attachments"][0]))
    assert rebuilt.is_valid()


PROBE = """
import sys
from sealedmeta.cmd import main
code = main.main(sys.argv[1:])
print("oslo_messaging loaded:", "oslo_messaging" in sys.modules)
sys.exit(code)
"""


def run_probe(tmp_path, repo, conf, *args):
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, "--config-file", str(conf),
         "--key-repository", repo] + list(args), capture_output=True, text=True,
        env=sm_cli.cli_env(tmp_path), timeout=300)
    return proc.returncode, proc.stdout, proc.stderr


def test_without_a_transport_nothing_is_loaded_or_sent(tmp_path, bus, rabbitmq):
    """No transport configured: the commands work, oslo.messaging is never
    imported, nothing reaches the bus. With one, the same probe sees it
    loaded (the probe can tell)."""
    repo = str(tmp_path / "keys")
    off = write_conf(tmp_path, repo, topics=bus.topic)
    code, out, err = run_probe(tmp_path, repo, off, "keyring", "create", NAME)
    assert code == 0, err
    code, out, err = run_probe(tmp_path, repo, off, "rekey", NAME)
    assert code == 0, err
    assert "oslo_messaging loaded: False" in out
    assert "event" not in err
    on = write_conf(tmp_path, repo, transport_url=rabbitmq["transport_url"],
                    topics=bus.topic)
    code, out, err = run_probe(tmp_path, repo, on, "rekey", NAME)
    assert code == 0, err
    assert "oslo_messaging loaded: True" in out
    rotated, = bus.wait(events.KEY_ROTATED)
    assert rotated["payload"]["version"] == 3      # the one with a transport
    assert [m["event_type"] for m in bus.drain()] == [events.KEY_ROTATED]


def test_driver_noop_turns_events_off(tmp_path, bus, rabbitmq):
    repo = str(tmp_path / "keys")
    conf = write_conf(tmp_path, repo, transport_url=rabbitmq["transport_url"],
                      topics=bus.topic, driver="noop")
    code, out, err = run_probe(tmp_path, repo, conf, "keyring", "create", NAME)
    assert code == 0, err
    code, out, err = run_probe(tmp_path, repo, conf, "rekey", NAME)
    assert code == 0, err
    assert "oslo_messaging loaded: False" in out
    assert bus.drain() == []


def test_an_unreachable_bus_does_not_fail_the_change(tmp_path, rabbitmq):
    """The broker's port closed: rekey rotates, exits 0 and says in one line
    that its event was not sent; no traceback, no password."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]   # nothing listens once closed
    url = "rabbit://sealedmeta:%s@127.0.0.1:%d/sealedmeta" % (
        rabbitmq["password"], port)
    repo = str(tmp_path / "keys")
    conf = write_conf(tmp_path, repo, transport_url=url, retry=0)
    cli(tmp_path, repo, conf, "keyring", "create", NAME)
    out, err = cli(tmp_path, repo, conf, "rekey", NAME, "-f", "json")
    assert json.loads(out)["version"] == 2
    assert FileKeyStore(repo).get_keyring(NAME).active.number == 2
    lines = [line for line in err.splitlines() if "event" in line]
    assert lines == ["sealedmeta: could not send event sealedmeta.key.rotated"
                     " to the message bus (OperationalError: [Errno 111]"
                     " Connection refused)"], err
    assert "Traceback" not in err and rabbitmq["password"] not in err
