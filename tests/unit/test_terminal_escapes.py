"""Reports never carry terminal control sequences a user chose (issue:
``ESC[8m`` in a file name hid the rest of a ``verify`` table). The real
console script runs over files named with C0, C1 and DEL characters and an
undecodable byte, and over an envelope whose context holds them; every
human-readable output (tables, value/csv/shell formats, console log lines)
shows them escaped, JSON keeps them exact."""

import json
import os

import pytest

from sealedmeta import Sealer

from tests import sm_cli

RING = "cinder-backup"
# ESC[8m (conceal), BEL, a C1 CSI, DEL, a newline, a carriage return.
NASTY = "a\x1b[8mhidden\x07\x9b2J\x7fb\nc\rd"
# A byte that is not UTF-8 (a C1 CSI as a raw byte, on 8-bit terminals).
RAW_NAME = b"raw-\x9b31m-name"
CONTEXT = {"backup_id": "b\x1b]0;title\x07", "note": "x\x9by\x85z"}


def _clean(text, what):
    """No control character but the newline ending a line."""
    bad = sorted({hex(ord(c)) for c in text
                  if (ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F
                  or 0xDC80 <= ord(c) <= 0xDCFF})
    assert bad == [], "%s carries control characters %s:\n%r" % (what, bad, text)


@pytest.fixture
def tree(tmp_path, store, ring):
    sealer = Sealer(store, keyring=RING)
    root = tmp_path / "t"
    root.mkdir()
    (root / NASTY).write_bytes(sealer.seal({"n": 1}, {"backup_id": "b1"}))
    (root / "bad-\x1b[8m").write_bytes(b"sealedmeta:U01FVE!!!")  # malformed
    with open(os.path.join(os.fsencode(root), RAW_NAME), "wb") as handle:
        handle.write(sealer.seal({"n": 2}, CONTEXT))
    store.rotate(RING)
    return root


def run(tmp_path, repo, *args):
    proc = sm_cli.start(list(args), tmp_path, repo)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.decode("utf-8"), err.decode("utf-8")


def test_verify_table_escapes_and_json_is_exact(tmp_path, repo, tree):
    code, out, err = run(tmp_path, repo, "verify", str(tree))
    assert code == 1  # the malformed file
    _clean(out, "verify table")
    _clean(err, "verify console")
    assert "a\\x1b[8mhidden\\x07\\x9b2J\\x7fb\\x0ac\\x0dd" in out
    assert "raw-\\x9b31m-name" in out

    code, out, err = run(tmp_path, repo, "verify", "-f", "json", str(tree))
    paths = {os.path.basename(f["path"]) for f in json.loads(out)["envelopes"]}
    assert NASTY in paths and "bad-\x1b[8m" in paths
    assert os.fsdecode(RAW_NAME) in paths


@pytest.mark.parametrize("fmt", ["table", "value", "shell"])
def test_rewrap_report_and_log_lines_escape(tmp_path, repo, tree, fmt):
    code, out, err = run(tmp_path, repo, "rewrap", str(tree), "-f", fmt)
    assert code == 1  # the malformed file
    _clean(out, "rewrap -f %s" % fmt)
    _clean(err, "rewrap console")
    # Shown escaped (value and shell quote the list once more).
    assert "x1b[8m" in out and "bad-\\x1b[8m" in err


def test_rewrap_json_is_exact(tmp_path, repo, tree):
    code, out, err = run(tmp_path, repo, "rewrap", str(tree), "-f", "json")
    failures = json.loads(out)["failures"]
    assert [os.path.basename(f["path"]) for f in failures] == ["bad-\x1b[8m"]


@pytest.mark.parametrize("fmt", ["table", "value", "shell"])
def test_inspect_escapes_the_context(tmp_path, repo, tree, fmt):
    path = os.path.join(os.fsencode(tree), RAW_NAME)
    code, out, err = run(tmp_path, repo, "inspect", os.fsdecode(path), "-f", fmt)
    assert code == 0, err
    _clean(out, "inspect -f %s" % fmt)
    assert "x9by" in out and "x85z" in out

    code, out, err = run(tmp_path, repo, "inspect", os.fsdecode(path), "-f", "json")
    assert json.loads(out)["context"] == CONTEXT
