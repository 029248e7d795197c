"""What the console shows besides results: one line per error, no library
noise (found by running the guides' commands where Cinder and Barbican are
installed)."""

import logging
import warnings

import pytest

from tests import sm_cli


class EventletDeprecationWarning(Warning):
    """As eventlet defines it: a plain Warning, not a DeprecationWarning."""


@pytest.fixture
def run_main(tmp_path):
    """main(argv) on a file store in tmp_path; logging as the command left
    it until the test ends."""
    with sm_cli.logging_kept():
        yield lambda *argv: sm_cli.main("--key-repository", str(tmp_path / "keys"),
                                        *argv)


def test_eventlet_deprecation_is_not_shown(run_main):
    # Where Cinder is installed, tooz imports eventlet, which warns on
    # stderr before every command's output.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_main("keyring", "list", "-f", "json") == 0
        warnings.warn("\nEventlet is deprecated. It is currently being maintained"
                      " in bugfix mode", EventletDeprecationWarning)
        warnings.warn("another warning", UserWarning)
    assert [str(w.message) for w in caught] == ["another warning"]


def test_barbicanclient_errors_are_not_a_second_line(run_main, capsys):
    # barbicanclient logs "4xx Client error: ..." at ERROR for every 4xx;
    # the key store reports the same failure in its own one line.
    assert run_main("keyring", "list", "-f", "json") == 0
    capsys.readouterr()
    logging.getLogger("barbicanclient.client").error(
        "4xx Client error: Forbidden: Containers(s) retrieval attempt not allowed")
    logging.getLogger("sealedmeta.cmd.scan").error("our own error")
    err = capsys.readouterr().err
    assert "4xx Client error" not in err
    assert "sealedmeta: our own error" in err


def test_barbicanclient_errors_shown_when_very_verbose(run_main, capsys):
    assert run_main("-v", "-v", "keyring", "list", "-f", "json") == 0
    capsys.readouterr()
    logging.getLogger("barbicanclient.client").error("4xx Client error: Forbidden")
    assert "4xx Client error: Forbidden" in capsys.readouterr().err


_WITHOUT_CINDER = ("import sys; sys.modules['cinder'] = None\n"
                   "from sealedmeta.cmd.main import main\n"
                   "sys.exit(main(sys.argv[1:]))\n")
_PIP = ("needs the cinder package in this environment (in a clone of"
        " sealedmeta: pip install '.[cinder]')")


@pytest.mark.parametrize("argv, what", [
    (["cinder", "audit"], "'sealedmeta cinder audit'"),
    (["cinder", "reseal", "--all"], "'sealedmeta cinder reseal'"),
    (["cinder", "audit-merge", "r.json"], "'sealedmeta cinder audit-merge'"),
    (["key", "destroy", "kr", "1", "--scan-cinder", "{conf}"], "--scan-cinder"),
    (["key", "retire", "kr", "--unused", "--scan-cinder", "{conf}"],
     "--scan-cinder"),
])
def test_without_cinder_the_line_names_the_command(tmp_path, argv, what):
    """Every Cinder command (and option) run where Cinder is not installed
    names itself, not another command, and the pip command that works."""
    import subprocess
    import sys
    conf = tmp_path / "cinder.conf"
    conf.write_text("[sealedmeta]\nkey_repository = %s\n" % (tmp_path / "keys"))
    argv = [a.format(conf=conf) for a in argv]
    proc = subprocess.run(
        [sys.executable, "-c", _WITHOUT_CINDER, "--config-file", str(conf)]
        + argv, capture_output=True, text=True, timeout=120,
        env=sm_cli.cli_env(tmp_path))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert (proc.returncode, lines) == (2, ["sealedmeta: %s %s" % (what, _PIP)])


def test_without_redis_the_hint_is_a_pip_command_that_works(tmp_path):
    """sealedmeta is not on a package index: the hint installs the extra
    from a clone, as the Cinder one does."""
    import subprocess
    import sys
    conf = sm_cli.write_config(
        tmp_path / "sm.conf", sealedmeta={"key_repository": tmp_path / "keys"},
        coordination={"backend_url": "redis://127.0.0.1:1"})
    script = _WITHOUT_CINDER.replace("'cinder'", "'redis'")
    proc = subprocess.run(
        [sys.executable, "-c", script, "--config-file", str(conf), "rekey",
         "kr"], capture_output=True, text=True, timeout=120,
        env=sm_cli.cli_env(tmp_path))
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert (proc.returncode, lines) == (2, [
        "sealedmeta: coordination backend redis://127.0.0.1:1 needs the"
        " 'redis' Python package in this environment (in a clone of"
        " sealedmeta: pip install '.[redis]'); no keyring state was changed"])


_REPO = ("sealedmeta", "key_repository", "$state_path/sealedmeta-keys")
_LOCKS = ("coordination", "backend_url", "file://$state_path/locks")


@pytest.mark.parametrize("reference, argv", [
    (_REPO, ["keyring", "list"]), (_REPO, ["rekey", "kr"]),
    (_LOCKS, ["rekey", "kr"]), (_LOCKS, ["keyring", "create", "kr"]),
    (_LOCKS, ["key", "retire", "kr", "1"]),
])
def test_cinder_conf_references_name_the_option(tmp_path, reference, argv):
    """Key commands given cinder.conf, whose options may refer to Cinder's
    own ($state_path): one line naming the option that refers and what to
    do, not oslo.config's 'no such option state_path in group [DEFAULT]'."""
    import subprocess
    group, option, value = reference
    conf = tmp_path / "cinder.conf"
    conf.write_text("[DEFAULT]\nstate_path = %s\n[%s]\n%s = %s\n"
                    % (tmp_path, group, option, value))
    proc = subprocess.run([sm_cli.console_script(), "--config-file", str(conf)]
                          + argv, capture_output=True, text=True, timeout=120,
                          env=sm_cli.cli_env(tmp_path))
    assert (proc.returncode, proc.stderr) == (2, (
        "sealedmeta: bad configuration: [%s] %s in %s refers to $state_path,"
        " an option sealedmeta does not read (cinder.conf's [DEFAULT]"
        " state_path?): give these commands a sealedmeta configuration file"
        " with the value written out, without $state_path\n"
        % (group, option, conf)))


def _commands():
    import importlib.metadata
    return sorted(ep.name.replace("_", " ") for ep in
                  importlib.metadata.entry_points(group="sealedmeta.cli"))


@pytest.mark.parametrize("command", _commands())
def test_terminal_help_is_plain_text_and_names_every_argument(command,
                                                              capsys):
    """The docstrings are also the docs' source: no ``literal`` or
    :role:`...` markup on a terminal, and every positional argument has a
    help line (keyring create / copy's NAME had none)."""
    import re
    code, out, err = sm_cli.run_in_process(capsys, "help", *command.split())
    assert code == 0, err
    assert "``" not in out and not re.search(r":[a-z]+:`", out), out
    positional = out.split("positional arguments:\n", 1)
    if len(positional) == 2:
        block = positional[1].split("\n\n", 1)[0]
        for line in block.splitlines():
            if not line.startswith("    "):
                assert len(line.split(None, 1)) == 2, (command, line)
