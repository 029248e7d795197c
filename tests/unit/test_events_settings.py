"""When events are sent, and where: sealedmeta.events.settings() over real
oslo.config configurations (the bus itself: tests/events)."""

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


def test_payload_helpers_carry_public_facts_only():
    from sealedmeta import keyring as kr
    version = kr.KeyVersion(3, bytes(range(16)), kr.KeyState.RETIRED, 0,
                            deactivated=60)
    assert events.version_payload("ring", version) == {
        "keyring": "ring", "version": 3, "key_id": bytes(range(16)).hex(),
        "state": "retired", "created_at": "1970-01-01T00:00:00Z",
        "deactivated_at": "1970-01-01T00:01:00Z"}


def test_events_configured_without_oslo_messaging_installed(tmp_path):
    """This env has no 'events' extra: configuring events is one clear
    error naming what to install (and nothing is changed: the CLI builds
    the sender before the change)."""
    import importlib.util

    import pytest

    from sealedmeta import exceptions
    assert importlib.util.find_spec("oslo_messaging") is None, (
        "this test needs an env without the 'events' extra")
    conf = conf_of(tmp_path, "[sealedmeta_notifications]\ntransport_url = %s\n"
                   % URL)
    with pytest.raises(exceptions.ConfigurationError,
                       match=r"oslo\.messaging is not installed .*"
                             r"pip install '\.\[events\]'"):
        events.Events.from_config(conf)
