"""The formatters every command uses in place of cliff's (see
sealedmeta.cmd.formatters; the attack tests are test_output_injection.py)."""

import argparse
import io

import pytest
from cliff import columns
from cliff.formatters import json_format

from sealedmeta.cmd import formatters


class Listed(columns.FormattableColumn):
    def human_readable(self):
        return ", ".join(self._value)

    def machine_readable(self):
        return list(self._value)


ROWS = [
    (1, "a\x7f\x9b\u202e\n\"'", None, Listed(["x", "y"])),
    (2, "", True, Listed([])),
    (3, {"nested": {"k": [1, 2.5, None]}}, False, Listed(["z"])),
]
NAMES = ("id", "text", "flag", "items")


@pytest.mark.parametrize("count", [0, 1, 3])
@pytest.mark.parametrize("noindent", [False, True])
def test_json_listing_is_cliffs_text(count, noindent):
    args = argparse.Namespace(noindent=noindent)
    ours, theirs = io.StringIO(), io.StringIO()
    formatters.JSONFormatter().emit_list(NAMES, iter(ROWS[:count]), ours, args)
    json_format.JSONFormatter().emit_list(NAMES, iter(ROWS[:count]), theirs, args)
    assert ours.getvalue() == theirs.getvalue()


def test_json_listing_writes_each_row_before_the_next_is_made():
    # cliff's formatter reads every row before writing one: a listing of a
    # whole cloud would be held in memory.
    out = io.StringIO()
    seen = []

    def rows():
        for row in ROWS:
            seen.append(out.getvalue().count('"id"'))
            yield row
    formatters.JSONFormatter().emit_list(NAMES, rows(), out,
                                         argparse.Namespace(noindent=False))
    assert seen == [0, 1, 2]


def test_shell_names_are_identifiers():
    assert formatters.shell_name("Key-ID:x y") == "key_id_x_y"
    assert formatters.shell_name("9lives") == "_9lives"
    assert formatters.shell_name("$(id)") == "__id_"
