"""Peak memory of ``sealedmeta cinder audit`` as the database grows.

    .tox/cinder/bin/python benchmarks/audit_memory.py [--sizes 1000,100000]
                                                      [--json FILE]

Run it on the ``cinder`` tox env's interpreter. A Cinder database in an
SQLite file and the posix backup driver over a temporary directory (Cinder
without services, as in ``cinder_overhead.py``): one real sealed backup is
made through ``SealedPosixBackupDriver``, then copies of its database row
are added, each with a metadata object of its own sealed for it, until the
database holds each size in turn. At each size the real command line runs
as a child process over the whole database::

    sealedmeta --config-file cinder.conf cinder audit -f json

and its peak resident set (``ru_maxrss`` of the child), wall time and
rate are printed, with the classes its report gives (all must be
``valid``). Nothing is asserted but the report's row count and
classes: memory is a figure for the performance page.
"""

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings

import cinder_overhead
import common

warnings.simplefilter("ignore")


class Fleet:
    """Backup rows and metadata objects made from one real sealed backup."""

    def __init__(self, workdir):
        import sqlalchemy
        from cinder import objects
        from cinder.db import models
        from sealedmeta.cinder import volume_meta as vm

        self.db_path = os.path.join(workdir, "cinder.sqlite")
        conf, sealed_cls, _ = cinder_overhead.setup(
            workdir, "sqlite:///" + self.db_path)
        self.conf, self.vm = conf, vm
        harness = cinder_overhead.Harness(workdir, os.urandom(64 * 1024))
        made = harness.make_backup(sealed_cls, cinder_overhead.POSIX["sealed"])
        made = objects.Backup.get_by_id(harness.ctxt, made.id)
        self.driver = sealed_cls(harness.ctxt)
        self.text = self.driver.get_metadata(made.volume_id)
        path = os.path.join(conf.backup_posix_path, made.container,
                            made.service_metadata + "_metadata")
        with open(path) as handle:
            self.template_object = json.load(handle)
        self.table = models.Backup.__table__
        self.engine = sqlalchemy.create_engine("sqlite:///" + self.db_path)
        with self.engine.connect() as conn:
            row = conn.execute(self.table.select().where(
                self.table.c.id == made.id)).one()
        self.template_row = dict(row._mapping)
        self.count = 1

    def grow(self, size, batch=5000):
        """Add rows (and objects) until the database holds *size* backups."""
        while self.count < size:
            rows = []
            for _ in range(min(batch, size - self.count)):
                rows.append(self._one())
                self.count += 1
            with self.engine.begin() as conn:
                conn.execute(self.table.insert(), rows)

    def _one(self):
        backup_id = str(uuid.uuid4())
        row = dict(self.template_row, id=backup_id,
                   container="fleet/%s" % backup_id[:2],
                   service_metadata="backup_%s" % backup_id)
        obj = dict(self.template_object, backup_id=backup_id, volume_meta=self.vm.seal(
            self.driver.sealer, self.text, backup_id, row["volume_id"]))
        directory = os.path.join(self.conf.backup_posix_path, row["container"])
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, row["service_metadata"] + "_metadata"),
                  "w") as handle:
            json.dump(obj, handle)
        return row

    def cinder_conf(self, path):
        with open(path, "w") as handle:
            handle.write(
                "[DEFAULT]\nbackup_driver = %s\nbackup_posix_path = %s\n"
                "[database]\nconnection = sqlite:///%s\n"
                "[sealedmeta]\nkey_repository = %s\n" % (
                    cinder_overhead.POSIX["sealed"], self.conf.backup_posix_path,
                    self.db_path, self.conf.sealedmeta.key_repository))
        return path


def audit_child(conf_path, report_path):
    """(peak RSS MiB, seconds) of the real command line over the database."""
    command = os.path.join(os.path.dirname(sys.executable), "sealedmeta")
    start = time.perf_counter()
    with open(report_path, "w") as out:
        proc = subprocess.Popen([command, "--config-file", conf_path, "cinder",
                                 "audit", "-f", "json"], stdout=out,
                                stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss / 1024, seconds


def main(argv=None):
    parser = common.parser(__doc__)
    parser.add_argument("--sizes", default="1000,100000",
                        help="database sizes, in backups (default 1000,100000)")
    args = parser.parse_args(argv)
    sizes = sorted(int(n) for n in args.sizes.split(","))

    workdir = tempfile.mkdtemp(prefix="sealedmeta-audit-memory-")
    figures = {"sizes": {}}
    try:
        fleet = Fleet(workdir)
        conf_path = fleet.cinder_conf(os.path.join(workdir, "cinder.conf"))
        report = os.path.join(workdir, "report.json")
        for size in sizes:
            start = time.perf_counter()
            fleet.grow(size)
            made_s = time.perf_counter() - start
            code, rss_mib, seconds = audit_child(conf_path, report)
            with open(report) as handle:
                rows = json.load(handle)
            classes = collections.Counter(row["class"] for row in rows)
            assert len(rows) == size and set(classes) == {"valid"}, (
                code, len(rows), classes)
            figures["sizes"][size] = {
                "peak_rss_mib": round(rss_mib, 1), "seconds": round(seconds, 1),
                "backups_per_s": round(size / seconds, 1), "exit_status": code,
                "made_s": round(made_s, 1)}
            print("%7d backups: peak RSS %.1f MiB, %.1f s (%.0f backups/s), exit %d"
                  % (size, rss_mib, seconds, size / seconds, code), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    smallest, largest = sizes[0], sizes[-1]
    figures["rss_largest_vs_smallest"] = round(
        figures["sizes"][largest]["peak_rss_mib"]
        / figures["sizes"][smallest]["peak_rss_mib"], 3)
    return common.report(figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
