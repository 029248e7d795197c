"""The version pbr gives a build of this tree (setup.py, setup.cfg): from
git history when there is some, a development build of the next release
when there is none (a shallow clone, an unpacked archive), never 0.0.0 and
never a failure. Each case builds the metadata of a copy of the committed
tree (HEAD) with ``setup.py --version``."""

import configparser
import os
import re
import subprocess
import sys

import pytest

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def next_release():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(TOP, "setup.cfg"))
    return cfg["metadata"]["version"]


def version_of(tree, **env):
    environ = {k: v for k, v in os.environ.items() if k != "PBR_VERSION"}
    environ.update(env)
    proc = subprocess.run([sys.executable, "setup.py", "--version"], cwd=str(tree),
                          capture_output=True, text=True, env=environ, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


def git(*args, cwd=TOP):
    return subprocess.run(["git", *args], cwd=str(cwd), check=True,
                          capture_output=True, text=True).stdout


@pytest.fixture
def clone(tmp_path):
    """A clone of HEAD with its whole history (tags included)."""
    path = tmp_path / "clone"
    git("clone", "-q", TOP, str(path))
    git("checkout", "-q", git("rev-parse", "HEAD").strip(), cwd=path)
    return path


def test_a_clone_is_a_development_build_of_the_next_release(clone):
    got = version_of(clone)
    if git("tag", "--points-at", "HEAD", cwd=clone).split():
        assert got == next_release()
    else:
        assert re.fullmatch(re.escape(next_release()) + r"\.dev[1-9][0-9]*", got), got


def test_a_tagged_commit_is_the_release(clone):
    git("tag", next_release(), cwd=clone)
    assert version_of(clone) == next_release()


def test_without_history_it_is_the_next_release_dev0(tmp_path):
    shallow = tmp_path / "shallow"
    git("clone", "-q", "--depth", "1", "file://" + TOP, str(shallow))
    assert version_of(shallow) == next_release() + ".dev0"   # pbr alone: 0.0.0
    archive = tmp_path / "archive"
    archive.mkdir()
    data = subprocess.run(["git", "archive", "HEAD"], cwd=TOP, check=True,
                          capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(archive)], input=data, check=True)
    assert version_of(archive) == next_release() + ".dev0"   # pbr alone: fails
    assert version_of(archive, PBR_VERSION="9.8.7") == "9.8.7"
