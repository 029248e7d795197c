"""Everything is in setup.cfg (pbr) and pyproject.toml.

pbr makes the version from git history: ``0.2.0.devN`` before the commit
tagged ``0.2.0`` (``version`` in setup.cfg names the next release). Where
there is no history -- a shallow clone, where pbr would call any commit
0.0.0, or an unpacked archive of the tree (an sdist carries PKG-INFO and
is left alone) -- the build is a development build of that next release,
``0.2.0.dev0``, unless ``PBR_VERSION`` says otherwise.
"""

import configparser
import os
import subprocess

import setuptools

HERE = os.path.dirname(os.path.abspath(__file__))


def _without_history():
    if os.path.exists(os.path.join(HERE, "PKG-INFO")):
        return False
    try:
        answer = subprocess.run(["git", "rev-parse", "--is-shallow-repository"],
                                cwd=HERE, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return True   # no git, or not in a repository
    return answer == "true"


if "PBR_VERSION" not in os.environ and _without_history():
    cfg = configparser.ConfigParser()
    cfg.read(os.path.join(HERE, "setup.cfg"))
    os.environ["PBR_VERSION"] = cfg["metadata"]["version"] + ".dev0"

setuptools.setup(pbr=True)
