"""Helpers shared by the commands: arguments, bounded input, safe output."""

import json
import os
import sys

from sealedmeta import atomic
from sealedmeta import exceptions


class CommandError(exceptions.SealedMetaError):
    """Bad command-line input (printed as one line, exit 1)."""


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
