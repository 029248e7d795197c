"""What the benchmark scripts share: their command line (the script's
description and ``--json FILE``), how their figures are printed and kept,
and the dev servers of tools/.

Each script runs as ``python benchmarks/NAME.py`` (in the tox env it needs):
its folder is then first on ``sys.path``, so the scripts import this
module, and each other, by name.
"""

import argparse
import json
import os
import platform
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parser(doc):
    """An argument parser described by the first paragraph of *doc* (the
    script's docstring), with ``--json FILE``."""
    result = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    result.add_argument("--json", metavar="FILE",
                        help="also write the figures to FILE as JSON")
    return result


def keep(figures, path):
    """Write *figures* to *path* (``--json``) as JSON, when one is given."""
    if path:
        with open(path, "w") as handle:
            json.dump(figures, handle, indent=2, sort_keys=True)
            handle.write("\n")


def report(figures, path):
    """Print *figures*, with the Python version and the CPU count, as JSON
    and :func:`keep` them."""
    figures.update(python=platform.python_version(), cpus=os.cpu_count())
    print(json.dumps(figures, indent=2, sort_keys=True))
    keep(figures, path)
    return 0


def dev_tool(tool, *args):
    """Run ``tools/TOOL ARGS`` (e.g. dev-ceph start --dir DIR); its output is
    dropped, a failure raises."""
    subprocess.run([sys.executable, os.path.join(TOP, "tools", tool), *args],
                   check=True, stdout=subprocess.DEVNULL)
