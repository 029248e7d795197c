"""When events are sent, and where, with oslo.messaging installed (the
'events' extra): Cinder's settings, transports that cannot be used."""

import subprocess
import sys

from sealedmeta import events

from tests.unit.test_events_settings import CINDER_URL
from tests.unit.test_events_settings import URL
from tests.unit.test_events_settings import conf_of


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
