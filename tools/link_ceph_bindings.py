"""Link Debian's rados and rbd bindings into the site-packages of the venv
whose python runs this (the ceph tox env, tools/dev-cloud's Cinder venv).

They are built for the system Python (python3-rados, python3-rbd); a plain
venv on that interpreter can load them, while --system-site-packages would
also pull in Debian's older copies of Cinder's dependencies.
"""

import glob
import os
import sys
import sysconfig

SYSTEM = "/usr/lib/python3/dist-packages"


def main():
    site = sysconfig.get_paths()["platlib"]
    tag = sysconfig.get_config_var("EXT_SUFFIX")
    for name in ("rados", "rbd"):
        found = glob.glob(os.path.join(SYSTEM, name + tag))
        if not found:
            sys.exit("%s%s is missing from %s: install Debian's python3-%s"
                     " (tools/dev-ceph does when run as root), and run this"
                     " env on the system python3" % (name, tag, SYSTEM, name))
        link = os.path.join(site, os.path.basename(found[0]))
        if os.path.realpath(link) != os.path.realpath(found[0]):
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(found[0], link)


if __name__ == "__main__":
    main()
