"""Helpers of the SIGKILL tests: processes killed at random moments, and the
checks made after every kill."""

import os
import random
import select
import signal
import subprocess
import sys
import time

from sealedmeta import envelope
from sealedmeta import keyring as kr

from tests import sm_cli

HANG = sm_cli.HANG
read_lines = sm_cli.read_lines

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def new_rng():
    seed = int(os.environ.get("SEALEDMETA_RELIABILITY_SEED") or
               int.from_bytes(os.urandom(4), "big"))
    return seed, random.Random(seed)


def python_env(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1",
               XDG_DATA_HOME=str(tmp_path / "xdg-data"))
    env.pop("PYTHONWARNINGS", None)
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = TOP + (os.pathsep + path if path else "")
    return env


def start_python(code, args, tmp_path):
    """A Python child running *code*; stdout is a pipe, stderr to a file."""
    err = open(os.path.join(str(tmp_path), "child-%d.err" % time.monotonic_ns()),
               "wb")
    proc = subprocess.Popen([sys.executable, "-c", code] + [str(a) for a in args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=err, env=python_env(tmp_path))
    proc.err_file = err
    return proc


def wait_line(proc, want, timeout=None):
    """Read stdout lines until one equals *want*; AssertionError otherwise."""
    deadline = time.monotonic() + (timeout or HANG)
    buf = b""
    fd = proc.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
            if (want + "\n").encode() in buf:
                return
        elif proc.poll() is not None:
            break
    raise AssertionError("child did not say %r (exit %s): %s\n%s" % (
        want, proc.poll(), buf[-2000:], child_stderr(proc)))


def child_stderr(proc):
    try:
        proc.err_file.flush()
        with open(proc.err_file.name, "rb") as handle:
            return handle.read()[-3000:].decode("utf-8", "replace")
    except (OSError, AttributeError):
        return ""


def kill(proc):
    """SIGKILL *proc* if still running; True when it was killed by it."""
    alive = proc.poll() is None
    if alive:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    if getattr(proc, "err_file", None):
        proc.err_file.close()
    return alive and proc.returncode == -signal.SIGKILL


def kill_at_line(proc, count, rng, stream=None):
    """SIGKILL *proc* once it has printed its *count*-th line (a moment
    chosen from its own progress, whatever the machine's speed), after a
    random fraction of a millisecond. Returns (killed, lines read)."""
    lines = sm_cli.read_lines(proc, count, stream)
    time.sleep(rng.uniform(0, 0.001))
    return kill(proc), lines


def count_lines(proc):
    """All the lines a child prints on stderr, until it ends:
    (lines, exit status, stdout)."""
    lines = sm_cli.read_lines(proc, float("inf"))
    out, _ = proc.communicate(timeout=HANG)
    return lines, proc.returncode, out.decode("utf-8", "replace")


def check_ring(ring):
    """The invariants a keyring must keep after any crash."""
    actives = [v.number for v in ring.versions if v.state is kr.KeyState.ACTIVE]
    assert len(actives) == 1, actives
    numbers = [v.number for v in ring.versions]
    assert numbers == sorted(set(numbers)), numbers
    return ring


def header(data):
    return envelope.parse(envelope.load(data)).header
