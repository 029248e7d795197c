"""Finding #5 with two real processes: an agent seals in a loop with a
cached keyring (cache_ttl) while an operator runs ``rekey --rewrap --wait``,
``key retire`` and ``key destroy --scan`` on the command line. No envelope
is ever sealed under the version that is then destroyed: every envelope the
agent wrote, before and after the destroy, opens with a fresh Sealer.

Bounded by counts (lines the agent printed); the only timers are the
settle window the library itself waits for and hang guards. The refused
retire is asked with a 600 s window, so its verdict does not depend on how
long the commands take."""

import os
import re
import subprocess
import sys
import textwrap

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import envelope

from sealedmeta import keyring as kr
from sealedmeta.cmd import keyring as keyring_cmd

from tests import sm_cli

RING = "settle"
CACHE_TTL = 2

_AGENT = textwrap.dedent("""
    import os, sys, time
    from sealedmeta import FileKeyStore, Sealer
    repo, name, outdir, partial, stop, ttl = sys.argv[1:7]
    sealer = Sealer(FileKeyStore(repo), keyring=name, cache_ttl=int(ttl))
    deadline = time.monotonic() + 900   # a hang guard only
    n = 0
    while time.monotonic() < deadline and not os.path.exists(stop):
        context = {"backup_id": "b-%06d" % n}
        raw = sealer.seal({"n": n}, context)
        # Whole files only appear in outdir (the rewrap walks it).
        tmp = os.path.join(partial, "e-%06d" % n)
        with open(tmp, "wb") as f:
            f.write(raw)
        os.rename(tmp, os.path.join(outdir, "e-%06d" % n))
        print("sealed %d" % n, flush=True)
        n += 1
        time.sleep(0.005)
""")


def test_no_envelope_is_sealed_under_a_version_later_destroyed(tmp_path):
    repo = tmp_path / "keys"
    FileKeyStore(str(repo)).create_keyring(RING)
    out, partial = tmp_path / "out", tmp_path / "partial"
    out.mkdir()
    partial.mkdir()
    stop = tmp_path / "stop"
    config = sm_cli.write_config(tmp_path / "agent.conf",
                                 sealedmeta={"cache_ttl": CACHE_TTL})
    long_window = sm_cli.write_config(tmp_path / "operator-600.conf",
                                      sealedmeta={"cache_ttl": 600})
    agent = subprocess.Popen(
        [sys.executable, "-c", _AGENT, str(repo), RING, str(out),
         str(partial), str(stop), str(CACHE_TTL)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL)
    try:
        assert len(sm_cli.read_lines(agent, 20, agent.stdout)) == 20

        def cli(*args):
            return sm_cli.run(args, tmp_path, repo, config)

        code, _, err = cli("rekey", RING)
        assert code == 0, err
        # Inside the window: refused, naming the time left; nothing changes.
        # Asked with a window far longer than the agent's (an operator whose
        # cache_ttl is 600 s), so that however slow the machine, the retire
        # is inside it: CACHE_TTL alone could pass before the command runs.
        code, _, err = sm_cli.run(("key", "retire", RING, "1"), tmp_path, repo,
                                  long_window)
        assert code == 2 and "s left" in err, err
        assert FileKeyStore(str(repo)).get_keyring(RING).version(1).state.value \
            == "decrypt-only"
        # The agent keeps sealing meanwhile (under version 1 until its
        # cache expires).
        assert len(sm_cli.read_lines(agent, 20, agent.stdout)) == 20
        # rekey --rewrap --wait: rotate again (v3), wait out the window of
        # v2, then rewrap everything the agent wrote.
        code, _, err = cli("rekey", RING, "--rewrap", str(out), "--wait")
        assert code == 0, err
        # It says how long it waits and until when, and it waited that
        # long: the window's end is behind when it returns.
        said = re.search(r"waiting (\d+)s for running agents to stop sealing"
                         r" under version 2: it stopped being active at \S+"
                         r" and the settle window .* ends at (\S+), so", err)
        assert said and int(said.group(1)) <= CACHE_TTL + 1, err
        assert keyring_cmd.iso(kr.now()) >= said.group(2)
        for version in ("1", "2"):
            code, _, err = cli("key", "retire", RING, version)
            assert code == 0, err
            for attempt in range(3):
                code, _, err = cli("key", "destroy", RING, version,
                                   "--scan", str(out))
                if code == 0:
                    break
                # A file the agent renamed into place after the rewrap
                # read the directory: rewrap again, as an operator would.
                assert "the scan found" in err, err
                code, _, err = cli("rewrap", str(out))
                assert code == 0, err
            assert code == 0, err
        # The agent goes on sealing after the destroys.
        assert len(sm_cli.read_lines(agent, 50, agent.stdout)) == 50
    finally:
        stop.touch()
        agent.wait(timeout=sm_cli.HANG)
    assert agent.returncode == 0
    ring = FileKeyStore(str(repo)).get_keyring(RING)
    assert [v.state.value for v in ring.versions] == [
        "destroyed", "destroyed", "active"]
    fresh = Sealer(FileKeyStore(str(repo)), keyring=RING, cache_ttl=0)
    names = sorted(os.listdir(out))
    assert len(names) >= 90
    for name in names:
        raw = (out / name).read_bytes()
        n = int(name.split("-")[1])
        assert envelope.parse(raw).header.key_version == 3, name
        assert fresh.open(raw, {"backup_id": "b-%06d" % n}) == {"n": n}
