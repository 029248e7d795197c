"""Helpers for tests that run the ``sealedmeta`` command line: the real
console script in a child process (:func:`start`, :func:`run`), or its
``main`` in this process (:func:`run_in_process`).

Shared by every test suite.
"""

import contextlib
import hashlib
import json
import logging
import os
import pty
import select
import subprocess
import sys
import textwrap
import time

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import atomic
from sealedmeta import keyring as kr
from sealedmeta.cmd import main as sm_main


def console_script():
    """The ``sealedmeta`` script installed next to this interpreter."""
    path = os.path.join(os.path.dirname(sys.executable), "sealedmeta")
    assert os.access(path, os.X_OK), (
        "the sealedmeta console script is not installed at %s: run"
        " pip install -e . in this virtualenv" % path)
    return path


def cli_env(tmp_path):
    env = dict(os.environ)
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg-data")
    env.pop("PYTHONWARNINGS", None)
    return env


def start(args, tmp_path, repo, config=None, **kwargs):
    """Popen of ``sealedmeta [--config-file C] --key-repository REPO args``."""
    argv = [console_script()]
    if config is not None:
        argv += ["--config-file", str(config)]
    argv += ["--key-repository", str(repo)] + list(args)
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(argv, env=cli_env(tmp_path), stdin=subprocess.DEVNULL,
                            **kwargs)


def run(args, tmp_path, repo, config=None, timeout=120):
    """(exit code, stdout text, stderr text)."""
    proc = start(args, tmp_path, repo, config)
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out.decode("utf-8", "replace"), err.decode(
        "utf-8", "replace")


@contextlib.contextmanager
def logging_kept():
    """Logging as it was before the block: cliff adds a console handler to
    the root logger, and the application sets the levels of chatty
    libraries' loggers."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = sm_main.SealedMetaApp.QUIET_LOGGERS + sm_main.SealedMetaApp.SILENT_LOGGERS
    levels = {name: logging.getLogger(name).level for name in quiet}
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)
        for name, old in levels.items():
            logging.getLogger(name).setLevel(old)


def main(*argv):
    """Exit status of the console script's ``main(ARGV)`` in this process
    (argparse's usage errors included); logging is left as the command set
    it (see :func:`logging_kept`)."""
    try:
        return sm_main.main(list(argv))
    except SystemExit as exc:   # argparse: usage errors, --help
        return exc.code


def run_in_process(capsys, *argv):
    """(exit status, stdout, stderr) of ``sealedmeta ARGV`` run in this
    process, read with pytest's *capsys*; logging left as it was."""
    with logging_kept():
        code = main(*argv)
    out, err = capsys.readouterr()
    return code, out, err


# Seconds a child may print nothing before it counts as hung: a guard
# against a test that never ends, not a measure of speed.
HANG = 600


def read_lines(proc, count, stream=None, hang=HANG):
    """Read *stream*'s (default: stderr) lines until *count* were read or the
    child closed it; returns the lines read. AssertionError if the child
    prints nothing for *hang* seconds."""
    fd = (stream or proc.stderr).fileno()
    pending = getattr(proc, "unread", b"")   # os.read: no hidden buffer
    lines = []
    while len(lines) < count:
        if b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            lines.append(line.decode("utf-8", "replace"))
            continue
        ready, _, _ = select.select([fd], [], [], hang)
        if not ready:
            raise AssertionError("child printed nothing for %d s after %d"
                                 " lines: hung" % (hang, len(lines)))
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        pending += chunk
    proc.unread = pending
    return lines


def run_on_pty(args, tmp_path, repo, stream="stdout", hang=HANG):
    """(exit status, the other stream's text, what a terminal was shown) of
    the console script with its standard *stream* ("stdout" or "stderr") on
    a real pty. AssertionError if the child shows nothing for *hang* s."""
    leader, follower = pty.openpty()
    try:
        proc = start(args, tmp_path, repo, **{stream: follower})
    finally:
        os.close(follower)
    shown = []
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], hang)
            if not ready:
                proc.kill()
                raise AssertionError("child showed nothing for %d s: hung" % hang)
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: every writer closed the pty
                break
            if not chunk:
                break
            shown.append(chunk)
    finally:
        os.close(leader)
    out, err = proc.communicate(timeout=hang)
    other = err if stream == "stdout" else out
    return (proc.returncode, other.decode("utf-8", "replace"),
            b"".join(shown).decode("utf-8", "replace"))


def timed_run(args, tmp_path, repo):
    """Seconds a successful run of the command took."""
    started = time.monotonic()
    code, out, err = run(args, tmp_path, repo)
    assert code == 0, err
    return time.monotonic() - started


def temp_files(root):
    """Paths of the atomic writer's temporary files under *root*."""
    return [os.path.join(d, f) for d, _, files in os.walk(str(root))
            for f in files if f.startswith(atomic.TEMP_PREFIX)]


def tree_digest(*roots):
    """One hash over names, modes, owners and contents of everything under
    *roots* (files, links, directories)."""
    digest = hashlib.sha256()
    for root in roots:
        root = str(root)
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                digest.update(("%s|%o|%d|%d\n" % (
                    os.path.relpath(path, root), st.st_mode, st.st_uid,
                    st.st_gid)).encode("utf-8", "surrogateescape"))
                if os.path.islink(path):
                    digest.update(os.readlink(path).encode())
                elif os.path.isfile(path):
                    with open(path, "rb") as handle:
                        digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def write_config(path, **groups):
    """An oslo.config file: write_config(p, coordination={"backend_url": u})."""
    lines = []
    for group, options in groups.items():
        lines.append("[%s]" % group)
        lines += ["%s = %s" % item for item in options.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


_SEALER_LOOP = textwrap.dedent("""
    import json, os, sys, time
    from sealedmeta import FileKeyStore, Sealer
    repo, name, outdir, tag, stop, ready = sys.argv[1:7]
    sealer = Sealer(FileKeyStore(repo), keyring=name, cache_ttl=0)
    deadline = time.monotonic() + 900   # a hang guard only
    n = 0
    after_stop = 0
    while time.monotonic() < deadline and after_stop < 3:
        context = {"backup_id": "%s-%d" % (tag, n)}
        raw = sealer.seal({"n": n, "tag": tag}, context)
        with open(os.path.join(outdir, "%s-%05d.env" % (tag, n)), "wb") as f:
            f.write(raw)
        n += 1
        if n == 1:
            open(ready, "w").close()
        if os.path.exists(stop):
            after_stop += 1
        time.sleep(0.002)
    print(n)
""")


def rekey_race(tmp_path, config, processes=8, sealers=2, name="race"):
    """*processes* concurrent ``sealedmeta rekey`` while *sealers* other
    processes keep sealing; returns a dict of what happened. Asserts the
    outcome the coordination must guarantee."""
    repo = tmp_path / "keys"
    store = FileKeyStore(str(repo))
    store.create_keyring(name)
    outdir = tmp_path / "sealed"
    outdir.mkdir()
    stop = tmp_path / "stop"
    sealer_procs = []
    for i in range(sealers):
        ready = tmp_path / ("ready-%d" % i)
        sealer_procs.append((ready, subprocess.Popen(
            [sys.executable, "-c", _SEALER_LOOP, str(repo), name, str(outdir),
             "s%d" % i, str(stop), str(ready)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=cli_env(tmp_path))))
    deadline = time.monotonic() + HANG
    for ready, proc in sealer_procs:
        while not ready.exists():
            assert proc.poll() is None, proc.communicate()[1].decode()
            assert time.monotonic() < deadline, "sealer did not start"
            time.sleep(0.01)
    rekeys = [start(["rekey", name, "-f", "json"], tmp_path, repo, config)
              for _ in range(processes)]
    results = []
    for proc in rekeys:
        out, err = proc.communicate(timeout=120)
        results.append((proc.returncode, out.decode(), err.decode()))
    stop.touch()
    sealed_counts = []
    for _, proc in sealer_procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
        sealed_counts.append(int(out))

    for code, out, err in results:
        assert code == 0, err
    versions = sorted(json.loads(out)["version"] for _, out, _ in results)
    assert versions == list(range(2, processes + 2)), versions
    ring = store.get_keyring(name)
    assert [v.number for v in ring.versions] == list(range(1, processes + 2))
    actives = [v.number for v in ring.versions if v.state is kr.KeyState.ACTIVE]
    assert actives == [processes + 1]
    assert all(v.state is kr.KeyState.DECRYPT_ONLY
               for v in ring.versions if v.number != processes + 1)

    opener = Sealer(store, keyring=name)
    per_version = {}
    files = sorted(os.listdir(outdir))
    assert len(files) == sum(sealed_counts)
    for fname in files:
        tag, n = fname[:-4].rsplit("-", 1)
        raw = (outdir / fname).read_bytes()
        meta = opener.open(raw, {"backup_id": "%s-%d" % (tag, int(n))})
        assert meta == {"n": int(n), "tag": tag}
        version = opener.verify(raw).key_version
        per_version[version] = per_version.get(version, 0) + 1
    # Sealing started before the race and went on after it.
    assert 1 in per_version and processes + 1 in per_version, per_version
    return {"versions": versions, "envelopes": len(files),
            "per_version": per_version}
