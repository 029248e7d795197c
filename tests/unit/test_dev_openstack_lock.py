"""``tools/dev-openstack start`` says when it waits for another start on
the same directory (and who that is), and when it got the lock.

The real script runs in a child process while this test holds the
directory's lock. The directory was set up without Keystone and the child
is asked for ``--keystone``, so once it has the lock it stops with its
refusal: no server is started.
"""

import fcntl
import os
import subprocess
import sys

from tests import sm_cli
from tests.dev_servers import DEV_OPENSTACK
from tests.dev_servers import load_tool


def test_start_says_it_waits_for_the_lock_and_when_it_got_it(tmp_path):
    tool = load_tool("dev-openstack")
    env = tool.Env(str(tmp_path / "cloud"))
    os.makedirs(env.dir)
    env.state = tool.new_state(False)
    env.save()
    lock_path = env.p(".dev-openstack.lock")
    with open(lock_path, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("%d\n" % os.getpid())
        held.flush()
        proc = subprocess.Popen(
            [sys.executable, DEV_OPENSTACK, "start", "--dir", env.dir,
             "--keystone"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        try:
            waiting = sm_cli.read_lines(proc, 1)
            assert waiting == [
                "dev-openstack: waiting for another start on %s: %s is locked"
                " by pid %d (%s)" % (env.dir, lock_path, os.getpid(),
                                     _command_line(os.getpid()))]
        finally:
            fcntl.flock(held, fcntl.LOCK_UN)
        out, err = proc.communicate(timeout=sm_cli.HANG)
    lines = (getattr(proc, "unread", b"") + err).decode().splitlines()
    assert lines[0].startswith("dev-openstack: got the lock %s after " % lock_path)
    assert lines[0].endswith(" s")
    assert "was set up without Keystone" in lines[-1]
    assert proc.returncode != 0
    # The lock file names its last holder.
    with open(lock_path) as handle:
        assert handle.read() == "%d\n" % proc.pid


def _command_line(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as handle:
        argv = handle.read().rstrip(b"\0").split(b"\0")
    return " ".join(a.decode("utf-8", "replace") for a in argv)[:200]
