"""Requirement 11: the real ``sealedmeta`` console script, in subprocesses
with HOME and XDG_DATA_HOME inside tmp_path."""

import base64
import concurrent.futures
import json
import os
import pty
import subprocess
import sys

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer

from tests.unit.helpers import snapshot

SCRIPT = os.path.join(os.path.dirname(sys.executable), "sealedmeta")
NAME = "cinder-backup"
METADATA = {"volume_id": "v-1", "size": 10, "objects": ["a", "b"], "parent": None,
            "ok": True, "ratio": 0.5, "name": "\u00e9t\u00e9"}


class Cli:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.home = tmp_path / "home"
        self.data = tmp_path / "data"
        self.work = tmp_path / "work"
        for d in (self.home, self.data, self.work):
            d.mkdir()
        self.repo = str(self.data / "sealedmeta" / "keys")
        self.env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                    "HOME": str(self.home), "XDG_DATA_HOME": str(self.data),
                    "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
        self.outputs = []

    def run(self, *args, stdin=b""):
        proc = subprocess.run([SCRIPT, *args], input=stdin, capture_output=True,
                              env=self.env, cwd=str(self.work), timeout=60)
        self.outputs.extend((proc.stdout, proc.stderr))
        return proc

    def ok(self, *args, stdin=b""):
        proc = self.run(*args, stdin=stdin)
        assert proc.returncode == 0, proc.stderr.decode()
        assert b"Traceback" not in proc.stderr
        return proc

    def _snapshot(self):
        snap = snapshot(str(self.tmp))
        # a lock file may appear; nothing else may change
        snap.pop(os.path.relpath(os.path.join(self.repo, ".lock"), str(self.tmp)), None)
        return snap

    @staticmethod
    def check_failure(args, proc, says=()):
        """One clear line on stderr, non-zero exit, no traceback, no output."""
        err = proc.stderr.decode("utf-8", "replace")
        assert proc.returncode != 0, (args, err)
        assert "Traceback" not in err, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1, (args, err)
        assert lines[0].startswith("sealedmeta: "), (args, err)
        for fragment in ([says] if isinstance(says, str) else says):
            assert fragment in err, (args, fragment, err)
        assert proc.stdout == b"", (args, proc.stdout)
        return lines[0]

    def fails(self, *args, stdin=b"", says=()):
        """Run a command that must fail cleanly and change nothing."""
        before = self._snapshot()
        proc = self.run(*args, stdin=stdin)
        line = self.check_failure(args, proc, says)
        after = self._snapshot()
        assert after == before, set(after.items()) ^ set(before.items())
        return line

    def all_fail(self, cases):
        """fails() for many independent (args, stdin, says) cases, run a few
        at a time; the tree is compared before and after the whole batch."""
        before = self._snapshot()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            procs = list(pool.map(lambda c: self.run(*c[0], stdin=c[1]), cases))
        for (args, _, says), proc in zip(cases, procs):
            self.check_failure(args, proc, says)
        after = self._snapshot()
        assert after == before, set(after.items()) ^ set(before.items())

    def write(self, name, data):
        path = self.work / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
        return str(path)

    def key_files(self, *repos):
        keys = []
        for repo in repos or (self.repo,):
            for dirpath, _, files in os.walk(repo):
                for f in files:
                    if f.endswith(".key"):
                        with open(os.path.join(dirpath, f), "rb") as handle:
                            keys.append(handle.read())
        return keys


@pytest.fixture
def cli(tmp_path):
    assert os.access(SCRIPT, os.X_OK), SCRIPT
    return Cli(tmp_path)


@pytest.fixture
def ready(cli):
    cli.ok("keyring", "create", NAME)
    cli.meta = cli.write("meta.json", json.dumps(METADATA))
    return cli


def test_keyring_create_list_show(cli):
    created = json.loads(cli.ok("keyring", "create", NAME, "-f", "json").stdout)
    ring = FileKeyStore(cli.repo).get_keyring(NAME)
    assert created == {"name": NAME, "active_version": 1,
                       "active_key_id": ring.active.key_id.hex(), "versions": 1}
    assert os.path.isdir(cli.repo)  # under XDG_DATA_HOME
    FileKeyStore(cli.repo).rotate(NAME)
    cli.ok("keyring", "create", "another")
    listed = json.loads(cli.ok("keyring", "list", "-f", "json").stdout)
    assert listed == [{"name": "another", "active_version": 1, "versions": 1},
                      {"name": NAME, "active_version": 2, "versions": 2}]
    shown = json.loads(cli.ok("keyring", "show", NAME, "-f", "json").stdout)
    ring = FileKeyStore(cli.repo).get_keyring(NAME)
    assert [(r["version"], r["key_id"], r["state"]) for r in shown] == [
        (v.number, v.key_id.hex(), v.state.value) for v in ring.versions]
    assert all(r["created"].endswith("Z") for r in shown)
    table = cli.ok("keyring", "show", NAME).stdout.decode()
    assert ring.active.key_id.hex() in table and "decrypt-only" in table


def test_xdg_fallback_to_home(cli):
    del cli.env["XDG_DATA_HOME"]
    cli.ok("keyring", "create", NAME)
    assert os.path.isfile(cli.home / ".local" / "share" / "sealedmeta" / "keys" / NAME
                          / "keyring.json")


def test_seal_open_through_files(ready):
    ready.ok("seal", "--context", "backup_id=b1", "--context", "volume_id=v-1",
             ready.meta, "-o", "env.bin")
    raw = (ready.work / "env.bin").read_bytes()
    assert raw.startswith(b"SMETA\x01")
    ready.ok("open", "--context", "volume_id=v-1", "--context", "backup_id=b1",
             "env.bin", "-o", "out.json")
    out = ready.work / "out.json"
    assert json.loads(out.read_text("utf-8")) == METADATA
    assert os.stat(out).st_mode & 0o777 == 0o600
    # the library opens what the CLI sealed
    sealer = Sealer(FileKeyStore(ready.repo), keyring=NAME)
    assert sealer.open(raw, {"backup_id": "b1", "volume_id": "v-1"}) == METADATA


def test_seal_open_through_pipes_with_armor(ready):
    meta = json.dumps(METADATA).encode()
    armoured = ready.ok("seal", "--context", "backup_id=b1", "--armor", stdin=meta).stdout
    text = armoured.decode("ascii")
    assert text.startswith("sealedmeta:") and text.endswith("\n")
    assert text.count("\n") == 1
    opened = ready.ok("open", "--context", "backup_id=b1", stdin=armoured).stdout
    assert json.loads(opened) == METADATA
    # raw bytes through stdout too (not a terminal)
    raw = ready.ok("seal", "--context", "backup_id=b1", "-", stdin=meta).stdout
    assert raw.startswith(b"SMETA\x01")
    assert json.loads(ready.ok("open", "--context", "backup_id=b1", "-", stdin=raw).stdout) \
        == METADATA


def test_inspect_json(ready):
    ready.ok("seal", "--context", "backup_id=b1", "--context", "volume_id=v", ready.meta,
             "-o", "env.bin")
    ring = FileKeyStore(ready.repo).get_keyring(NAME)
    for source in ("env.bin",):
        shown = json.loads(ready.ok("inspect", source, "-f", "json").stdout)
        assert shown["keyring"] == NAME
        assert shown["key_version"] == 1
        assert shown["key_id"] == ring.active.key_id.hex()
        assert shown["context"] == {"backup_id": "b1", "volume_id": "v"}
        assert shown["authenticated"] is False
        assert shown["size"] == (ready.work / "env.bin").stat().st_size
        assert shown["format_version"] == 1 and shown["suite"] == 1
    armoured = ready.ok("seal", "--context", "a=b", "--armor", ready.meta).stdout
    shown = json.loads(ready.ok("inspect", "-", "-f", "json", stdin=armoured).stdout)
    assert shown["context"] == {"a": "b"}


def test_key_repository_override(cli, tmp_path):
    other = str(tmp_path / "elsewhere")
    cli.ok("--key-repository", other, "keyring", "create", NAME)
    assert os.path.isfile(os.path.join(other, NAME, "keyring.json"))
    assert not os.path.exists(cli.repo)
    assert json.loads(cli.ok("keyring", "list", "-f", "json").stdout) == []
    listed = json.loads(cli.ok("--key-repository", other, "keyring", "list", "-f",
                               "json").stdout)
    assert [r["name"] for r in listed] == [NAME]
    meta = cli.write("m.json", "{}")
    raw = cli.ok("--key-repository", other, "seal", "--context", "a=b", meta).stdout
    assert Sealer(FileKeyStore(other), keyring=NAME).open(raw, {"a": "b"}) == {}
    # the default store has no such keyring
    cli.fails("open", "--context", "a=b", stdin=raw, says="no keyring")


def test_bad_inputs_fail_cleanly(ready, tmp_path):
    r = ready
    r.ok("seal", "--context", "backup_id=b1", r.meta, "-o", "good.bin")
    good = (r.work / "good.bin").read_bytes()
    armoured = r.ok("seal", "--context", "backup_id=b1", "--armor", r.meta).stdout
    big = os.urandom(2 * 1024 * 1024)
    deep = "{" + '"a": {' * 40 + "}" * 41
    # sealed by the library with a binary value: JSON cannot carry it
    binary = Sealer(FileKeyStore(r.repo), keyring=NAME).seal({"b": b"\x00"}, {"a": "b"})
    files = {
        "bad.json": "{x", "bin.json": b"\xff\xfe", "arr.json": "[1, 2]",
        "deep.json": deep, "trunc.bin": good[:-10], "short.bin": good[:30],
        "junk.bin": os.urandom(500), "junk2.bin": b"SMETA\x02" + os.urandom(100),
        "big.bin": big, "big.json": b'{"a": "' + b"x" * (2 << 20) + b'"}',
        "binary.bin": binary,
    }
    path = {name: r.write(name, data) for name, data in files.items()}
    open_b1 = ("open", "--context", "backup_id=b1")
    seal_ab = ("seal", "--context", "a=b")
    cases = [
        # missing file, directory
        (open_b1 + ("missing.bin",), b"", "missing.bin"),
        (open_b1 + (str(r.home),), b"", "directory"),
        (seal_ab + ("missing.json", "-o", "x.bin"), b"", "missing.json"),
        (seal_ab + (str(r.home), "-o", "x.bin"), b"", "directory"),
        (("inspect", "missing.bin"), b"", "missing.bin"),
        # malformed JSON, not an object, not sealable
        (seal_ab + (path["bad.json"], "-o", "x.bin"), b"", "not valid JSON"),
        (seal_ab + (path["bin.json"],), b"", "JSON"),
        (seal_ab + (path["arr.json"], "-o", "x.bin"), b"", "JSON object"),
        (seal_ab, b'"just a string"', "JSON object"),
        (seal_ab + (path["deep.json"],), b"", "deeper"),
        # bad K=V
        (("seal", "--context", "noequals", r.meta), b"", "KEY=VALUE"),
        (("seal", "--context", "=v", r.meta), b"", "KEY=VALUE"),
        (("seal", "--context", "a=1", "--context", "a=2", r.meta), b"", "twice"),
        (("seal", "--context", "a b=c", r.meta), b"", "context key"),
        (("open", "--context", "noequals", "good.bin"), b"", "KEY=VALUE"),
        # wrong context
        (("open", "--context", "backup_id=other", "good.bin"), b"", "another context"),
        (open_b1 + ("--context", "x=y", "good.bin"), b"", "another context"),
        # unknown or invalid keyring
        (seal_ab + ("--keyring", "nope", r.meta, "-o", "x.bin"), b"", "no keyring 'nope'"),
        (seal_ab + ("--keyring", "bad name", r.meta), b"", "invalid keyring name"),
        (("keyring", "show", "nope"), b"", "no keyring"),
        (("keyring", "create", NAME), b"", "already exists"),
        (("keyring", "create", "../escape"), b"", "invalid keyring name"),
        # truncated and junk envelopes
        (open_b1 + (path["trunc.bin"],), b"", "authentication"),
        (open_b1 + (path["short.bin"],), b"", "truncated"),
        (open_b1, armoured[:-20] + b"\n", ()),
        (open_b1 + (path["junk.bin"],), b"", "not a sealedmeta envelope"),
        (("inspect", path["junk2.bin"]), b"", "unsupported envelope format"),
        # oversized input
        (open_b1, big, "limit"),
        (("inspect", path["big.bin"]), b"", "limit"),
        (seal_ab + (path["big.json"], "-o", "x.bin"), b"", "limit"),
        # binary metadata cannot be printed as JSON
        (("open", "--context", "a=b", path["binary.bin"]), b"", "binary"),
    ]
    r.all_fail(cases)
    assert not os.path.exists(r.work / "x.bin")
    assert sorted(os.listdir(r.work)) == sorted(["good.bin", "meta.json", *files])


def test_repository_open_to_others_fails_cleanly(ready):
    os.chmod(ready.repo, 0o755)
    try:
        line = ready.fails("keyring", "list")
        assert "chmod 700" in line
        ready.fails("seal", "--context", "a=b", ready.meta, says="chmod 700")
    finally:
        os.chmod(ready.repo, 0o700)


def test_binary_envelope_not_written_to_a_terminal(ready):
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([SCRIPT, "seal", "--context", "a=b", ready.meta],
                              stdout=follower, stderr=subprocess.PIPE, env=ready.env,
                              cwd=str(ready.work), timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode != 0
    assert b"--armor" in proc.stderr and b"Traceback" not in proc.stderr


def test_outputs_never_contain_key_material(ready, tmp_path):
    r = ready
    other = str(tmp_path / "other-repo")
    r.ok("--key-repository", other, "keyring", "create", NAME, "-f", "json")
    FileKeyStore(r.repo).rotate(NAME)
    r.ok("keyring", "create", "second", "-f", "json")
    for fmt in ("table", "json", "value"):
        r.ok("keyring", "show", NAME, "-f", fmt)
    r.ok("keyring", "list", "-f", "csv")
    r.ok("keyring", "create", "third", "-f", "shell")
    r.ok("keyring", "show", "second", "-f", "json")
    r.ok("seal", "--context", "a=b", r.meta, "-o", "e.bin")
    armoured = r.ok("seal", "--context", "a=b", "--armor", r.meta).stdout
    r.ok("open", "--context", "a=b", stdin=armoured)
    r.ok("inspect", "e.bin", "-f", "json")
    r.ok("inspect", "e.bin", "-f", "shell")
    r.all_fail([(("open", "--context", "a=c", "e.bin"), b"", "another context"),
                (("open", "--context", "a=b"), armoured[:-5], ())])
    r.run("--key-repository", other, "open", "--context", "a=b", "e.bin")
    r.run("--debug", "open", "--context", "a=b", r.write("j", os.urandom(64)))
    r.run("--debug", "--key-repository", other, "open", "--context", "a=b", "e.bin")

    keys = r.key_files(r.repo, other)
    assert len(keys) == 5 and all(len(k) == 32 for k in keys)
    # binary envelopes on stdout are not text; check them only for the raw key
    blob = b"\n".join(r.outputs)
    assert len(r.outputs) > 25
    for key in keys:
        forms = [key, key.hex().encode(), key.hex().upper().encode(),
                 base64.b64encode(key), base64.b64encode(key).rstrip(b"="),
                 base64.urlsafe_b64encode(key), base64.urlsafe_b64encode(key).rstrip(b"="),
                 repr(key).encode()]
        for form in forms:
            assert form not in blob, form
