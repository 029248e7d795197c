"""Examples taken out of the documentation's reStructuredText, to be run.

Shared by the tests that keep the guides honest: tests/unit (doctests and
``console`` transcripts on the file key store), tests/functional (the
administration guide's Barbican commands) and tests/cinder (the driver
authors' example).
"""

import doctest
import os
import re
import subprocess

from tests.dev_servers import load_tool

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What changes from one run to the next: key ids and public keys (hex),
# and times. Replaced on both sides before comparing.
_VOLATILE = (
    (re.compile(r"\b[0-9a-f]{32}(?:[0-9a-f]{32})?\b"), "<hex>"),
    (re.compile(r"\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<time>"),
)
MARK = "@@sealedmeta-doc-command@@"
# The block reader tools/dev-cloud uses too (standard library only).
_RST = load_tool("rst_blocks.py")


def read(relpath):
    with open(os.path.join(TOP, relpath), encoding="utf-8") as handle:
        return handle.read()


def code_blocks(relpath, language):
    """[(line number, text)] of the ``.. code-block:: LANGUAGE`` blocks."""
    return [(line, body) for line, lang, _, body in _RST.code_blocks(read(relpath))
            if lang == language]


def doctest_of(relpath, globs=None):
    """The ``>>>`` examples of a file as one doctest."""
    return doctest.DocTestParser().get_doctest(
        read(relpath), dict(globs or {}), relpath, os.path.join(TOP, relpath), 0)


class Command:
    """One ``$ command`` of a console transcript and what it shows."""

    def __init__(self, where, text):
        self.where = where
        self.text = text
        self.expected = []

    def __repr__(self):
        return "%s: $ %s" % (self.where, self.text.splitlines()[0])


def transcript(relpath):
    """The commands of every ``console`` block of a file, in order.

    ``$ `` starts a command, ``> `` continues it (as bash's prompts show a
    here-document), anything else is its output.
    """
    commands = []
    for lineno, text in code_blocks(relpath, "console"):
        current = None
        for offset, line in enumerate(text.splitlines()):
            if line.startswith("$ "):
                current = Command("%s:%d" % (relpath, lineno + offset), line[2:])
                commands.append(current)
            elif current is None:
                raise ValueError("%s:%d: console block output before any"
                                 " command" % (relpath, lineno + offset))
            elif line.startswith("> ") and not current.expected:
                current.text += "\n" + line[2:]
            else:
                current.expected.append(line)
    return commands


def normalise(lines):
    text = "\n".join(line.rstrip() for line in lines).strip("\n")
    for pattern, token in _VOLATILE:
        text = pattern.sub(token, text)
    return text


def run_transcript(commands, cwd, env, timeout=180):
    """What each command prints (stdout and stderr, in order), run one
    after the other by a single bash in *cwd*, so that ``cd``, variables
    and ``$?`` carry over as in a terminal."""
    script = ["exec 2>&1"]
    for command in commands:
        # The mark must not change $? for the command after it.
        script.append("__doc_status=$?; printf '%%s\\n' '%s'; (exit $__doc_status)"
                      % MARK)
        script.append(command.text)
    proc = subprocess.run(["bash", "-c", "\n".join(script)], cwd=cwd, env=env,
                          stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                          text=True, timeout=timeout)
    chunks = proc.stdout.split(MARK + "\n")[1:]
    # A command that ends bash (exit, set -e) leaves the rest without output.
    chunks += [""] * (len(commands) - len(chunks))
    return [chunk.splitlines() for chunk in chunks]


def shell_commands(relpath, program):
    """``(line number, command)`` of every *program* command in the
    ``shell`` blocks of a file (backslash continuations joined)."""
    found = []
    for lineno, text in code_blocks(relpath, "shell"):
        pending, start = "", None
        for offset, line in enumerate(text.splitlines()):
            line = line.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if start is None:
                start = lineno + offset
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            command = pending + line
            pending, first = "", start
            start = None
            if command.split()[0] == program:
                found.append((first, command))
    return found
