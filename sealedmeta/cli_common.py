"""Helpers shared by the commands: arguments, bounded input, safe output.

Every command uses them: those of :mod:`sealedmeta.cmd` and Cinder's
(:mod:`sealedmeta.cinder.cli`), which is why they live below both (the
command line and the Cinder adapter import nothing of each other).
"""

import json
import logging
import os
import re
import sys

from cliff import columns
from oslo_config import cfg
from cliff import lister

from sealedmeta import admin
from sealedmeta import atomic
from sealedmeta import exceptions


# Exit statuses, the same for every command (docs/source/cli.rst).
OK = 0
PROBLEMS = 1     # the command ran and found problems
CANNOT_RUN = 2   # usage error, bad input, configuration, key store, a bug

# Errors that are a finding about what the command examined, not a failure
# to run: an envelope that cannot be trusted or opened, a key version that
# the scan found still in use.
FINDINGS = (exceptions.InvalidEnvelope, exceptions.KeyUnavailable,
            admin.VersionInUse)


def exit_status(error):
    """The exit status of a command that raised *error*."""
    return PROBLEMS if isinstance(error, FINDINGS) else CANNOT_RUN


class CommandError(exceptions.SealedMetaError):
    """Bad command-line input (printed as one line, exit status 2)."""


class FindsProblems:
    """Mixed into a command whose take_action may find problems: it sets
    ``self.problems`` and the command exits 1 (a display command's output
    is printed all the same)."""

    problems = False

    def run(self, parsed_args):
        self.problems = False
        status = super().run(parsed_args)
        return PROBLEMS if self.problems else status


def parse_pairs(values, option="--context"):
    """{K: V} from repeated K=V arguments; one clear error otherwise."""
    result = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError("bad %s %r: expected KEY=VALUE" % (option, item))
        if key in result:
            raise CommandError("%s key %r given twice" % (option, key))
        result[key] = value
    return result


_DURATION = re.compile(r"([0-9]{1,9})([smhd]?)\Z")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text, option):
    """Seconds of a DURATION such as ``90d``, ``12h``, ``30m``, ``45s`` or
    ``45`` (seconds), at least one second; one clear error otherwise."""
    match = _DURATION.match(text or "")
    seconds = int(match.group(1)) * _UNIT[match.group(2)] if match else 0
    if seconds < 1:
        raise CommandError(
            "bad %s %r: expected a duration such as 90d, 12h, 30m or 45s"
            % (option, text))
    return seconds


def check_references(conf, *groups):
    """One clear error for an option of *groups* whose value refers
    (``$name``) to an option sealedmeta does not have: cinder.conf's
    ``$state_path``, say. oslo.config fails only as the value is read,
    naming the missing option but not the one that refers to it. Called
    where the group is about to be read (so a Cinder command given
    cinder.conf is not refused for a group it never reads)."""
    for group, name in [(g, n) for g in groups for n in getattr(conf, g)]:
        try:
            getattr(getattr(conf, group), name)
        except cfg.NoSuchOptError as exc:
            raise CommandError(
                "bad configuration: [%s] %s in %s refers to $%s, an option"
                " sealedmeta does not read (cinder.conf's [%s] %s?): give"
                " these commands a sealedmeta configuration file with the"
                " value written out, without $%s"
                % (group, name, " or ".join(conf.config_file or ()),
                   exc.opt_name, exc.group or "DEFAULT", exc.opt_name,
                   exc.opt_name)) from None


def read_input(path, limit, what):
    """Bytes of *path* ('-' = stdin), refusing more than *limit* bytes."""
    try:
        if path in (None, "-"):
            data = sys.stdin.buffer.read(limit + 1)
            name = "standard input"
        else:
            with open(path, "rb") as handle:
                data = handle.read(limit + 1)
            name = path
    except IsADirectoryError:
        raise CommandError("cannot read %s %s: it is a directory" % (what, path)) from None
    except OSError as exc:
        raise CommandError("cannot read %s %s: %s" % (what, path, exc.strerror)) from None
    if len(data) > limit:
        raise CommandError("%s %s is over the %d byte limit" % (what, name, limit))
    return data


def read_json_object(path, limit):
    data = read_input(path, limit, "metadata")
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise CommandError("metadata is not valid JSON: nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise CommandError("metadata is not valid JSON: %s" % exc) from None
    if type(value) is not dict:
        raise CommandError("metadata must be a JSON object")
    return value


def write_output(path, data, stdout, mode=0o600):
    """Write bytes to *path* atomically (private by default), or to stdout."""
    if path in (None, "-"):
        stdout.buffer.write(data) if hasattr(stdout, "buffer") else stdout.write(
            data.decode("utf-8"))
        stdout.flush()
        return
    try:
        atomic.write_file(path, data, mode=mode)
    except OSError as exc:
        raise CommandError("cannot write %s: %s" % (path, exc.strerror)) from None


def is_terminal(stream):
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False


# -- what reaches a terminal ------------------------------------------------

# What a terminal acts on: C0, DEL, C1; the bidi controls, which reorder
# what is shown (U+202E makes "gnp.exe" read "exe.png"), and the line and
# paragraph separators; and the undecodable bytes of a file name
# (surrogateescape: U+DC80..U+DCFF stand for the bytes 0x80..0xFF, C1
# among them).
_PAST_C0 = ("\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
            "\udc80-\udcff")
_CONTROL = re.compile("[\x00-\x1f%s]" % _PAST_C0)
# JSON escapes C0 in its strings itself (and a newline outside them is
# layout).
_CONTROL_IN_JSON = re.compile("[%s]" % _PAST_C0)


def _escape(match):
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:
        code -= 0xDC00
    return ("\\x%02x" if code <= 0xFF else "\\u%04x") % code


def escaped(text):
    """*text* with every character a terminal acts on (C0, DEL, C1, bidi
    controls) and every undecodable byte of a file name written ``\\xNN``
    or ``\\uNNNN``. For human-readable output only; JSON stays exact."""
    return _CONTROL.sub(_escape, text)


def json_text(value):
    """*value* as JSON (indented, keys sorted, text as it is) with every
    character a terminal acts on written ``\\uNNNN``: the same value for a
    program, nothing a terminal acts on (JSON escapes C0 only)."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return _CONTROL_IN_JSON.sub(lambda m: "\\u%04x" % ord(m.group()), text)


def escaped_tree(value):
    """*value* (str, list, tuple, dict, other) with its strings escaped."""
    if isinstance(value, str):
        return escaped(value)
    if isinstance(value, (list, tuple)):
        return type(value)(escaped_tree(v) for v in value)
    if isinstance(value, dict):
        return {escaped_tree(k): escaped_tree(v) for k, v in value.items()}
    return value


class _Shown(columns.FormattableColumn):
    """A column as a terminal may show it. A column class with ``escapes =
    True`` escapes its own parts in human_readable (its separators are
    kept)."""

    def __init__(self, column):
        super().__init__(column.machine_readable())
        self._column = column

    def human_readable(self):
        text = self._column.human_readable()
        if getattr(self._column, "escapes", False):
            return text
        return escaped_tree(text if isinstance(text, str) else str(text))

    def machine_readable(self):
        return escaped_tree(self._column.machine_readable())


def _shown(value):
    if isinstance(value, columns.FormattableColumn):
        return _Shown(value)
    return escaped_tree(value)


# Output formats that stay exact: JSON; YAML escapes control characters
# itself.
EXACT_FORMATS = ("json", "yaml")


def escape_display(cmd):
    """Make the listing or record *cmd* (a cliff display command) prints
    escaped in every human-readable format (table, value, shell, csv)."""
    produce = cmd.produce_output

    def produce_output(parsed_args, column_names, data):
        if getattr(parsed_args, "formatter", None) not in EXACT_FORMATS:
            column_names = [escaped(str(c)) for c in column_names]
            if isinstance(cmd, lister.Lister):
                data = ([_shown(v) for v in row] for row in data)
            else:
                data = [_shown(v) for v in data]
        return produce(parsed_args, column_names, data)

    cmd.produce_output = produce_output


class EscapingFilter(logging.Filter):
    """Console log lines with their control characters escaped (a message
    quotes file names and reasons a user chose)."""

    def filter(self, record):
        record.msg = escaped(record.getMessage())
        record.args = ()
        return True
