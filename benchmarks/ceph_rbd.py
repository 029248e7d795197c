"""Sealed vs stock Ceph backup driver: backup and restore of an RBD volume.

    python benchmarks/ceph_rbd.py [--gib N] [--rounds N] [--ceph-dir DIR]
                                  [--json FILE]

Run it on the ``ceph`` tox env's interpreter (Cinder 29.x and the rados/rbd
bindings): ``.tox/ceph/bin/python benchmarks/ceph_rbd.py``. Starts a
one-host Ceph with ``tools/dev-ceph`` in a temporary directory (stopped at
the end), or uses the running one of ``--ceph-dir``. Cinder runs without
services, as in ``cinder_overhead.py``.

The source is an RBD image of N GiB (default 1) in pool ``volumes``, half
written (512 KiB of random bytes at the start of every MiB; the rest never
written, as a thin volume is). Each round backs it up with the stock
``CephBackupDriver`` and with ``SealedCephBackupDriver`` (who goes first
alternates), each a first, full differential backup (``rbd export-diff`` /
``import-diff`` into ``backups``), then restores each backup into a new
RBD image. Printed: seconds per operation (median over the rounds) and the
sealed/stock ratios. Nothing is asserted.
"""

import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings

import cinder_overhead
import common

warnings.simplefilter("ignore")

GIB = 1024 ** 3
MIB = 1024 ** 2
STOCK = "cinder.backup.drivers.ceph.CephBackupDriver"
SEALED = "sealedmeta.cinder.ceph.SealedCephBackupDriver"


class Bench:
    def __init__(self, conf, env, gib):
        import rados
        import rbd
        from cinder import context
        from cinder.db import api as db

        self.rados, self.rbd, self.db = rados, rbd, db
        self.conf, self.env, self.gib = conf, env, gib
        self.ctxt = context.get_admin_context()
        self.type_id = db.volume_type_get_by_name(self.ctxt, "__DEFAULT__")["id"]
        self.cluster = rados.Rados(rados_id="cinder", conffile=env["conf"])
        self.cluster.connect()

    def close(self):
        self.cluster.shutdown()

    def volume(self, glance=None):
        """A volume row and its empty RBD image volume-<id>."""
        volume = self.db.volume_create(self.ctxt, {
            "size": self.gib, "status": "available", "volume_type_id": self.type_id,
            "display_name": "bench", "project_id": "p", "user_id": "u",
            "metadata": {"tier": "gold"}})
        for key, value in (glance or {}).items():
            self.db.volume_glance_metadata_create(self.ctxt, volume.id, key, value)
        with self.cluster.open_ioctx("volumes") as ioctx:
            self.rbd.RBD().create(ioctx, "volume-" + volume.id, self.gib * GIB,
                                  features=self.rbd.RBD_FEATURE_LAYERING)
        return volume.id

    def fill(self, volume_id):
        with self.cluster.open_ioctx("volumes") as ioctx:
            with self.rbd.Image(ioctx, "volume-" + volume_id) as image:
                for mib in range(self.gib * 1024):
                    image.write(os.urandom(MIB // 2), mib * MIB)

    def remove_image(self, volume_id):
        # A backup leaves a snapshot on its source, a differential restore
        # one on its target.
        with self.cluster.open_ioctx("volumes") as ioctx:
            with self.rbd.Image(ioctx, "volume-" + volume_id) as image:
                for snap in list(image.list_snaps()):
                    image.remove_snap(snap["name"])
            self.rbd.RBD().remove(ioctx, "volume-" + volume_id)

    @contextlib.contextmanager
    def volume_file(self, volume_id):
        from os_brick.initiator import linuxrbd
        with self.cluster.open_ioctx("volumes") as ioctx:
            image = self.rbd.Image(ioctx, "volume-" + volume_id)
            try:
                yield linuxrbd.RBDVolumeIOWrapper(linuxrbd.RBDImageMetadata(
                    image, "volumes", "cinder", self.env["conf"]))
            finally:
                image.close()

    def backup(self, cls, service, volume_id):
        from cinder import objects
        from cinder.objects import fields
        backup = objects.Backup(
            context=self.ctxt, volume_id=volume_id, user_id="u", project_id="p",
            host="bench", availability_zone="nova", display_name="bench",
            display_description="", container=None, service=service,
            status=fields.BackupStatus.CREATING, size=self.gib, metadata={})
        backup.create()
        with self.volume_file(volume_id) as handle:
            updates = cls(self.ctxt).backup(backup, handle) or {}
        backup = objects.Backup.get_by_id(self.ctxt, backup.id)
        for key, value in updates.items():
            setattr(backup, key, value)
        backup.status = fields.BackupStatus.AVAILABLE
        backup.save()
        return objects.Backup.get_by_id(self.ctxt, backup.id)

    def restore(self, cls, backup, target):
        with self.volume_file(target) as handle:
            cls(self.ctxt).restore(backup, target, handle, True)


def run(conf, env, gib, rounds):
    from cinder.backup.drivers import ceph as stock_ceph
    from sealedmeta.cinder import ceph as sealed_ceph

    for name, value in (("backup_ceph_conf", env["conf"]),
                        ("backup_ceph_user", "cinder-backup"),
                        ("backup_ceph_pool", "backups")):
        conf.set_override(name, value)
    drivers = {"stock": (stock_ceph.CephBackupDriver, STOCK),
               "sealed": (sealed_ceph.SealedCephBackupDriver, SEALED)}
    bench = Bench(conf, env, gib)
    seconds = {"%s_%s" % (op, kind): [] for op in ("backup", "restore")
               for kind in drivers}
    try:
        src = bench.volume(cinder_overhead.GLANCE)
        start = time.perf_counter()
        bench.fill(src)
        fill_s = time.perf_counter() - start
        for n in range(rounds):
            kinds = ["stock", "sealed"] if n % 2 == 0 else ["sealed", "stock"]
            made, targets = {}, []
            for kind in kinds:
                cls, service = drivers[kind]
                start = time.perf_counter()
                made[kind] = bench.backup(cls, service, src)
                seconds["backup_" + kind].append(time.perf_counter() - start)
            for kind in kinds:
                target = bench.volume()
                targets.append(target)
                start = time.perf_counter()
                bench.restore(drivers[kind][0], made[kind], target)
                seconds["restore_" + kind].append(time.perf_counter() - start)
            for kind in kinds:
                drivers[kind][0](bench.ctxt).delete_backup(made[kind])
            for target in targets:
                bench.remove_image(target)
        bench.remove_image(src)
    finally:
        bench.close()
    median = {k: statistics.median(v) for k, v in seconds.items()}
    return {
        "volume_gib": gib, "written_gib": gib / 2, "rounds": rounds,
        "fill_s": round(fill_s, 2),
        "seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
        "backup_stock_s": round(median["backup_stock"], 2),
        "backup_sealed_s": round(median["backup_sealed"], 2),
        "restore_stock_s": round(median["restore_stock"], 2),
        "restore_sealed_s": round(median["restore_sealed"], 2),
        "backup_sealed_vs_stock": round(median["backup_sealed"] / median["backup_stock"], 3),
        "restore_sealed_vs_stock": round(
            median["restore_sealed"] / median["restore_stock"], 3),
    }


def main(argv=None):
    parser = common.parser(__doc__)
    parser.add_argument("--gib", type=int, default=1, metavar="N")
    parser.add_argument("--rounds", type=int, default=1, metavar="N")
    parser.add_argument("--ceph-dir", metavar="DIR",
                        help="use the running tools/dev-ceph cluster of DIR")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="sealedmeta-ceph-bench-")
    ceph_dir = args.ceph_dir or os.path.join(workdir, "ceph")
    try:
        if not args.ceph_dir:
            common.dev_tool("dev-ceph", "start", "--dir", ceph_dir)
        with open(os.path.join(ceph_dir, "env.json")) as handle:
            env = json.load(handle)
        conf, _, _ = cinder_overhead.setup(workdir)
        result = run(conf, env, args.gib, args.rounds)
    finally:
        if not args.ceph_dir:
            common.dev_tool("dev-ceph", "stop", "--dir", ceph_dir)
        shutil.rmtree(workdir, ignore_errors=True)
    return common.report(result, args.json)


if __name__ == "__main__":
    sys.exit(main())
