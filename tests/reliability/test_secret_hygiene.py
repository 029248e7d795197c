"""Secret hygiene: no key, password or token in any log, output or error.

A representative flow runs with DEBUG logging into files -- the CLI with
``--debug -v -v --log-file F`` and a configuration with ``debug = True`` and
``log_file`` (oslo.log), and the library in-process with the root logger at
DEBUG into a file -- once over the file key store and once over the real
Barbican behind a real Keystone: keyring create, seal, open, inspect, rekey,
rewrap, verify, keyring show/list, key retire / reinstate / destroy, keyring
copy (file -> Barbican and Barbican -> file), and failures: wrong context,
tampered envelope, tampered tree, wrong password (Keystone 401), Barbican
stopped.

Every stdout / stderr capture, every log file and every exception text and
traceback is then searched for:

* every key ever created -- the file store's ``v*.key`` files, read after
  every step (before ``key destroy`` removes one), and the Barbican secret
  payloads fetched with python-barbicanclient -- as raw bytes, hex (lower,
  upper), base64 and base64url (with and without padding), and the hex of
  each half;
* every password of DIR/env.json and the wrong one tried, and the Keystone
  token of the in-process session; and anything that looks like a Fernet
  token or a non-redacted ``X-Auth-Token`` / ``X-Subject-Token`` value.

Also searched: the metadata's ``provider_auth`` value, which may appear only
in what a successful ``open`` prints -- never in an envelope file (raw or
armoured), a log, an error or any other output.

Zero hits, asserted; the sizes searched are printed. Also: the file store
is 0700 / 0600 (even under umask 000), and a repository, keyring directory
or key file that group or others can read is refused.
"""

import base64
import json
import logging
import os
import re
import stat
import subprocess
import traceback

import pytest

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import armor
from sealedmeta import exceptions
from sealedmeta import keystores
from sealedmeta.cmd.main import SealedMetaApp

from tests import sm_cli
from tests.reliability import figures
from tests.reliability.conftest import unique_name

CTX = ["--context", "backup_id=b-1", "--context", "volume_id=v-1"]
CTX_DICT = {"backup_id": "b-1", "volume_id": "v-1"}
PROVIDER_AUTH = "PA-" + os.urandom(12).hex()
META = {"volume_id": "v-1", "glance": {"os_distro": "debian", "billing": "B-7"},
        "provider_auth": PROVIDER_AUTH}
WRONG_PASSWORD = "Wr0ng-" + os.urandom(8).hex()
FERNET = re.compile(rb"gAAAAA[A-Za-z0-9_\-]{40,}")
AUTH_HEADER = re.compile(rb"X-(?:Auth|Subject)-Token[\"']?\s*[:=]\s*[\"']?([^\s\"',}]+)",
                         re.IGNORECASE)


def forms(secret):
    """Every text form of a secret the search looks for (bytes)."""
    out = {secret}
    if len(secret) >= 16:
        out |= {secret.hex().encode(), secret.hex().upper().encode()}
        for variant in (base64.b64encode, base64.urlsafe_b64encode):
            encoded = variant(secret)
            out |= {encoded, encoded.rstrip(b"=")}
        half = len(secret) // 2
        out |= {secret[:half].hex().encode(), secret[half:].hex().encode()}
    return out


class Evidence:
    """Everything the flow printed, logged or raised, and every secret."""

    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.texts = []          # (label, bytes)
        self.plaintext_ok = set()  # labels where the metadata may appear
        self.log_files = []
        self.keys = {}           # key bytes -> where it came from
        self.passwords = set()
        self.tokens = set()
        self.commands = 0
        self.failures = 0

    def add(self, label, data):
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        self.texts.append((label, data))

    def exception(self, label, exc):
        self.add(label + " str", str(exc))
        self.add(label + " repr", repr(exc))
        self.add(label + " traceback", "".join(
            traceback.format_exception(type(exc), exc, exc.__traceback__)))

    def file_keys(self, repo, where):
        for dirpath, _, files in os.walk(str(repo)):
            for name in files:
                if re.match(r"v\d+\.key\Z", name):
                    with open(os.path.join(dirpath, name), "rb") as handle:
                        self.keys[handle.read()] = where

    def barbican_keys(self, client, ring, where):
        """Payloads of every secret listed in the keyring's container."""
        api = client.client
        page = api.get("containers", params={"name": "sealedmeta:%s" % ring,
                                             "limit": 10})
        found = 0
        for doc in page.get("containers", []):
            if doc.get("name") != "sealedmeta:%s" % ring:
                continue
            for ref in doc.get("secret_refs", []):
                try:
                    secret = client.secrets.get(ref["secret_ref"])
                    payload = secret.payload
                except Exception:  # destroyed: deleted, the tombstone stays
                    continue
                if isinstance(payload, str):
                    payload = payload.encode("latin-1")
                if len(payload) == 32:
                    self.keys[payload] = where
                    found += 1
        return found

    def searched(self):
        blobs = list(self.texts)
        for path in self.log_files:
            if os.path.exists(path):
                with open(path, "rb") as handle:
                    blobs.append(("log " + os.path.basename(path), handle.read()))
        return blobs

    def hits(self):
        needles = []
        for key, where in self.keys.items():
            needles += [("key from %s" % where, f) for f in forms(key)]
        for password in self.passwords:
            needles += [("password", f) for f in forms(password.encode())]
        for token in self.tokens:
            needles += [("token", f) for f in forms(token.encode())]
        found = []
        for label, blob in self.searched():
            if PROVIDER_AUTH.encode() in blob and label not in self.plaintext_ok:
                found.append((label, "provider_auth in clear", b""))
            for what, needle in needles:
                if needle and needle in blob:
                    found.append((label, what, needle[:12]))
            for match in FERNET.finditer(blob):
                found.append((label, "fernet-like token", match.group(0)[:12]))
            for match in AUTH_HEADER.finditer(blob):
                value = match.group(1)
                if not (value.startswith(b"{SHA") or set(value) <= set(b"*")
                        or value.lower() in (b"none", b"null", b"redacted",
                                             b"<redacted>", b"***")):
                    found.append((label, "token header", value[:12]))
        return found, len(needles)


class Flow:
    """Runs the CLI with every debug switch on, recording everything."""

    def __init__(self, evidence, tmp_path, repo, conf=None, name="flow"):
        self.ev = evidence
        self.tmp = tmp_path
        self.repo = repo
        self.conf = conf
        self.cli_log = str(tmp_path / ("%s-cli.log" % name))
        evidence.log_files.append(self.cli_log)

    def run(self, *args, stdin=None, ok=True):
        argv = [sm_cli.console_script(), "--debug", "-v", "-v",
                "--log-file", self.cli_log]
        if self.conf:
            argv += ["--config-file", str(self.conf)]
        argv += ["--key-repository", str(self.repo)] + list(args)
        proc = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env=sm_cli.cli_env(self.tmp),
                              timeout=180)
        label = "sealedmeta %s #%d" % (" ".join(args[:2]), self.ev.commands)
        if args[0] == "open" and proc.returncode == 0:
            self.ev.plaintext_ok.add(label + " stdout")
            assert PROVIDER_AUTH.encode() in proc.stdout  # it did open
        self.ev.add(label + " stdout", proc.stdout)
        self.ev.add(label + " stderr", proc.stderr)
        self.ev.commands += 1
        if ok:
            assert proc.returncode == 0, (args, proc.stderr.decode()[-3000:])
        else:
            assert proc.returncode != 0, (args, proc.stdout[-500:])
            self.ev.failures += 1
        return proc


def debug_conf(path, log_file, base=None, changes=None):
    """An oslo.config file with debug = True and log_file, over *base*."""
    import configparser
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    if base:
        parser.read(base)
    parser["DEFAULT"]["debug"] = "True"
    parser["DEFAULT"]["log_file"] = str(log_file)
    # No agent runs beside the flow: key retire and destroy need not wait
    # the settle window after its rekey.
    if not parser.has_section("sealedmeta"):
        parser.add_section("sealedmeta")
    parser["sealedmeta"]["cache_ttl"] = "0"
    for (section, option), value in (changes or {}).items():
        if section != "DEFAULT" and not parser.has_section(section):
            parser.add_section(section)
        parser[section][option] = str(value)
    with open(path, "w") as handle:
        parser.write(handle)
    os.chmod(path, 0o600)
    return str(path)


def common_flow(flow, ev, name, tree, collect):
    """The shared command sequence; *collect()* records the keys now held."""
    tree.mkdir(exist_ok=True)
    flow.run("keyring", "create", name)
    collect()
    env1 = tree / "e1"
    flow.run("seal", "--keyring", name, *CTX, "-o", str(env1),
             stdin=json.dumps(META).encode())
    flow.run("open", *CTX, str(env1))
    flow.run("inspect", str(env1), "-f", "json")
    flow.run("rekey", name, "-f", "json")
    collect()
    env2 = tree / "e2"
    flow.run("seal", "--keyring", name, "--armor", *CTX, "-o", str(env2),
             stdin=json.dumps(META).encode())
    flow.run("rewrap", str(tree), "--keyring", name, "-f", "json")
    flow.run("verify", str(tree), "--expect", "volume_id=v-1", "-f", "json")
    flow.run("keyring", "show", name, "-f", "json")
    flow.run("keyring", "list", "-f", "json")
    flow.run("key", "retire", name, "1")
    flow.run("key", "reinstate", name, "1")
    flow.run("key", "retire", name, "1")
    collect()
    flow.run("key", "destroy", name, "1", "--scan", str(tree))
    # failures
    flow.run("open", "--context", "backup_id=other", "--context", "volume_id=v-1",
             str(env1), ok=False)
    raw = env1.read_bytes()
    bad = tree / "bad"
    bad.write_bytes(raw[:-1] + bytes((raw[-1] ^ 1,)))
    flow.run("open", *CTX, str(bad), ok=False)
    flow.run("verify", str(tree), "-f", "json", ok=False)
    flow.run("key", "destroy", name, "2", "--scan", str(tree), ok=False)
    bad.unlink()
    for path in sorted(tree.iterdir()):   # the envelopes themselves
        ev.add("envelope file %s" % path.name, path.read_bytes())


def in_process(ev, store, name, label):
    """The library API with the root logger at DEBUG into a file."""
    log_path = str(ev.tmp / ("%s-inprocess.log" % label))
    ev.log_files.append(log_path)
    handler = logging.FileHandler(log_path)
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        sealer = Sealer(store, name, cache_ttl=0, refresh_interval=0)
        raw = sealer.seal(META, CTX_DICT)
        assert sealer.open(armor(raw), CTX_DICT) == META
        logging.getLogger("test").debug("sealer %r store %r", sealer, store)
        ev.add(label + " reprs", "%r %r" % (sealer, store))
        version = store.rotate(name)
        ev.add(label + " version repr", repr(version))
        new = sealer.rewrap(raw)
        assert sealer.open(new, CTX_DICT) == META
        for data, ctx in ((raw[:-1] + b"\x00", CTX_DICT),
                          (raw, {"backup_id": "x"}), (b"SMETA\x01junk", CTX_DICT),
                          (raw[:40], CTX_DICT)):
            try:
                sealer.open(data, ctx)
            except exceptions.SealedMetaError as exc:
                ev.exception(label + " open failure", exc)
                ev.failures += 1
            else:
                raise AssertionError("opened a bad envelope")
        for call in (lambda: store.get_keyring("no-such-ring"),
                     lambda: store.get_key(name, 999),
                     lambda: store.set_state(name, version.number, "retired")):
            try:
                call()
            except exceptions.SealedMetaError as exc:
                ev.exception(label + " store failure", exc)
                ev.failures += 1
            else:
                raise AssertionError("no failure")
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def assert_clean(ev, name):
    found, needles = ev.hits()
    blobs = ev.searched()
    result = figures.record(
        "secret hygiene (%s)" % name, commands=ev.commands,
        failures_provoked=ev.failures, texts_and_logs_searched=len(blobs),
        bytes_searched=sum(len(b) for _, b in blobs), keys=len(ev.keys),
        passwords=len(ev.passwords), tokens=len(ev.tokens),
        needles=needles, hits=len(found))
    assert not found, (found[:20], result)
    # the logs really are at DEBUG and not empty: the search was not vacuous
    logs = [b for label, b in blobs if label.startswith("log ")]
    assert logs and all(logs), [label for label, b in blobs if not b]
    assert any(b" DEBUG " in b for b in logs)


def test_file_store_flow_leaks_nothing(tmp_path, keystone_barbican):
    ev = Evidence(tmp_path)
    repo = tmp_path / "keys"
    oslo_log = tmp_path / "file-oslo.log"
    ev.log_files.append(str(oslo_log))
    conf = debug_conf(tmp_path / "file.conf", oslo_log)
    flow = Flow(ev, tmp_path, repo, conf, name="file")
    name = "hygiene-file"

    def collect():
        ev.file_keys(repo, "file store")

    common_flow(flow, ev, name, tmp_path / "tree", collect)
    # keyring copy file -> Barbican (Keystone)
    bk = keystone_barbican
    ev.passwords.update(bk.secrets())
    target_log = tmp_path / "copy-target-oslo.log"
    ev.log_files.append(str(target_log))
    target = debug_conf(tmp_path / "to-barbican.conf", target_log, base=bk.conf_path)
    copy_name = unique_name("hyg-copy")
    flow.run("keyring", "create", copy_name)
    flow.run("rekey", copy_name)
    collect()
    flow.run("keyring", "copy", copy_name, "--to-config", target, "-f", "json")
    flow.run("keyring", "copy", copy_name, "--to-config", target, ok=False)  # exists
    in_process(ev, FileKeyStore(str(repo)), name, "file")
    collect()
    assert len(ev.keys) >= 5
    assert_clean(ev, "file store")


def test_barbican_flow_leaks_nothing(tmp_path, keystone_barbican):
    bk = keystone_barbican
    assert bk.keystone
    ev = Evidence(tmp_path)
    ev.passwords.update(bk.secrets())
    ev.passwords.add(WRONG_PASSWORD)
    client = bk.barbican_client()
    oslo_log = tmp_path / "barbican-oslo.log"
    ev.log_files.append(str(oslo_log))
    conf = debug_conf(tmp_path / "barbican.conf", oslo_log, base=bk.conf_path)
    repo = tmp_path / "unused"
    flow = Flow(ev, tmp_path, repo, conf, name="barbican")
    name = unique_name("hygiene")

    def collect():
        ev.barbican_keys(client, name, "Barbican")

    common_flow(flow, ev, name, tmp_path / "tree", collect)
    # keyring copy Barbican -> file store
    file_repo = tmp_path / "copy-keys"
    file_conf = debug_conf(tmp_path / "to-file.conf", tmp_path / "copy-file-oslo.log",
                           changes={("sealedmeta", "key_repository"): file_repo})
    ev.log_files.append(str(tmp_path / "copy-file-oslo.log"))
    flow.run("keyring", "copy", name, "--to-config", file_conf, "-f", "json")
    ev.file_keys(file_repo, "file store copy")
    # wrong password: Keystone answers 401
    wrong_log = tmp_path / "wrong-oslo.log"
    ev.log_files.append(str(wrong_log))
    wrong = debug_conf(tmp_path / "wrong.conf", wrong_log, base=bk.conf_path,
                       changes={("key_manager", "password"): WRONG_PASSWORD})
    Flow(ev, tmp_path, repo, wrong, name="wrong").run(
        "keyring", "show", name, ok=False)
    # in-process, with the token of our own session
    store = keystores.load(SealedMetaApp.load_conf([conf]))
    in_process(ev, store, name, "barbican")
    ev.tokens.add(store.session.ks_session.get_token())
    collect()
    # Barbican stopped: a cold process cannot open or rotate
    env1 = tmp_path / "tree" / "e1"
    bk.stop(only="barbican")
    try:
        flow.run("open", *CTX, str(env1), ok=False)
        flow.run("rekey", name, ok=False)
        flow.run("keyring", "show", name, ok=False)
        flow.run("verify", str(tmp_path / "tree"), ok=False)
        try:
            store.rotate(name)
        except exceptions.SealedMetaError as exc:
            ev.exception("rotate with Barbican stopped", exc)
            ev.failures += 1
        else:
            raise AssertionError("rotated with Barbican stopped")
    finally:
        bk.start()
    store.close()
    assert len(ev.keys) >= 3 and ev.tokens
    assert_clean(ev, "Barbican + Keystone")


# -- permissions -----------------------------------------------------------------

def modes(root):
    out = {}
    for dirpath, dirnames, filenames in os.walk(str(root)):
        for name in dirnames + filenames + ([""] if dirpath == str(root) else []):
            path = os.path.join(dirpath, name) if name else dirpath
            out[os.path.relpath(path, str(root))] = stat.S_IMODE(os.lstat(path).st_mode)
    return out


def test_file_store_permissions_and_refusals(tmp_path):
    repo = tmp_path / "keys"
    # umask 000: the store still creates 0700 / 0600
    proc = subprocess.run(
        [sm_cli.console_script(), "--key-repository", str(repo), "keyring",
         "create", "perm"], env=sm_cli.cli_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, preexec_fn=lambda: os.umask(0))
    assert proc.returncode == 0, proc.stderr
    code, out, err = sm_cli.run(["rekey", "perm"], tmp_path, repo)
    assert code == 0, err
    found = modes(repo)
    dirs = {p: m for p, m in found.items() if os.path.isdir(os.path.join(repo, p))}
    files = {p: m for p, m in found.items() if p not in dirs}
    assert dirs and all(m == 0o700 for m in dirs.values()), dirs
    assert {"perm/v1.key", "perm/v2.key", "perm/keyring.json"} <= set(files)
    assert all(m == 0o600 for m in files.values()), files
    raw = Sealer(FileKeyStore(str(repo)), "perm").seal({"a": 1}, {"b": "c"})
    envelope_file = tmp_path / "env"
    envelope_file.write_bytes(raw)

    refusals = 0
    for target, mode in ((repo, 0o750), (repo, 0o701), (repo / "perm", 0o755),
                         (repo / "perm" / "v2.key", 0o640),
                         (repo / "perm" / "v2.key", 0o604),
                         (repo / "perm" / "keyring.json", 0o644)):
        original = stat.S_IMODE(os.lstat(target).st_mode)
        os.chmod(target, mode)
        try:
            code, out, err = sm_cli.run(["open", "--context", "b=c", str(envelope_file)],
                                        tmp_path, repo)
            assert code != 0 and out == "", (target, mode, out)
            assert "refusing key repository" in err, err
            assert "group or others" in err and "chmod" in err, err
            with pytest.raises(exceptions.KeyStoreError, match="refusing"):
                Sealer(FileKeyStore(str(repo)), "perm").open(raw, {"b": "c"})
            refusals += 1
        finally:
            os.chmod(target, original)
    code, out, err = sm_cli.run(["open", "--context", "b=c", str(envelope_file)],
                                tmp_path, repo)
    assert code == 0, err
    figures.record("file store permissions", dirs_0700=len(dirs),
                   files_0600=len(files), refusals_checked=refusals,
                   created_under_umask="000")


def test_the_search_finds_every_form(tmp_path):
    """The detector is not vacuous: each form of a key, a password and a
    token planted in a log is found."""
    ev = Evidence(tmp_path)
    key = os.urandom(32)
    ev.keys[key] = "planted"
    ev.passwords.add("pw-" + os.urandom(6).hex())
    ev.tokens.add("tok-" + os.urandom(6).hex())
    planted = sorted(forms(key)) + [p.encode() for p in ev.passwords] + [
        t.encode() for t in ev.tokens] + [
        b"gAAAAA" + base64.urlsafe_b64encode(os.urandom(60)),
        b"X-Auth-Token: 0123456789abcdef"]
    for i, text in enumerate(planted):
        ev.add("planted %d" % i, b"log line ... " + text + b" ...")
    found, _ = ev.hits()
    assert {label for label, _, _ in found} == {
        "planted %d" % i for i in range(len(planted))}
    ev.add("redacted", b"X-Auth-Token: {SHA256}abcdef X-Auth-Token: ***")
    assert len(ev.hits()[0]) == len(found)
    ev.add("metadata in a log", b"... " + PROVIDER_AUTH.encode())
    ev.add("open output", b"{... " + PROVIDER_AUTH.encode())
    ev.plaintext_ok.add("open output")
    labels = [label for label, _, _ in ev.hits()[0]]
    assert "metadata in a log" in labels and "open output" not in labels
