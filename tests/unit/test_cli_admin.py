"""The real ``sealedmeta`` console script: rekey, rewrap, verify, key *,
coordination over file://, logging. Every case runs a subprocess."""

import json
import re
import os
import time

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import armor
from sealedmeta import coordination
from sealedmeta import exceptions
from sealedmeta import inspect
from sealedmeta import keyring as kr
from sealedmeta.cmd import keyring as keyring_cmd

from tests import sm_cli
from tests.unit.helpers import file_size_limit
from tests.unit.helpers import temp_file

RING = "kr"
HOUR = 3600


@pytest.fixture
def env(tmp_path):
    """keyring kr: v1 decrypt-only, v2 active; data/ holds 4 envelopes
    under v1 and 2 under v2; junk/ holds no envelope."""
    repo = tmp_path / "keys"
    store = FileKeyStore(str(repo))
    store.create_keyring(RING)
    sealer = Sealer(store, keyring=RING, cache_ttl=0)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    contexts = {}
    for i in range(6):
        if i == 4:
            store.rotate(RING)
        context = {"backup_id": "b%d" % i}
        raw = sealer.seal({"i": i}, context)
        name = data / ("sub" if i % 2 else "") / ("e%d" % i)
        name.write_bytes(raw if i % 3 else (armor(raw) + "\n").encode())
        contexts[str(name)] = context
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.txt").write_text("hello\n")
    (junk / "b.bin").write_bytes(os.urandom(200))

    class Env:
        pass
    e = Env()
    e.tmp, e.repo, e.store, e.data, e.junk, e.contexts = (
        tmp_path, repo, store, data, junk, contexts)
    # No agent runs beside these commands: a settle window of 0 lets them
    # retire and destroy the version the fixture just rotated away from
    # (test_settle_window_on_the_command_line keeps the default).
    e.lab_config = sm_cli.write_config(tmp_path / "lab.conf",
                                       sealedmeta={"cache_ttl": 0})
    e.run = lambda *args, config=None: sm_cli.run(
        args, tmp_path, repo, config or e.lab_config)
    e.digest = lambda: sm_cli.tree_digest(data, junk, repo)
    return e


def one_line(err):
    lines = err.splitlines()
    assert len(lines) == 1, "expected one stderr line, got:\n%s" % err
    assert lines[0].startswith("sealedmeta: ")
    return lines[0]


# -- bad input: one line, the right exit code, nothing modified ------------
# Exit status 2: the command cannot run (bad arguments, no such keyring, a
# change the lifecycle refuses); 1: it ran and found problems.

BAD = [
    # (argv, exit code, text in the line)
    (["rewrap", "{tmp}/missing"], 2, "missing: no such file or directory"),
    (["rewrap", "{data}", "{tmp}/missing"], 2, "missing: no such file or directory"),
    (["rewrap", "{junk}"], 0, "no envelope found under"),
    (["rewrap", "/proc/self/mem"], 1,
     "1 file could not be rewrapped (first: /proc/self/mem: cannot read:"
     " Input/output error)"),
    (["rewrap", "--keyring", "nosuch", "{data}"], 2, "no keyring 'nosuch'"),
    (["rewrap", "--keyring", "bad name!", "{data}"], 2, "invalid keyring name"),
    (["rewrap", "--temp-age", "59", "{data}"], 2,
     "bad --temp-age '59': expected a number of seconds, at least 60"),
    (["rewrap", "--temp-age", "1h", "{data}"], 2, "bad --temp-age '1h'"),
    (["verify", "{tmp}/missing"], 2, "verify cannot run: {tmp}/missing: no such file"),
    (["verify", "{junk}"], 1, "no envelope found under"),
    (["verify", "/proc/self/mem"], 1, "1 of 1 envelopes are not valid (unreadable 1)"),
    (["verify", "--expect", "backup_id", "{data}"], 2,
     "bad --expect 'backup_id': expected KEY=VALUE"),
    (["verify", "--expect", "=b1", "{data}"], 2, "bad --expect '=b1'"),
    (["verify", "--expect", "a=1", "--expect", "a=2", "{data}"], 2, "given twice"),
    (["verify", "--expect", "bad key!=1", "{data}"], 2, "invalid context key"),
    (["rekey", "nosuch"], 2, "no keyring 'nosuch'"),
    (["rekey", "bad name!"], 2, "invalid keyring name"),
    (["rekey", RING, "--rewrap", "{tmp}/missing"], 2, "no such file or directory"),
    (["key", "retire", RING, "abc"], 2, "bad VERSION 'abc'"),
    (["key", "retire", RING, "0"], 2, "bad VERSION '0'"),
    (["key", "retire", RING, "1.5"], 2, "bad VERSION '1.5'"),
    (["key", "retire", RING, "99999999999"], 2, "bad VERSION"),
    (["key", "retire", RING, "9"], 2, "keyring 'kr' has no version 9"),
    (["key", "retire", RING, "2"], 2, "version 2 of 'kr' is the active version"),
    (["key", "retire", "nosuch", "1"], 2, "no keyring 'nosuch'"),
    (["key", "reinstate", RING, "1"], 2, "version 1 of 'kr' is already decrypt-only"),
    (["key", "destroy", RING, "1", "--force"], 2,
     "cannot go from decrypt-only to destroyed; retire it first"
     " ('sealedmeta key retire')"),
    (["key", "destroy", RING, "2", "--force"], 2, "is the active version"),
    (["key", "destroy", RING, "x", "--force"], 2, "bad VERSION 'x'"),
    (["keyring", "create", RING], 2, "keyring 'kr' already exists"),
    (["key", "destroy", RING, "1", "--after", "30d"], 2,
     "--after needs the backup stores to scan: --scan PATH ..., --ceph-pool"
     " POOL or --scan-cinder CINDER_CONF"),
    (["key", "destroy", RING, "--due"], 2,
     "--due needs the backup stores to scan"),
    (["key", "destroy", RING, "1", "--due", "--scan", "{junk}"], 2,
     "give either VERSION or --due"),
    (["key", "destroy", RING], 2, "give either VERSION or --due"),
    (["key", "destroy", RING, "1", "--after", "30d", "--force"], 2,
     "--force goes with an immediate destroy only: --after and --due always"
     " check the backup stores"),
    (["key", "destroy", RING, "--due", "--force", "--scan", "{junk}"], 2,
     "--force goes with an immediate destroy only"),
    (["key", "destroy", RING, "--due", "--after", "1d", "--scan", "{junk}"],
     2, "give either --after or --due"),
    (["key", "destroy", RING, "1", "--after", "30x", "--scan", "{junk}"], 2,
     "bad --after '30x': expected a duration such as 90d, 12h, 30m or 45s"),
    (["key", "destroy", RING, "1", "--after", "0d", "--scan", "{junk}"], 2,
     "bad --after '0d'"),
    (["key", "destroy", RING, "1", "--after", "30d", "--scan", "{junk}"], 2,
     "cannot go from decrypt-only to pending-destruction; retire it first"
     " ('sealedmeta key retire')"),
    (["key", "destroy", RING, "2", "--after", "30d", "--scan", "{junk}"], 2,
     "is the active version"),
    (["key", "destroy", "nosuch", "--due", "--scan", "{junk}"], 2,
     "no keyring 'nosuch'"),
]


@pytest.mark.parametrize("argv,code,text", BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input(env, argv, code, text):
    fill = {"tmp": env.tmp, "data": env.data, "junk": env.junk}
    argv = [a.format(**fill) for a in argv]
    before = env.digest()
    got, out, err = env.run(*argv, "-f", "json") if argv[0] != "verify" else \
        env.run(*argv)
    assert got == code, err
    assert text.format(**fill) in one_line(err)
    assert env.digest() == before
    if code == 2 or argv[0] in ("key", "rekey", "keyring") or (
            argv[0] == "rewrap" and code == 1 and "/proc" not in argv[-1]):
        assert out == ""


def test_store_unreachable(env):
    os.chmod(env.repo, 0o755)  # the file store refuses a non-private repo
    before = env.digest()
    code, out, err = env.run("verify", str(env.data))
    assert (code, out) == (2, "")
    assert "verify cannot run: refusing key repository" in one_line(err)
    for argv in (["rewrap", str(env.data)], ["rekey", RING],
                 ["key", "retire", RING, "1"]):
        code, out, err = env.run(*argv)
        assert code == 2 and "refusing key repository" in one_line(err)
    assert env.digest() == before


def test_failed_key_store_write_is_one_line(env):
    """The disk refuses the key store's writes (EFBIG under a file size
    limit): every change is one line naming the keyring and the operation,
    exit 2, no output, nothing changed."""
    before = env.digest()
    for argv, text in (
            (["keyring", "create", "new-ring"], "cannot create keyring 'new-ring'"),
            (["rekey", RING], "cannot rotate keyring 'kr'"),
            # rekey reads the keyring again and says what it found
            (["rekey", RING], "the keyring shows that nothing changed:"
                              " version 2 is still active"),
            (["key", "retire", RING, "1"], "cannot retire version 1 of keyring 'kr'"),
            (["key", "destroy", RING, "1", "--force"], None)):
        if text is None:  # destroy needs a retired version
            env.store.set_state(RING, 1, "retired")
            before = env.digest()
            text = "cannot destroy version 1 of keyring 'kr'"
        proc = sm_cli.start(argv + ["-f", "json"], env.tmp, env.repo,
                            config=env.lab_config,
                            preexec_fn=file_size_limit(64))
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 2, err
        line = one_line(err.decode())
        assert text in line and "File too large" in line, line
        assert out == b""
        assert env.digest() == before
    assert env.store.get_keyring(RING).version(1).state is kr.KeyState.RETIRED


def test_destroy_refusals(env):
    env.store.set_state(RING, 1, "retired")
    before = env.digest()
    code, out, err = env.run("key", "destroy", RING, "1")
    assert code == 2
    assert "without --scan PATH" in one_line(err)
    code, out, err = env.run("key", "destroy", RING, "1", "--scan", str(env.data))
    assert code == 1
    line = one_line(err)
    assert "found 4 envelopes under it: " in line
    assert line.count(str(env.data)) == 4
    code, out, err = env.run("key", "destroy", RING, "1", "--scan", str(env.tmp / "nope"))
    assert code == 2 and "no such file or directory" in one_line(err)
    assert env.digest() == before
    assert env.store.get_keyring(RING).version(1).state is kr.KeyState.RETIRED


def test_destroy_refusal_names_at_most_ten_paths(env):
    sealer = Sealer(env.store, keyring=RING)
    many = env.tmp / "many"
    many.mkdir()
    env.store.rotate(RING)
    for i in range(25):
        (many / ("m%02d" % i)).write_bytes(sealer.seal({}, {"backup_id": str(i)}))
    env.store.rotate(RING)
    env.store.set_state(RING, 3, "retired")
    code, out, err = env.run("key", "destroy", RING, "3", "--scan", str(many))
    line = one_line(err)
    assert code == 1 and "found 25 envelopes under it" in line
    assert line.count(str(many)) == 10 and ", ...;" in line


# -- what the commands do -------------------------------------------------------

def test_rekey_prints_the_new_version(env):
    code, out, err = env.run("rekey", RING, "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    ring = env.store.get_keyring(RING)
    assert data == {"keyring": RING, "rotated": True, "version": 3,
                    "previous_version": 2,
                    "key_id": ring.version(3).key_id.hex()}
    assert ring.active.number == 3
    assert ring.version(2).state is kr.KeyState.DECRYPT_ONLY


def test_rekey_with_rewrap(env):
    stale = temp_file(env.data / "sub", 2 * HOUR)
    code, out, err = env.run("rekey", RING, "--rewrap", str(env.data), "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["version"], data["rewrapped"], data["already_current"],
            data["failed"], data["removed_temp"]) == (3, 6, 0, 0, 1)
    assert [e["path"] for e in data["removed_temp_files"]] == [stale]
    assert data["active_versions"] == {RING: 3}
    opener = Sealer(env.store, keyring=RING)
    for path, context in env.contexts.items():
        raw = open(path, "rb").read()
        assert inspect(raw).key_version == 3
        opener.open(raw, context)


def test_rewrap_then_verify(env):
    code, out, err = env.run("rewrap", str(env.data), str(env.junk), "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["rewrapped"], data["already_current"], data["skipped"],
            data["failed"]) == (4, 2, 2, 0)
    assert sorted(f["path"] for f in data["skipped_files"]) == sorted(
        str(p) for p in env.junk.iterdir())
    digest = env.digest()
    code, out, err = env.run("rewrap", str(env.data), "-f", "json")
    assert json.loads(out)["already_current"] == 6 and env.digest() == digest
    code, out, err = env.run("verify", str(env.data), "--expect", "backup_id=b0",
                             "-f", "json")
    assert code == 1
    report = json.loads(out)
    assert report["summary"]["counts"]["valid"] == 1
    assert report["summary"]["counts"]["context-mismatch"] == 5
    assert "5 of 6 envelopes are not valid (context-mismatch 5)" in one_line(err)
    code, out, err = env.run("verify", str(env.data), "-f", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["summary"]["all_valid"] is True
    assert env.digest() == digest  # verify never writes


def test_verify_table(env):
    # cliff's table of the report: a line per envelope and per version.
    code, out, err = env.run("verify", str(env.data))
    assert code == 0, err
    cells, name = {}, None
    for line in out.splitlines():
        parts = [p.strip() for p in line.strip("|").split("|")]
        if len(parts) == 2:
            field, value = parts
            name = field or name
            cells.setdefault(name, []).append(value)
    assert cells["Field"] == ["Value"]
    assert list(cells)[1:] == ["envelopes", "format", "skipped", "summary", "versions"]
    rows = [v for v in cells["envelopes"] if v.startswith(str(env.data))]
    assert len(rows) == 6 and all(": valid (kr version " in r for r in rows)
    assert cells["summary"] == ["6 envelopes, 0 skipped: valid 6"]
    assert any(v.startswith("kr version 1 decrypt-only: ") for v in cells["versions"])


def test_verify_json_is_stable(env):
    outs = [env.run("verify", str(env.data), "-f", "json")[1] for _ in range(2)]
    assert outs[0] == outs[1]
    assert outs[0] == json.dumps(json.loads(outs[0]), sort_keys=True, indent=2) + "\n"


def test_key_lifecycle(env):
    code, out, err = env.run("key", "retire", RING, "1", "-f", "json")
    assert code == 0, err
    assert json.loads(out)["state"] == "retired"
    code, out, _ = env.run("verify", str(env.data), "-f", "json")
    assert code == 1 and json.loads(out)["summary"]["counts"]["retired-key"] == 4
    code, out, err = env.run("key", "reinstate", RING, "1", "-f", "json")
    assert code == 0 and json.loads(out)["state"] == "decrypt-only"
    assert env.run("rewrap", str(env.data))[0] == 0
    assert env.run("key", "retire", RING, "1")[0] == 0
    code, out, err = env.run("key", "destroy", RING, "1", "--scan", str(env.data),
                             str(env.junk), "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["state"], data["scanned_envelopes"], data["envelopes_under_version"],
            data["forced"]) == ("destroyed", 6, 0, False)
    assert not (env.repo / RING / "v1.key").exists()
    code, out, err = env.run("key", "reinstate", RING, "1")
    assert code == 2 and "cannot go from destroyed" in one_line(err)
    # Destroying again (how an interrupted destroy is finished) is harmless,
    # needs no scan, and says there was nothing left.
    before = env.digest()
    code, out, err = env.run("key", "destroy", RING, "1", "-f", "json")
    assert code == 0, err
    assert json.loads(out)["state"] == "destroyed"
    assert "scanned_envelopes" not in json.loads(out)
    code, out, err = env.run("key", "destroy", RING, "1")
    assert code == 0 and "None" not in out, out
    assert err == ("sealedmeta: version 1 of keyring kr was already destroyed;"
                   " nothing was left\n")
    assert env.digest() == before


def test_keyring_show_leftovers(env):
    """The file store leaves nothing behind: an empty listing, and the
    versions listing is unchanged by the option's existence."""
    code, out, err = env.run("keyring", "show", RING, "--leftovers", "-f", "json")
    assert (code, json.loads(out)) == (0, []), err
    # The empty table prints nothing; the console says why.
    code, out, err = env.run("keyring", "show", RING, "--leftovers")
    assert (code, out.strip()) == (0, ""), err
    assert "the key store holds nothing left over" in one_line(err)
    code, out, err = env.run("keyring", "show", "nosuch", "--leftovers")
    assert code == 2 and "no keyring 'nosuch'" in one_line(err)


def test_keyring_create_takes_the_lock(env):
    url = "file://%s" % (env.tmp / "locks")  # the default, next to keys/
    with coordination.Coordinator(url) as held, held.lock("newring"):
        config = sm_cli.write_config(env.tmp / "c.conf",
                                     sealedmeta={"cache_ttl": 0},
                                 coordination={"lock_timeout": "0.5"})
        code, out, err = env.run("keyring", "create", "newring", config=config)
        assert code == 2
        assert "timed out after 0.5s waiting for the lock of keyring 'newring'" in one_line(err)
        assert "newring" not in env.store.list_keyrings()
    code, out, err = env.run("keyring", "create", "newring", "-f", "json", config=config)
    assert code == 0, err
    assert json.loads(out)["active_version"] == 1


def test_state_changes_wait_for_the_lock(env):
    """While another process holds the keyring's lock, rekey / retire /
    destroy refuse after lock_timeout and change nothing."""
    config = sm_cli.write_config(env.tmp / "c.conf",
                                 sealedmeta={"cache_ttl": 0},
                                 coordination={"lock_timeout": "0.5"})
    env.store.rotate(RING)
    env.store.set_state(RING, 1, "retired")
    before = env.digest()
    url = "file://%s" % (env.tmp / "locks")
    with coordination.Coordinator(url) as held, held.lock(RING):
        for argv in (["rekey", RING], ["key", "retire", RING, "2"],
                     ["key", "reinstate", RING, "1"],
                     ["key", "destroy", RING, "1", "--force"]):
            t0 = time.monotonic()
            code, out, err = env.run(*argv, config=config)
            assert code == 2 and "timed out after 0.5s" in one_line(err), argv
            assert time.monotonic() - t0 >= 0.5
        assert env.digest() == before
    assert env.run("rekey", RING, config=config)[0] == 0


@pytest.mark.parametrize("url,text", [
    ("redis://127.0.0.1:{port}", "is unreachable (127.0.0.1:{port}: Connection refused)"),
    ("file://{tmp}/data/e0/locks", "is unreachable (error opening file: Not a directory"),
    ("nosuch://x", "unknown scheme 'nosuch'"),
])
def test_unreachable_backend_refuses_state_changes(env, url, text):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    fill = {"port": port, "tmp": env.tmp}
    config = sm_cli.write_config(env.tmp / "c.conf",
                                 sealedmeta={"cache_ttl": 0},
                                 coordination={"backend_url": url.format(**fill)})
    env.store.set_state(RING, 1, "retired")
    before = env.digest()
    for argv in (["rekey", RING], ["key", "reinstate", RING, "1"],
                 ["key", "destroy", RING, "1", "--force"],
                 ["keyring", "create", "another"]):
        code, out, err = env.run(*argv, config=config)
        line = one_line(err)
        assert code == 2 and text.format(**fill) in line, line
        assert "no keyring state was changed" in line
    assert env.digest() == before


def test_rekey_race_file_backend(tmp_path):
    """8 concurrent `sealedmeta rekey` processes over file:// while two
    processes seal: one active version, contiguous numbers, everything
    sealed meanwhile opens."""
    result = sm_cli.rekey_race(tmp_path, config=None, processes=8)
    assert result["versions"] == list(range(2, 10))
    print("\nrekey race (%s): %r" % ("file", result))


# -- logging and output -----------------------------------------------------------

def test_oslo_log_file_and_one_line_errors(env):
    log_file = env.tmp / "sealedmeta.log"
    config = sm_cli.write_config(env.tmp / "c.conf",
                                 sealedmeta={"cache_ttl": 0},
                                 DEFAULT={"log_file": str(log_file)})
    code, out, err = env.run("rekey", RING, "-f", "json", config=config)
    assert code == 0, err
    json.loads(out)  # stdout holds the result only
    text = log_file.read_text()
    assert "rotated keyring kr: version 3" in text
    assert " INFO sealedmeta.admin " in text  # oslo.log's format
    code, out, err = env.run("key", "retire", RING, "3", config=config)
    assert (code, out) == (2, "")
    assert one_line(err) == ("sealedmeta: version 3 of 'kr' is the active version;"
                             " rekey first")
    assert "is the active version" in log_file.read_text()


def test_bad_log_config_is_one_line(env):
    config = sm_cli.write_config(env.tmp / "c.conf",
                                 sealedmeta={"cache_ttl": 0},
                                 DEFAULT={"log_file": str(env.tmp / "no" / "dir" / "x.log")})
    code, out, err = env.run("keyring", "list", config=config)
    assert code == 2 and "cannot set up logging" in one_line(err)


def test_progress_bar_only_on_a_terminal(env):
    env.store.rotate(RING)
    code, out, tty_err = sm_cli.run_on_pty(["rewrap", str(env.data), "-f", "json"],
                                           env.tmp, env.repo, stream="stderr")
    assert code == 0
    assert json.loads(out)["rewrapped"] == 6
    assert "rewrap [" in tty_err and "6/6" in tty_err
    env.store.rotate(RING)
    code, out, err = env.run("rewrap", str(env.data), "-f", "json")
    assert (code, err) == (0, "")  # not a terminal: quiet


def test_rewrap_removes_stale_temp_files(env):
    """Temporary files left by killed writes: those older than --temp-age
    go, with one line saying so; younger ones stay, skipped; verify still
    only reads."""
    stale = sorted([temp_file(env.data, 2 * HOUR), temp_file(env.data / "sub", 61)])
    young = temp_file(env.data / "sub", 0)
    code, out, err = env.run("rewrap", str(env.data), "-f", "json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["rewrapped"], data["skipped"], data["removed_temp"]) == (4, 2, 1)
    assert [e["path"] for e in data["removed_temp_files"]] == stale[:1]
    assert ("removed 1 temporary file left by interrupted writes (last written"
            " 3600 s ago or more; first: %s)" % stale[0]) in one_line(err)
    assert sorted(e["path"] for e in data["skipped_files"]) == sorted(
        [stale[1], young])
    digest = env.digest()
    code, out, err = env.run("verify", str(env.data), "-f", "json")
    assert (code, err) == (0, "")
    assert env.digest() == digest
    code, out, err = env.run("rewrap", str(env.data), "--temp-age", "60",
                             "-f", "value", "-c", "removed_temp", "-c",
                             "already_current")
    assert (code, out.split()) == (0, ["6", "1"]), err
    assert "removed 1 temporary file" in one_line(err)
    assert sm_cli.temp_files(env.data) == [young]


def test_help_lists_the_new_commands(env):
    code, out, err = env.run("--help")
    assert code == 0
    for name in ("rekey", "rewrap", "verify", "key retire", "key reinstate",
                 "key destroy"):
        assert name in out


def test_rekey_signing_through_the_command_line(env):
    # A plain keyring becomes a signing one at its next rotation; --rewrap
    # then leaves every envelope signed (suite 2 under the new version).
    code, out, err = env.run("rekey", RING, "--signing", "--rewrap",
                             str(env.data), "-f", "json")
    assert code == 0, err
    result = json.loads(out)
    assert result["version"] == 3 and result["rewrapped"] == 6
    ring = env.store.get_keyring(RING)
    assert ring.signing and ring.version(3).public_key is not None
    assert ring.version(1).public_key is None
    for path in env.contexts:
        code, out, err = env.run("inspect", path, "-f", "json")
        assert code == 0, err
        header = json.loads(out)
        assert (header["suite"], header["key_version"]) == (2, 3), path
    code, out, err = env.run("keyring", "export-public", RING, "-o",
                             str(env.tmp / "public.json"))
    assert code == 0, err
    code, out, err = env.run("verify", "--public-keys",
                             str(env.tmp / "public.json"), str(env.data),
                             "-f", "json")
    assert code == 0, err


def test_settle_window_on_the_command_line(env, tmp_path):
    # The default cache_ttl (300 s): version 2 stopped being active at this
    # rekey, so retire and destroy are refused, naming the time left, and
    # change nothing; with the window over (stale_grace and cache_ttl 0)
    # they go through.
    code, out, err = env.run("rekey", RING)
    assert code == 0, err
    before = env.digest()
    config = sm_cli.write_config(tmp_path / "default.conf", sealedmeta={})
    since = kr.inactive_since(env.store.get_keyring(RING), 2)

    def refused(*argv):
        asked = kr.now()
        code, out, err = env.run(*argv, config=config)
        answered = kr.now()
        line = one_line(err)
        # The figures add up: the window ends 1 + 300 s after the recorded
        # second, and the seconds left are those until then.
        found = re.search(
            r"it stopped being active at (\S+) and the settle window"
            r" \(cache_ttl \+ stale_grace, 300s from the next whole second\)"
            r" ends at (\S+), so a running process may still seal under it;"
            r" (\d+)s left$", line)
        assert code == 2 and found, line
        assert found.group(1) == keyring_cmd.iso(since)
        assert found.group(2) == keyring_cmd.iso(since + 301)
        assert since + 301 - answered <= int(found.group(3)) <= since + 301 - asked
        assert env.digest() == before

    refused("key", "retire", RING, "2")
    assert env.store.get_keyring(RING).version(2).state.value == "decrypt-only"
    code, out, err = env.run("key", "retire", RING, "2", "-f", "value",
                             "-c", "state")
    assert (code, out.strip()) == (0, "retired"), err
    before = env.digest()
    refused("key", "destroy", RING, "2", "--force")
    assert env.store.get_keyring(RING).version(2).state.value == "retired"


# -- scheduled rotation: rekey --if-older-than ------------------------------------

DAY = 86400


def _age_active(env, seconds):
    """Make the active version of kr *seconds* older in the file store."""
    path = env.repo / RING / "keyring.json"
    data = json.loads(path.read_text())
    active = [v for v in data["versions"] if v["state"] == "active"]
    active[0]["created"] -= seconds
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("duration", ["90x", "0d", "0", "", "-1d", "1.5d",
                                      "d", "90 d", "9999999999d"])
def test_rekey_if_older_than_bad_duration(env, duration):
    before = env.digest()
    code, out, err = env.run("rekey", RING, "--if-older-than=" + duration)
    line = one_line(err)
    assert code == 2 and "bad --if-older-than %r: expected a duration such as" \
        " 90d, 12h, 30m or 45s" % duration in line, line
    assert env.digest() == before


def test_rekey_if_older_than(env):
    # Version 2 was created by the fixture moments ago: not rotated, exit 0,
    # nothing changed.
    before = env.digest()
    code, out, err = env.run("rekey", RING, "--if-older-than", "90d",
                             "-f", "json")
    assert code == 0, err
    ring = env.store.get_keyring(RING)
    assert json.loads(out) == {"keyring": RING, "rotated": False, "version": 2,
                               "key_id": ring.version(2).key_id.hex()}
    assert env.digest() == before
    # 91 days old: rotated, then the new version is young again.
    _age_active(env, 91 * DAY)
    code, out, err = env.run("rekey", RING, "--if-older-than", "90d",
                             "-f", "json")
    assert code == 0, err
    ring = env.store.get_keyring(RING)
    assert json.loads(out) == {"keyring": RING, "rotated": True, "version": 3,
                               "previous_version": 2,
                               "key_id": ring.version(3).key_id.hex()}
    assert ring.active.number == 3
    code, out, err = env.run("rekey", RING, "--if-older-than", "2160h",
                             "-f", "value", "-c", "rotated", "-c", "version")
    assert (code, out.split()) == (0, ["False", "3"]), err
    assert env.store.get_keyring(RING).active.number == 3


def test_rekey_if_older_than_from_many_hosts_at_once(env):
    """Every host's timer fires together: exactly one rotates, the others
    decide under the lock, on the keyring read again, that it is young."""
    _age_active(env, 91 * DAY)
    procs = [sm_cli.start(["rekey", RING, "--if-older-than", "90d", "-f",
                           "json"], env.tmp, env.repo, env.lab_config)
             for _ in range(6)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        results.append(json.loads(out))
    assert sorted(r["rotated"] for r in results) == [False] * 5 + [True]
    assert {r["version"] for r in results} == {3}
    ring = env.store.get_keyring(RING)
    assert [v.number for v in ring.versions] == [1, 2, 3]
    assert ring.active.number == 3


# -- key retire --unused ------------------------------------------------------------

@pytest.mark.parametrize("argv, text", [
    (["key", "retire", RING, "--unused"],
     "--unused needs the backup stores to scan: --scan PATH ..., --ceph-pool"
     " POOL or --scan-cinder CINDER_CONF"),
    (["key", "retire", RING, "1", "--unused", "--scan", "{data}"],
     "give either VERSION or --unused"),
    (["key", "retire", RING], "give either VERSION or --unused"),
    (["key", "retire", RING, "1", "--scan", "{data}"],
     "--scan, --ceph-pool and --scan-cinder go with --unused"),
    (["key", "retire", RING, "--unused", "--scan", "{tmp}/missing"],
     "missing: no such file or directory"),
])
def test_retire_unused_usage(env, argv, text):
    before = env.digest()
    fill = {"data": env.data, "tmp": env.tmp}
    code, out, err = env.run(*[a.format(**fill) for a in argv])
    line = one_line(err)
    assert code == 2 and text.format(**fill) in line, line
    assert env.digest() == before


def _retire_unused(env, *paths, config=None):
    code, out, err = env.run("key", "retire", RING, "--unused", "--scan",
                             *map(str, paths), "-f", "json", config=config)
    return code, (json.loads(out) if out else None), err


def test_retire_unused(env):
    # Version 1 still has 4 envelopes in data/: kept and named.
    before = env.digest()
    code, out, err = _retire_unused(env, env.data, env.junk)
    assert code == 0, err
    assert out == {"keyring": RING, "retired": "", "in_use": "1",
                   "settling": "", "scanned_envelopes": 6}
    assert "version 1 kept: 4 envelopes under it" in err
    assert env.digest() == before
    # Rewrapped: no envelope under version 1 any more, it is retired.
    assert env.run("rewrap", str(env.data))[0] == 0
    code, out, err = _retire_unused(env, env.data)
    assert code == 0, err
    assert out["retired"] == "1" and out["in_use"] == "" and out["settling"] == ""
    assert env.store.get_keyring(RING).version(1).state is kr.KeyState.RETIRED
    # Nothing left to retire: exit 0, nothing changed, no scan made.
    before = env.digest()
    code, out, err = _retire_unused(env, env.data)
    assert code == 0, err
    assert out == {"keyring": RING, "retired": "", "in_use": "",
                   "settling": ""}
    assert "no decrypt-only version to retire" in err
    assert env.digest() == before


def test_retire_unused_respects_the_settle_window(env, tmp_path):
    # Version 1 stopped being active long ago; version 2 at this rekey.
    # With the default window (300 s) version 2 is left and named.
    assert env.run("rekey", RING, "--rewrap", str(env.data))[0] == 0
    path = env.repo / RING / "keyring.json"
    data = json.loads(path.read_text())
    data["versions"][0]["deactivated"] = kr.now() - 1000
    path.write_text(json.dumps(data))
    config = sm_cli.write_config(tmp_path / "default.conf", sealedmeta={})
    code, out, err = _retire_unused(env, env.data, config=config)
    assert code == 0, err
    assert (out["retired"], out["in_use"], out["settling"]) == ("1", "", "2")
    assert re.search(r"version 2 kept: it stopped being active at \S+ and the"
                     r" settle window \(cache_ttl \+ stale_grace, 300s from the"
                     r" next whole second\) ends at \S+, so a running process"
                     r" may still seal under it; \d+s left", err), err
    ring = env.store.get_keyring(RING)
    assert [v.state.value for v in ring.versions] == [
        "retired", "decrypt-only", "active"]


def test_retire_unused_refuses_when_a_file_cannot_be_read(env):
    assert env.run("rewrap", str(env.data))[0] == 0
    before = env.digest()
    code, out, err = _retire_unused(env, env.data, "/proc/self/mem")
    line = one_line(err)
    assert code == 1 and (
        "refusing to retire unused versions of keyring 'kr': the scan could"
        " not read 1 file, which may hold envelopes under its decrypt-only"
        " versions: /proc/self/mem") in line, line
    assert env.digest() == before
    assert env.store.get_keyring(RING).version(1).state is kr.KeyState.DECRYPT_ONLY


def test_plain_rewrap_inside_the_settle_window_warns(env, tmp_path):
    """As rekey --rewrap does: the fixture's rotation was just now, so with
    the default window agents may still seal under version 1."""
    config = sm_cli.write_config(tmp_path / "default.conf", sealedmeta={})
    code, out, err = env.run("rewrap", str(env.data), config=config)
    assert code == 0, err
    assert re.search(r"^sealedmeta: keyring kr: version 1: it stopped being"
                     r" active at \S+ and the settle window \(cache_ttl \+"
                     r" stale_grace, 300s from the next whole second\) ends at"
                     r" \S+, so a running process may still seal under it;"
                     r" \d+s left: rewrap again after that$", err, re.M), err
    # Without a window (no agent caches the keyring): no warning.
    code, out, err = env.run("rewrap", str(env.data))
    assert code == 0 and "settle window" not in err, err


def test_keyring_copy_names_the_destination_for_people(env, tmp_path):
    other = tmp_path / "other-keys"
    config = sm_cli.write_config(tmp_path / "other.conf",
                                 sealedmeta={"key_repository": other})
    code, out, err = env.run("keyring", "copy", RING, "--to-config",
                             str(config), "-f", "json")
    assert code == 0, err
    assert json.loads(out)["destination"] == "file key store %s" % other
    code, out, err = env.run("keyring", "copy", "--help")
    assert "Keyring to copy" in out


def test_a_log_file_is_not_read_as_armour(env):
    """The tool's own log lines start with 'sealedmeta:' as armour does:
    verify and rewrap pass such a file by as no envelope, and change it
    not."""
    log = env.data / "sealedmeta.log"
    log.write_text("sealedmeta: rotated keyring kr: version 2 active\n"
                   "sealedmeta:U01FVE is where an armour's base64 starts\n")
    before = log.read_bytes()
    code, out, err = env.run("verify", str(env.data), "-f", "json")
    report = json.loads(out)
    assert code == 0, err
    assert str(log) not in [e["path"] for e in report["envelopes"]]
    code, out, err = env.run("rewrap", str(env.data))
    assert code == 0, err
    assert log.read_bytes() == before


# -- key destroy --after / --due, key reinstate of a pending version ---------------

def _json(env, *argv):
    code, out, err = env.run(*argv, "-f", "json")
    return code, (json.loads(out) if out else None), err


def _status(env):
    code, rows, err = _json(env, "keyring", "status", RING)
    assert code == 0, err
    return {r["version"]: (r["state"], r["pending_destruction"]) for r in rows}


def _make_due(env, number):
    """The destruction time of version *number* of kr has come: set a
    second in the past in the file store (as if its delay had passed)."""
    path = env.repo / RING / "keyring.json"
    data = json.loads(path.read_text())
    version = data["versions"][number - 1]
    assert version["state"] == "pending-destruction"
    version["destroy_after"] = kr.now() - 1
    path.write_text(json.dumps(data))


def test_destroy_after_then_reinstate(env):
    assert env.run("rewrap", str(env.data))[0] == 0
    assert env.run("key", "retire", RING, "1")[0] == 0
    key = (env.repo / RING / "v1.key").read_bytes()
    start = kr.now()
    code, out, err = _json(env, "key", "destroy", RING, "1", "--after", "30d",
                           "--scan", str(env.data))
    end = kr.now()
    assert code == 0, err
    due = env.store.get_keyring(RING).version(1).destroy_after
    assert start + 30 * DAY <= due <= end + 30 * DAY
    assert out == {"keyring": RING, "version": 1, "state": "pending-destruction",
                   "key_id": env.store.get_keyring(RING).version(1).key_id.hex(),
                   "created": out["created"],
                   "destroy_after": keyring_cmd.iso(due),
                   "scanned_envelopes": 6, "envelopes_under_version": 0}
    assert ("sealedmeta: keyring kr: version 1 is now pending destruction, due"
            " at %s ('sealedmeta key reinstate kr 1' cancels)\n"
            % keyring_cmd.iso(due)) == err
    assert _status(env) == {1: ("pending-destruction", keyring_cmd.iso(due)),
                            2: ("active", None)}
    # The key is kept; nothing opens under it meanwhile.
    assert (env.repo / RING / "v1.key").read_bytes() == key
    with pytest.raises(exceptions.KeyUnavailable,
                       match="version 1 of keyring 'kr' is"
                       " pending-destruction"):
        env.store.get_key(RING, 1)
    # Its time has not come: --due destroys nothing and scans nothing.
    before = env.digest()
    code, out, err = _json(env, "key", "destroy", RING, "--due", "--scan",
                           str(env.data))
    assert (code, out) == (0, {"keyring": RING, "destroyed": "", "in_use": "",
                               "not_due": "1"}), err
    assert "no version is due to be destroyed" in err
    assert env.digest() == before
    # Scheduling again, or retiring it, is refused; reinstate cancels.
    code, out, err = env.run("key", "destroy", RING, "1", "--after", "1d",
                             "--scan", str(env.data))
    assert code == 2 and "already pending-destruction" in one_line(err)
    code, out, err = env.run("key", "retire", RING, "1")
    assert code == 2 and ("cannot go from pending-destruction to retired;"
                          " 'sealedmeta key reinstate' cancels its"
                          " destruction") in one_line(err)
    code, out, err = _json(env, "key", "reinstate", RING, "1")
    assert (code, out["state"]) == (0, "decrypt-only"), err
    assert _status(env) == {1: ("decrypt-only", None), 2: ("active", None)}
    assert "destroy_after" not in (env.repo / RING / "keyring.json").read_text()
    assert env.store.get_key(RING, 1) == key


def test_destroy_after_refuses_a_version_in_use(env):
    assert env.run("key", "retire", RING, "1")[0] == 0
    before = env.digest()
    code, out, err = env.run("key", "destroy", RING, "1", "--after", "30d",
                             "--scan", str(env.data))
    line = one_line(err)
    assert (code, out) == (1, ""), err
    assert ("refusing to schedule the destruction of version 1 of keyring"
            " 'kr': the scan found 4 envelopes under it: ") in line, line
    code, out, err = env.run("key", "destroy", RING, "1", "--after", "30d",
                             "--scan", str(env.junk), "/proc/self/mem")
    assert code == 1 and ("the scan could not read 1 file, which may hold"
                          " envelopes under it: /proc/self/mem") in \
        one_line(err)
    assert env.digest() == before
    assert env.store.get_keyring(RING).version(1).state is kr.KeyState.RETIRED


def test_destroy_due_rechecks_and_keeps_a_version_in_use(env):
    """--due scans again when the time has come: an envelope under the
    version that appeared in the scanned stores since (here: a backup the
    scan at --after time did not cover) keeps it pending, exit 1."""
    late = env.tmp / "late"
    late.mkdir()
    old = (env.data / "e2").read_bytes()
    assert inspect(old).key_version == 1
    (late / "old.env").write_bytes(old)
    assert env.run("rewrap", str(env.data))[0] == 0
    assert env.run("key", "retire", RING, "1")[0] == 0
    code, out, err = env.run("key", "destroy", RING, "1", "--after", "7d",
                             "--scan", str(env.data))
    assert code == 0, err
    _make_due(env, 1)
    due = env.store.get_keyring(RING).version(1).destroy_after
    before = env.digest()
    code, out, err = _json(env, "key", "destroy", RING, "--due", "--scan",
                           str(env.data), str(late))
    assert code == 1, err
    assert out == {"keyring": RING, "destroyed": "", "in_use": "1",
                   "not_due": "", "scanned_envelopes": 7}
    assert ("sealedmeta: keyring kr: version 1 is due to be destroyed but the"
            " scan found 1 envelope under it: %s; kept pending destruction"
            " (they cannot be opened meanwhile): reinstate it ('sealedmeta key"
            " reinstate kr 1') and rewrap them\n" % (late / "old.env")) == err
    assert env.digest() == before
    version = env.store.get_keyring(RING).version(1)
    assert (version.state, version.destroy_after) == (
        kr.KeyState.PENDING_DESTRUCTION, due)
    # A file the scan cannot read destroys nothing either.
    code, out, err = env.run("key", "destroy", RING, "--due", "--scan",
                             str(env.data), "/proc/self/mem")
    assert code == 1 and ("refusing to destroy the due versions of keyring"
                          " 'kr': the scan could not read 1 file") in \
        one_line(err)
    assert env.digest() == before
    # The late backup gone: destroyed.
    (late / "old.env").unlink()
    code, out, err = _json(env, "key", "destroy", RING, "--due", "--scan",
                           str(env.data), str(late))
    assert code == 0, err
    assert out == {"keyring": RING, "destroyed": "1", "in_use": "",
                   "not_due": "", "scanned_envelopes": 6}
    assert err == ("sealedmeta: destroyed version 1 of keyring kr (due at"
                   " %s)\n" % keyring_cmd.iso(due))
    assert env.store.get_keyring(RING).version(1).state is kr.KeyState.DESTROYED
    assert not (env.repo / RING / "v1.key").exists()
    # Nothing left to do: exit 0, no scan.
    code, out, err = _json(env, "key", "destroy", RING, "--due", "--scan",
                           str(env.data))
    assert (code, out) == (0, {"keyring": RING, "destroyed": "", "in_use": "",
                               "not_due": ""}), err


def test_destroy_due_leaves_what_is_not_due(env):
    env.store.rotate(RING)       # versions 1, 2 decrypt-only, 3 active
    assert env.run("rewrap", str(env.data))[0] == 0
    for number, after in ((1, "1h"), (2, "30d")):
        assert env.run("key", "retire", RING, str(number))[0] == 0
        code, _, err = env.run("key", "destroy", RING, str(number), "--after",
                               after, "--scan", str(env.data))
        assert code == 0, err
    _make_due(env, 1)
    code, out, err = _json(env, "key", "destroy", RING, "--due", "--scan",
                           str(env.data))
    assert code == 0, err
    assert out == {"keyring": RING, "destroyed": "1", "in_use": "",
                   "not_due": "2", "scanned_envelopes": 6}
    assert [v.state.value for v in env.store.get_keyring(RING).versions] == [
        "destroyed", "pending-destruction", "active"]


def test_immediate_destroy_of_a_pending_version(env):
    """An emergency does not wait for the delay: the immediate destroy,
    behind its scan, also takes a version pending destruction."""
    assert env.run("rewrap", str(env.data))[0] == 0
    assert env.run("key", "retire", RING, "1")[0] == 0
    assert env.run("key", "destroy", RING, "1", "--after", "30d", "--scan",
                   str(env.data))[0] == 0
    code, out, err = _json(env, "key", "destroy", RING, "1", "--scan",
                           str(env.data))
    assert code == 0, err
    assert (out["state"], out["envelopes_under_version"], out["forced"]) == (
        "destroyed", 0, False)
    assert _status(env)[1] == ("destroyed", None)


def test_destroy_due_that_cannot_write_says_what_is_left(env):
    """The disk refuses the key store's write as --due destroys: one line
    saying the version is still pending destruction, exit 2, nothing
    changed."""
    assert env.run("rewrap", str(env.data))[0] == 0
    assert env.run("key", "retire", RING, "1")[0] == 0
    assert env.run("key", "destroy", RING, "1", "--after", "1d", "--scan",
                   str(env.data))[0] == 0
    _make_due(env, 1)
    before = env.digest()
    proc = sm_cli.start(["key", "destroy", RING, "--due", "--scan",
                         str(env.data), "-f", "json"], env.tmp, env.repo,
                        config=env.lab_config,
                        preexec_fn=file_size_limit(64))
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out) == (2, b""), err
    line = one_line(err.decode())
    assert ("destroy of version 1 of keyring 'kr' failed (cannot destroy"
            " version 1 of keyring 'kr' in key repository") in line, line
    assert "File too large" in line and line.endswith(
        "read again, the keyring shows version 1 still pending-destruction:"
        " nothing changed"), line
    assert env.digest() == before
