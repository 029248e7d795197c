"""One exit status convention for every command (docs/source/cli.rst): 0
fine, 1 problems found, 2 cannot run or usage error.

Every command the console script has (its ``sealedmeta.cli`` entry points)
is walked: an option it does not know (argparse's usage error) and a value
it refuses (the command's own usage error) both exit 2 with one line on
standard error, print nothing and change nothing. A command added without
a usage error here fails :func:`test_every_command_is_walked`.
"""

import importlib.metadata
import importlib.util

import pytest

from sealedmeta import Sealer

from tests import sm_cli

RING = "cinder-backup"


def commands():
    return sorted(ep.name.replace("_", " ") for ep in
                  importlib.metadata.entry_points(group="sealedmeta.cli"))


# What each command refuses before it does anything: {command: (the
# arguments after it, what the one line says)}. "{x}" is filled in below.
NO_CINDER = importlib.util.find_spec("cinder") is None
USAGE = {
    "keyring create": (["bad name!"], "invalid keyring name"),
    "keyring list": (["--config-file", "{tmp}/missing.conf"],
                     "configuration file {tmp}/missing.conf does not exist"),
    "keyring show": (["bad name!"], "invalid keyring name"),
    "keyring status": (["bad name!"], "invalid keyring name"),
    "keyring copy": ([RING, "--to-config", "{tmp}/missing.conf"],
                     "configuration file {tmp}/missing.conf does not exist"),
    "keyring export-public": (["bad name!", "-o", "{tmp}/keys.json"],
                              "invalid keyring name"),
    "seal": (["--context", "backup_id", "{meta}"],
             "bad --context 'backup_id': expected KEY=VALUE"),
    "open": (["--context", "=b1", "{envelope}"], "bad --context '=b1'"),
    "inspect": (["{tmp}/missing.env"], "cannot read envelope {tmp}/missing.env"),
    "rekey": (["bad name!"], "invalid keyring name"),
    "key retire": ([RING, "abc"], "bad VERSION 'abc'"),
    "key reinstate": ([RING, "0"], "bad VERSION '0'"),
    "key destroy": ([RING, "1.5", "--force"], "bad VERSION '1.5'"),
    "rewrap": (["--temp-age", "1h", "{tmp}"], "bad --temp-age '1h'"),
    "verify": (["--expect", "a=1", "--expect", "a=2", "{tmp}"],
               "--expect key 'a' given twice"),
    "cinder reseal": (["--all"], "needs Cinder's configuration"),
    "cinder audit": ([], "needs Cinder's configuration"),
    "cinder mark-legacy": (["{tmp}/record.json"], "needs Cinder's configuration"),
    "cinder audit-merge": (["{tmp}/missing.json"],
                           "needs the cinder package" if NO_CINDER
                           else "cannot read report {tmp}/missing.json"),
}


@pytest.fixture
def setup(tmp_path, repo, store, ring):
    meta = tmp_path / "meta.json"
    meta.write_text('{"a": 1}')
    envelope = tmp_path / "e.env"
    envelope.write_bytes(Sealer(store, keyring=RING).seal({"a": 1}, {"b": "1"}))
    fill = {"tmp": str(tmp_path), "meta": str(meta), "envelope": str(envelope)}
    return fill


def _run(capsys, tmp_path, repo, argv):
    return sm_cli.run_in_process(capsys, "--key-repository", repo, *argv)


def test_every_command_is_walked():
    assert sorted(USAGE) == commands()


def _argv(command, args, fill):
    args = [a.format(**fill) for a in args]
    if args[:1] == ["--config-file"]:   # a global option: before the command
        return args + command.split()
    return command.split() + args


@pytest.mark.parametrize("command", commands())
def test_an_unknown_option_is_a_usage_error(command, tmp_path, repo, setup, capsys):
    before = sm_cli.tree_digest(tmp_path)
    args = USAGE[command][0]
    if args[:1] == ["--config-file"]:   # refused before the command's options
        args = []
    argv = _argv(command, args, setup) + ["--no-such-option"]
    code, out, err = _run(capsys, tmp_path, repo, argv)
    assert (code, out) == (2, "")
    assert "error: unrecognized arguments: --no-such-option" in err
    assert sm_cli.tree_digest(tmp_path) == before


@pytest.mark.parametrize("command", commands())
def test_a_refused_value_is_a_usage_error(command, tmp_path, repo, setup, capsys):
    args, text = USAGE[command]
    before = sm_cli.tree_digest(tmp_path)
    code, out, err = _run(capsys, tmp_path, repo, _argv(command, args, setup))
    assert (code, out) == (2, ""), err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("sealedmeta: "), err
    assert text.format(**setup) in lines[0]
    assert sm_cli.tree_digest(tmp_path) == before


def test_the_console_script_exits_with_the_status(tmp_path, repo, setup):
    code, out, err = sm_cli.run(["key", "retire", RING, "abc"], tmp_path, repo)
    assert (code, out) == (2, "")
    assert "bad VERSION 'abc'" in err
    code, out, err = sm_cli.run(["nosuch"], tmp_path, repo)
    assert code == 2, (out, err)


def test_problems_found_and_cannot_run(tmp_path, repo, setup, capsys):
    # 1: the command ran and found a problem (an envelope for another
    # backup); 2: it cannot run (no such keyring), whatever it would find.
    code, out, err = _run(capsys, tmp_path, repo, [
        "open", "--context", "b=2", setup["envelope"]])
    assert (code, out) == (1, ""), err
    code, out, err = _run(capsys, tmp_path, repo, [
        "verify", "--expect", "b=2", setup["envelope"], "-f", "json"])
    assert code == 1 and '"context-mismatch"' in out, err
    code, out, err = _run(capsys, tmp_path, repo, ["rekey", "nosuch"])
    assert (code, out) == (2, ""), err
    assert "no keyring 'nosuch'" in err
