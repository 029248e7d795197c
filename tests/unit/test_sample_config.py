"""etc/sealedmeta.conf.sample stays what oslo-config-generator makes now."""

import os
import socket
import subprocess
import sys

from oslo_config import cfg

from sealedmeta import conf as sm_conf
from sealedmeta.cinder import options as cinder_options
from sealedmeta.cinder import swift_options

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(TOP, "etc", "sealedmeta.conf.sample")
GENERATOR_CONF = os.path.join(TOP, "etc", "oslo-config-generator", "sealedmeta.conf")
REGENERATE = "tox -e genconfig"


def test_sample_is_in_sync(tmp_path):
    out = tmp_path / "sample"
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; from oslo_config.generator import main; sys.exit(main())",
         "--config-file", GENERATOR_CONF, "--output-file", str(out)],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    with open(SAMPLE) as handle:
        committed = handle.read()
    assert out.read_text() == committed, (
        "etc/sealedmeta.conf.sample is stale: run `%s`" % REGENERATE)


def test_sample_lists_both_namespaces_and_no_machine_path():
    with open(SAMPLE) as handle:
        text = handle.read()
    for needle in ("[sealedmeta]", "[coordination]", "#backend_url = ",
                   "#lock_timeout = 30.0", "#key_repository = ",
                   "# From sealedmeta.cinder", "#legacy_backups = trust",
                   "[%s]" % swift_options.GROUP, "#auth_type = <None>",
                   "#swift_service_username = <None>"):
        assert needle in text
    for leak in (os.path.expanduser("~"), "/tmp/", TOP, socket.gethostname()):
        assert leak not in text


def test_list_opts_is_complete():
    """Every option register_opts() registers is in list_opts() (which may
    list more: options a key store registers itself)."""
    conf = cfg.ConfigOpts()
    sm_conf.register_opts(conf)
    conf(args=[])
    listed = {(group, opt.dest) for group, opts in sm_conf.list_opts()
              for opt in opts}
    registered = set()
    for key in conf:
        value = conf[key]
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            registered |= {(key, name) for name in value}
        else:
            registered.add(("DEFAULT", key))
    registered = {(g, o) for g, o in registered if g != "DEFAULT"}  # oslo's own
    assert registered and registered <= listed
    assert {("coordination", "backend_url"), ("coordination", "lock_timeout")} <= listed


def _registered(conf):
    conf(args=[])
    registered = set()
    for key in conf:
        value = conf[key]
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            registered |= {(key, name) for name in value}
    return registered


def test_cinder_list_opts_is_complete():
    """Every option the sealed drivers register in Cinder's configuration
    is listed by one of the two namespaces, each once."""
    conf = cfg.ConfigOpts()
    cinder_options.register_opts(conf)
    pairs = [(group, opt.dest) for namespace in (sm_conf, cinder_options)
             for group, opts in namespace.list_opts() for opt in opts]
    assert len(pairs) == len(set(pairs))
    registered = _registered(conf)
    assert registered <= set(pairs), registered - set(pairs)
    assert {("sealedmeta", "legacy_backups"),
            (swift_options.GROUP, "auth_type"), (swift_options.GROUP, "cafile"),
            ("sealedmeta", "swift_service_auth_url")} <= registered
