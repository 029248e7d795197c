"""The ``.. code-block::`` directives of a reStructuredText text.

Standard library only: tools/dev-cloud reads the deployment guide's lines
with it, and the tests that keep the guides honest read their examples.
"""

import re
import textwrap

_DIRECTIVE = re.compile(r"^(\s*)\.\. code-block:: *(\S+)\s*$")
_OPTION = re.compile(r"^\s+:([\w-]+):\s*(.*)$")


def code_blocks(text):
    """[(line number, language, {option: value}, body)] of every block:
    the body dedented, without its leading and trailing blank lines, and
    the number of its first line (1-based)."""
    lines = text.splitlines()
    found = []
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        i += 1
        if not m:
            continue
        indent = len(m.group(1))
        options = {}
        while i < len(lines) and (not lines[i].strip() or
                                  lines[i].lstrip().startswith(":")):
            option = _OPTION.match(lines[i])    # blank lines and options
            if option:
                options[option.group(1)] = option.group(2).strip()
            i += 1
        start = i
        body = []
        while i < len(lines) and (not lines[i].strip() or
                                  len(lines[i]) - len(lines[i].lstrip()) > indent):
            body.append(lines[i])
            i += 1
        found.append((start + 1, m.group(2), options,
                      textwrap.dedent("\n".join(body)).strip("\n")))
    return found
