"""The output formatters of every command (cliff's, with two replaced).

Every listing and record goes through cliff's formatter plug-ins; the
application (:mod:`sealedmeta.cmd.main`) gives each display command these
in place of cliff's own, by name:

* ``shell``: cliff's escapes only ``"``, so a value holding ``$(...)`` or
  a backtick ran when the output was ``eval``-ed (values come from file
  names and contexts a tenant chose). Here every value is quoted as
  :func:`shlex.quote` does, every name is made a shell identifier, and a
  ``--prefix`` that is not one is refused before the command runs.
* ``json``: the same text as cliff's, but a listing is written row by row
  as the command yields them (cliff's builds the whole list first: a
  ``cinder audit`` of a cloud would hold every row).
"""

import argparse
import json
import re
import shlex
import textwrap

from cliff import columns
from cliff.formatters import json_format
from cliff.formatters import shell

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_NOT_IN_NAME = re.compile(r"[^a-z0-9_]")


def _prefix(text):
    if text and not _NAME.match(text):
        raise argparse.ArgumentTypeError(
            "bad --prefix %r: a shell variable name (letters, digits, _;"
            " not a digit first)" % text)
    return text


def shell_name(column):
    """*column* as a shell variable name (lower case, ``_`` for the rest)."""
    name = _NOT_IN_NAME.sub("_", column.lower())
    return "_" + name if name[:1].isdigit() else name


class ShellFormatter(shell.ShellFormatter):
    """``name='value'`` lines a POSIX shell can ``eval`` safely."""

    def add_argument_group(self, parser):
        super().add_argument_group(parser)
        # cliff's --prefix, checked as it is parsed (a bad one is a usage
        # error: nothing has run yet).
        for action in parser._actions:
            if action.dest == "prefix":
                action.type = _prefix

    def emit_one(self, column_names, data, stdout, parsed_args):
        wanted = {shell_name(v) for v in parsed_args.variables}
        for column, value in zip(column_names, data, strict=True):
            name = shell_name(column)
            if wanted and name not in wanted:
                continue
            if isinstance(value, columns.FormattableColumn):
                value = value.machine_readable()
            stdout.write("%s%s=%s\n" % (parsed_args.prefix, name,
                                        shlex.quote(str(value))))


def _machine(value):
    if isinstance(value, columns.FormattableColumn):
        return value.machine_readable()
    return value


class JSONFormatter(json_format.JSONFormatter):
    """cliff's JSON, a listing streamed row by row."""

    def emit_list(self, column_names, data, stdout, parsed_args):
        # What cliff's json.dump(list, indent=2 or None) writes, an item at
        # a time (ensure_ascii, the default, escapes every control
        # character).
        if parsed_args.noindent:
            opening, separator, closing = "[", ", ", "]"
        else:
            opening, separator, closing = "[\n", ",\n", "\n]"
        written = False
        for row in data:
            item = {n: _machine(v) for n, v in zip(column_names, row, strict=True)}
            if parsed_args.noindent:
                text = json.dumps(item)
            else:
                text = textwrap.indent(json.dumps(item, indent=2), "  ")
            stdout.write((separator if written else opening) + text)
            written = True
        stdout.write((closing if written else "[]") + "\n")


# (cliff's formatter namespace, name) -> the class used instead.
REPLACED = {
    ("cliff.formatter.show", "shell"): ShellFormatter,
    ("cliff.formatter.list", "json"): JSONFormatter,
}


def install(cmd):
    """Give the display command *cmd* these formatters in place of cliff's
    (before its parser is built: formatters add their own options)."""
    for extension in cmd._formatter_plugins:
        replacement = REPLACED.get((cmd.formatter_namespace, extension.name))
        if replacement is not None and not isinstance(extension.obj, replacement):
            extension.obj = replacement()
