"""Output a user chose cannot act on the reader (issue: output injection).

* ``-f shell`` output is made to be ``eval``-ed: a context value or a file
  name holding ``$(...)``, backticks, quotes or newlines must come back as
  text, and no command may run. The real console script's output is
  ``eval``-ed by a real bash, which then prints every variable it set.
* ``open`` prints metadata a tenant set (volume metadata, Glance
  properties): on a terminal (a real pty) no control character may reach
  it: C0, DEL, C1 (U+009B is a CSI on many terminals) and the bidi
  overrides that reorder what is shown.
"""

import json
import shlex
import subprocess

import pytest

import sealedmeta
from sealedmeta import Sealer

from tests import sm_cli

RING = "cinder-backup"
# Each of these runs a command when pasted inside double quotes.
PAYLOADS = {
    "subst": "B$(touch {flag}-subst)",
    "backtick": "B`touch {flag}-backtick`",
    "quotes": "B\"; touch {flag}-dquote; \"'; touch {flag}-squote; '",
    "newline": "B\ntouch {flag}-newline\n",
    "expand": "B${{HOME}}$HOME\\",
}
# C0 (ESC, BEL), DEL, C1 (CSI U+009B, NEL U+0085), bidi overrides and
# isolates (RLO U+202E, LRI U+2066, PDI U+2069), the Arabic letter mark.
TERMINAL_ACTORS = "\x1b[2J\x07\x7f\u009b31m\u0085\u202egnp.exe\u2066x\u2069\u061c"
SHOWN_RAW = set("\x1b\x07\x7f\u009b\u0085\u202e\u2066\u2069\u061c")


def _payloads(flag):
    return {key: value.format(flag=flag) for key, value in PAYLOADS.items()}


def run(tmp_path, repo, *args):
    proc = sm_cli.start(list(args), tmp_path, repo)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.decode("utf-8"), err.decode("utf-8")


def evaluated(shell_output, tmp_path):
    """{variable: value} as bash sees them after ``eval``-ing the output (run
    in *tmp_path*, so a command that runs leaves its file there)."""
    names = [line.split("=", 1)[0] for line in shlex.split(shell_output)
             if "=" in line]
    script = 'eval "$1"; shift; for n in "$@"; do printf "%s\\0%s\\0" "$n" "${!n}"; done'
    proc = subprocess.run(["bash", "-c", script, "bash", shell_output] + names,
                          capture_output=True, cwd=str(tmp_path), timeout=60)
    assert proc.returncode == 0, proc.stderr
    parts = proc.stdout.decode("utf-8").split("\0")[:-1]
    return dict(zip(parts[::2], parts[1::2]))


def ran(tmp_path, flag):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(flag))


def test_inspect_shell_output_runs_nothing_when_evaluated(tmp_path, repo, store, ring):
    flag = "RAN"
    context = _payloads(flag)
    envelope = tmp_path / "e.env"
    envelope.write_bytes(Sealer(store, keyring=RING).seal({"n": 1}, context))
    code, out, err = run(tmp_path, repo, "inspect", str(envelope), "-f", "shell")
    assert code == 0, err
    shell_vars = evaluated(out, tmp_path)
    assert ran(tmp_path, flag) == [], "eval of the output ran: %s" % out
    # What bash holds is the text the command printed, payloads included.
    assert shell_vars["keyring"] == RING and shell_vars["key_version"] == "1"
    for key, value in context.items():
        assert repr(value.replace("\n", "\\x0a")) in shell_vars["context"], key


def test_rewrap_shell_output_names_hostile_files_as_text(tmp_path, repo, store, ring):
    # A user who can write in the tree names a file; rewrap lists it as a
    # failure (it is no envelope), and the list is one shell variable.
    flag = "RAN"
    tree = tmp_path / "tree"
    tree.mkdir()
    names = [v for v in _payloads(flag).values() if "/" not in v]
    for name in names:
        (tree / name).write_bytes(b"sealedmeta:U01FVE!!!")  # malformed armour: a failure
    code, out, err = run(tmp_path, repo, "rewrap", str(tree), "-f", "shell")
    assert code == 1, err
    shell_vars = evaluated(out, tmp_path)
    assert ran(tmp_path, flag) == [], "eval of the output ran: %s" % out
    assert shell_vars["failed"] == str(len(names))
    for name in names:
        assert repr(str(tree / name.replace("\n", "\\x0a"))) in shell_vars["failures"]


def test_a_shell_prefix_that_is_no_name_is_refused(tmp_path, repo, store, ring):
    flag = "RAN"
    envelope = tmp_path / "e.env"
    envelope.write_bytes(Sealer(store, keyring=RING).seal({"n": 1}, {"b": "1"}))
    code, out, err = run(tmp_path, repo, "inspect", str(envelope), "-f", "shell",
                         "--prefix", "x=1; touch %s; y" % flag)
    assert (code, out) == (2, "")
    assert "bad --prefix" in err
    code, out, err = run(tmp_path, repo, "inspect", str(envelope), "-f", "shell",
                         "--prefix", "sm_")
    assert code == 0, err
    assert evaluated(out, tmp_path)["sm_keyring"] == RING


def _on_a_terminal(tmp_path, repo, args):
    """What the console script shows with its standard output on a pty."""
    code, err, shown = sm_cli.run_on_pty(args, tmp_path, repo)
    assert code == 0, err
    return shown


@pytest.mark.parametrize("armor", [False, True])
def test_open_shows_no_control_character_on_a_terminal(tmp_path, repo, store, ring,
                                                        armor):
    metadata = {"display_name": "vol" + TERMINAL_ACTORS,
                "image" + TERMINAL_ACTORS: ["x", {"n": "y" + TERMINAL_ACTORS}]}
    context = {"backup_id": "b1"}
    envelope = tmp_path / "e.env"
    raw = Sealer(store, keyring=RING).seal(metadata, context)
    if armor:
        raw = sealedmeta.armor(raw).encode("ascii")
    envelope.write_bytes(raw)
    args = ["open", "--context", "backup_id=b1", str(envelope)]
    shown = _on_a_terminal(tmp_path, repo, args)
    bad = sorted("U+%04X" % ord(c) for c in set(shown) & SHOWN_RAW)
    assert bad == [], "the terminal was sent %s:\n%r" % (bad, shown)
    assert "\\u009b31m" in shown and "\\u202egnp.exe" in shown
    # The same output read by a program is the exact metadata.
    code, out, err = run(tmp_path, repo, *args)
    assert code == 0, err
    assert json.loads(out) == metadata
    # And so is the file -o writes.
    code, out, err = run(tmp_path, repo, *args, "-o", str(tmp_path / "m.json"))
    assert code == 0, err
    assert json.loads((tmp_path / "m.json").read_text("utf-8")) == metadata


@pytest.mark.parametrize("fmt", ["json", "yaml", "table", "value", "shell"])
def test_inspect_shows_no_control_character_on_a_terminal(tmp_path, repo, store, ring,
                                                          fmt):
    # The context is in clear in the header: anyone who can write the
    # envelope file chose it.
    envelope = tmp_path / "e.env"
    envelope.write_bytes(Sealer(store, keyring=RING).seal(
        {"n": 1}, {"backup_id": "b" + TERMINAL_ACTORS}))
    shown = _on_a_terminal(tmp_path, repo, ["inspect", str(envelope), "-f", fmt])
    bad = sorted("U+%04X" % ord(c) for c in set(shown) & SHOWN_RAW)
    assert bad == [], "the terminal was sent %s:\n%r" % (bad, shown)
    assert "202e" in shown.lower()
