"""When events are sent, and where: sealedmeta.events.settings() over real
oslo.config configurations (the bus itself: tests/events)."""

import subprocess
import sys

from oslo_config import cfg

from sealedmeta import conf as sm_conf
from sealedmeta import events

URL = "rabbit://u:p@127.0.0.1:5672/v"
CINDER_URL = "rabbit://cinder:p@127.0.0.1:5672/openstack"


def conf_of(tmp_path, text, cinder=False):
    """A ConfigOpts with sealedmeta's options (and, with *cinder*, the
    oslo.messaging options a Cinder process has) read from *text*."""
    path = tmp_path / "test.conf"
    path.write_text(text)
    conf = cfg.ConfigOpts()
    sm_conf.register_opts(conf)
    if cinder:
        from oslo_messaging import opts
        for group, group_opts in opts.list_opts():
            if group in (None, events.OSLO_GROUP):
                conf.register_opts(group_opts, group=group)
    conf(args=[], default_config_files=[str(path)])
    return conf


def test_nothing_configured_sends_nothing(tmp_path):
    assert events.settings(conf_of(tmp_path, "")) is None
    assert not events.Events.from_config(conf_of(tmp_path, "")).enabled


def test_a_transport_of_our_own_sends_with_messagingv2(tmp_path):
    found = events.settings(conf_of(
        tmp_path, "[sealedmeta_notifications]\ntransport_url = %s\n" % URL))
    assert found == events.Settings(URL, ("messagingv2",), ("notifications",),
                                    "basic", 2)


def test_noop_or_a_driver_without_transport_sends_nothing(tmp_path):
    assert events.settings(conf_of(
        tmp_path, "[sealedmeta_notifications]\ntransport_url = %s\n"
        "driver = noop\n" % URL)) is None
    assert events.settings(conf_of(
        tmp_path, "[sealedmeta_notifications]\ndriver = messagingv2\n")) is None


def test_cinders_settings_apply_where_ours_are_unset(tmp_path):
    text = ("[DEFAULT]\ntransport_url = %s\n[oslo_messaging_notifications]\n"
            "driver = messagingv2\ntopics = cinder-notes\n" % CINDER_URL)
    found = events.settings(conf_of(tmp_path, text, cinder=True))
    assert found == events.Settings(CINDER_URL, ("messagingv2",),
                                    ("cinder-notes",), "basic", 2)
    # Cinder's notifications off (no driver, its default): ours too.
    off = "[DEFAULT]\ntransport_url = %s\n" % CINDER_URL
    assert events.settings(conf_of(tmp_path, off, cinder=True)) is None
    # Ours, where set, win.
    ours = text + ("[sealedmeta_notifications]\ntransport_url = %s\n"
                   "topics = audit\nnotification_format = cadf\n" % URL)
    assert events.settings(conf_of(tmp_path, ours, cinder=True)) == \
        events.Settings(URL, ("messagingv2",), ("audit",), "cadf", 2)


def test_the_check_never_imports_oslo_messaging(tmp_path):
    """Deciding that nothing is sent costs no import (checked in a fresh
    interpreter: this one may have loaded it)."""
    path = tmp_path / "off.conf"
    path.write_text("[sealedmeta_notifications]\ntopics = x\n")
    code = ("import sys\n"
            "from sealedmeta.cmd.main import SealedMetaApp\n"
            "from sealedmeta import events\n"
            "conf = SealedMetaApp.load_conf([sys.argv[1]])\n"
            "assert not events.get(conf).enabled\n"
            "print('oslo_messaging' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_payload_helpers_carry_public_facts_only():
    from sealedmeta import keyring as kr
    version = kr.KeyVersion(3, bytes(range(16)), kr.KeyState.RETIRED, 0,
                            deactivated=60)
    assert events.version_payload("ring", version) == {
        "keyring": "ring", "version": 3, "key_id": bytes(range(16)).hex(),
        "state": "retired", "created_at": "1970-01-01T00:00:00Z",
        "deactivated_at": "1970-01-01T00:01:00Z"}


def test_an_unusable_transport_is_a_clear_error_without_the_password(tmp_path):
    import pytest

    from sealedmeta import exceptions
    conf = conf_of(tmp_path, "[sealedmeta_notifications]\n"
                   "transport_url = nosuch://u:s3cr3t-pw@127.0.0.1/\n")
    with pytest.raises(exceptions.ConfigurationError,
                       match=r"cannot use the notification transport .*"
                             r"DriverLoadFailure") as caught:
        events.Events.from_config(conf)
    assert "s3cr3t-pw" not in str(caught.value)


def test_a_service_goes_on_without_events_when_they_cannot_be_built(
        tmp_path, caplog):
    conf = conf_of(tmp_path, "[sealedmeta_notifications]\n"
                   "transport_url = nosuch://u:s3cr3t-pw@127.0.0.1/\n")
    found = events.for_service(conf)
    assert not found.enabled
    found.restore_refused("b", "p", "v", "invalid")   # does nothing
    assert "sealedmeta's events are off: cannot use the notification" \
        " transport" in caplog.text
    assert "s3cr3t-pw" not in caplog.text
