"""The documentation's examples, run as written.

* ``>>>`` examples in README.rst and the guides are doctests, each file's
  run in a scratch directory with its own globals.
* ``.. code-block:: console`` blocks are transcripts of sessions on the
  file key store: each file's blocks are run in order by one bash, in a
  scratch HOME (so the default key store is ``~/.local/share/sealedmeta``,
  as on a fresh machine), and what each command prints must be what the
  block shows, key ids and times aside.

A file listed here that lost all its examples fails too: the lists say
where examples are expected.
"""

import doctest
import difflib
import os
import sys

import pytest

from tests import doc_blocks

DOCTEST_FILES = [
    "README.rst",
    "docs/source/quickstart.rst",
    "docs/source/keys.rst",
    "docs/source/api.rst",
]
TRANSCRIPT_FILES = [
    "docs/source/quickstart.rst",
    "docs/source/keys.rst",
    "docs/source/audit.rst",
]


@pytest.mark.parametrize("relpath", DOCTEST_FILES)
def test_doctests(relpath, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    test = doc_blocks.doctest_of(relpath)
    assert test.examples, "%s has no >>> examples" % relpath
    report = []
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    result = runner.run(test, out=report.append, clear_globs=True)
    assert result.failed == 0, "".join(report)


def _environment(home):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XDG_", "SEALEDMETA_", "OS_"))}
    env.update(
        HOME=str(home),
        # The sealedmeta script (and python3) of the interpreter running
        # the tests come first.
        PATH=os.pathsep.join([os.path.dirname(sys.executable),
                              env.get("PATH", os.defpath)]),
        PYTHONUNBUFFERED="1",     # stdout and stderr in the order written
        LC_ALL="C.UTF-8",
    )
    return env


@pytest.mark.parametrize("relpath", TRANSCRIPT_FILES)
def test_console_transcripts(relpath, tmp_path):
    commands = doc_blocks.transcript(relpath)
    assert commands, "%s has no console transcript" % relpath
    home = tmp_path / "home"
    work = home / "work"
    work.mkdir(parents=True)
    outputs = doc_blocks.run_transcript(commands, str(work), _environment(home))
    problems = []
    for command, actual in zip(commands, outputs):
        want = doc_blocks.normalise(command.expected)
        got = doc_blocks.normalise(actual)
        if want != got:
            diff = difflib.unified_diff(
                want.splitlines(), got.splitlines(), "documented", "actual",
                lineterm="")
            problems.append("%r\n%s" % (command, "\n".join(diff)))
    assert not problems, "\n\n".join(problems)


def test_normalise_keeps_what_matters():
    # Key ids and times are volatile; everything else must match.
    assert doc_blocks.normalise(["| 1 | %s | 2025-01-02T03:04:05Z |  " % ("ab" * 16)]) \
        == "| 1 | <hex> | <time> |"
    assert doc_blocks.normalise(["size 305"]) != doc_blocks.normalise(["size 292"])
