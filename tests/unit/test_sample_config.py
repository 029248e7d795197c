"""etc/sealedmeta.conf.sample stays what oslo-config-generator makes now."""

import os
import socket
import subprocess
import sys

from oslo_config import cfg

from sealedmeta import conf as sm_conf

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SAMPLE = os.path.join(TOP, "etc", "sealedmeta.conf.sample")
REGENERATE = ("oslo-config-generator --namespace sealedmeta"
              " --output-file etc/sealedmeta.conf.sample")


def test_sample_is_in_sync(tmp_path):
    out = tmp_path / "sample"
    proc = subprocess.run(
        [sys.executable, "-c",
         "import sys; from oslo_config.generator import main; sys.exit(main())",
         "--namespace", "sealedmeta", "--output-file", str(out)],
        capture_output=True, text=True, cwd=str(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    with open(SAMPLE) as handle:
        committed = handle.read()
    assert out.read_text() == committed, (
        "etc/sealedmeta.conf.sample is stale: run `%s`" % REGENERATE)


def test_sample_lists_both_groups_and_no_machine_path():
    with open(SAMPLE) as handle:
        text = handle.read()
    for needle in ("[sealedmeta]", "[coordination]", "#backend_url = ",
                   "#lock_timeout = 30.0", "#key_repository = "):
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
