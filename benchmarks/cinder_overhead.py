"""What sealing adds to a Cinder backup and to a restore (warm key cache).

    python benchmarks/cinder_overhead.py [--iterations N] [--json FILE]

Needs cinder 29.x in the environment (``pip install 'sealedmeta[cinder]'``).
Runs a real Cinder without services (SQLite in memory, fake:/ transport) and
the real posix driver over a temporary directory, with a file key store.

Figures (median and p95, microseconds; nothing is asserted):

``seal_us``
    what ``SealedMetadataMixin._backup_metadata`` adds to a backup: sealing
    the volume's real ``volume_meta`` string (Glance metadata of a typical
    image, user metadata, base metadata) into armour, bound to the backup.
``open_us``
    what the mixin adds to the restore of one backup: the object is already
    read and parsed by Cinder's code; this is dearmour + authenticate +
    decrypt + context check + payload check (``volume_meta.open_``).
``judge_extra_us``
    ``judge()`` (read the object, parse it, open the envelope) minus the stock
    ``_read_metadata`` (read, parse) of the same object: the whole per-backup
    cost on the restore path, measured through the driver.
``backup_stock_ms`` / ``backup_sealed_ms``, ``restore_stock_ms`` /
``restore_sealed_ms``
    a whole backup / restore of a 320 KiB volume (5 chunks, zlib) through the
    driver, stock class vs sealed class, for scale. These are noisy (file
    I/O, SQLite); the figures above are what sealing costs.
``volume_*`` (with ``--volume-mib N``)
    what a user waits for: a whole backup and a whole restore of an N MiB
    volume (half random, half zeros per MiB, so zlib has work of both
    kinds) with Cinder's default chunk, block and compression options, the
    stock posix driver and the sealed one interleaved round by round (which
    goes first alternates);
    seconds per operation (median) and the sealed/stock ratios.
"""

import concurrent.futures
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
import warnings

import common

warnings.simplefilter("ignore")


def setup(workdir, connection="sqlite://"):
    from cinder import objects
    objects.register_all()
    import oslo_messaging
    from oslo_config import cfg
    from oslo_messaging import transport as om_transport

    from cinder.backup import manager  # noqa: F401
    from cinder.backup.drivers import posix  # noqa: F401
    from cinder.db import migration
    from cinder import rpc

    conf = cfg.CONF
    conf([], project="cinder", default_config_files=[])
    conf.set_override("state_path", workdir)
    conf.set_override("connection", connection, group="database")
    conf.register_opts(om_transport._transport_opts)
    conf.set_override("transport_url", "fake:/")
    oslo_messaging.get_notification_transport(conf)
    conf.set_override("driver", ["test"], group="oslo_messaging_notifications")
    conf.set_override("backup_driver", "sealedmeta.cinder.posix.SealedPosixBackupDriver")
    conf.set_override("backup_file_size", 64 * 1024)
    conf.set_override("backup_sha_block_size_bytes", 4 * 1024)
    conf.set_override("backup_enable_progress_timer", False)
    conf.set_override("backup_posix_path", os.path.join(workdir, "backups"))
    rpc.init(conf)
    migration.db_sync()

    import sealedmeta
    from sealedmeta.cinder import posix as sealed_posix  # registers [sealedmeta]
    keys = os.path.join(workdir, "keys")
    sealedmeta.FileKeyStore(keys).create_keyring("cinder-backup")
    conf.set_override("key_repository", keys, group="sealedmeta")
    return conf, sealed_posix.SealedPosixBackupDriver, posix.PosixBackupDriver


GLANCE = {
    "image_id": "1b6a2f4e-7c0d-4b8e-9a3f-5d2c1e0f9a87",
    "image_name": "ubuntu-24.04-server-cloudimg-amd64",
    "checksum": "0f3c2b9a7d1e4f5a6b8c9d0e1f2a3b4c",
    "container_format": "bare", "disk_format": "qcow2", "min_disk": "10",
    "min_ram": "512", "size": "2361393152", "os_distro": "ubuntu",
    "os_version": "24.04", "architecture": "x86_64", "hw_disk_bus": "virtio",
    "billing_code_licence": "UBUNTU-PRO-0042", "licence_tier": "premium",
}


def median_p95(samples):
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.95 * (len(ordered) - 1))]


def timed(fn, iterations, scale=1e6):
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * scale)
    return samples


POSIX = {"stock": "cinder.backup.drivers.posix.PosixBackupDriver",
         "sealed": "sealedmeta.cinder.posix.SealedPosixBackupDriver"}


class Harness:
    """A volume row (Glance, user and base metadata) with its file, and
    whole backups and restores of it through a driver class."""

    def __init__(self, workdir, data):
        from cinder import context
        from cinder.db import api as db
        self.db, self.data = db, data
        # A user in the context: Cinder's Swift driver connects only then.
        self.ctxt = context.RequestContext(user_id="u", project_id="p", is_admin=True)
        self.type_id = db.volume_type_get_by_name(self.ctxt, "__DEFAULT__")["id"]
        volume = db.volume_create(self.ctxt, {
            "size": 1, "status": "available", "volume_type_id": self.type_id,
            "display_name": "bench", "project_id": "p", "user_id": "u",
            "metadata": {"tier": "gold", "owner": "finance", "cost-centre": "4711"}})
        for key, value in GLANCE.items():
            db.volume_glance_metadata_create(self.ctxt, volume.id, key, value)
        self.volume_id = volume.id
        self.voldir = os.path.join(workdir, "volumes")
        os.makedirs(self.voldir)
        self.src = self.volume_file(volume.id, data)

    def volume_file(self, volume_id, content=None):
        path = os.path.join(self.voldir, volume_id)
        if content is not None:
            with open(path, "wb") as handle:
                handle.write(content)
        return path

    def make_backup(self, cls, service, source=None, project_id="p"):
        from cinder import objects
        from cinder.objects import fields
        backup = objects.Backup(
            context=self.ctxt, volume_id=self.volume_id, user_id="u",
            project_id=project_id, status=fields.BackupStatus.CREATING,
            service=service, size=1, metadata={})
        backup.create()
        with open(source or self.src, "rb") as handle:
            updates = cls(self.ctxt).backup(backup, handle) or {}
        for key, value in updates.items():
            setattr(backup, key, value)
        # Ready for restore() (Cinder cancels a restore of a backup in
        # any other status).
        backup.status = fields.BackupStatus.RESTORING
        backup.save()
        return backup

    def restore(self, cls, backup, size=None):
        """ms of one restore into a fresh target volume (row + file)."""
        size = len(self.data) if size is None else size
        target = self.db.volume_create(self.ctxt, {
            "size": 1, "status": "restoring-backup", "volume_type_id": self.type_id,
            "project_id": "p", "user_id": "u"})
        path = self.volume_file(target.id)
        with open(path, "wb") as handle:
            handle.truncate(size)  # sparse: the restore writes it all
        with open(path, "r+b") as handle:
            start = time.perf_counter()
            cls(self.ctxt).restore(backup, target.id, handle, True)
            elapsed = (time.perf_counter() - start) * 1e3
        os.unlink(path)
        return elapsed


def whole_volume(harness, drivers, mib, rounds):
    """Seconds of whole backups and restores of a *mib* MiB volume, stock and
    sealed interleaved; *drivers* maps "stock" and "sealed" to ``(class,
    service name)``. The chunk, block and compression options are whatever
    the caller left in the configuration (Cinder's defaults, normally)."""
    path = harness.volume_file(harness.volume_id + "-big")
    half = 512 * 1024
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(os.urandom(half) + bytes(half))
    size = mib * 1024 * 1024
    seconds = {"%s_%s" % (op, kind): [] for op in ("backup", "restore")
               for kind in drivers}
    for n in range(rounds):
        # Who goes first alternates: the first restore of a round runs
        # while the backups' writes are still being flushed.
        kinds = ["stock", "sealed"] if n % 2 == 0 else ["sealed", "stock"]
        made = {}
        for kind in kinds:
            cls, service = drivers[kind]
            start = time.perf_counter()
            made[kind] = harness.make_backup(cls, service, source=path)
            seconds["backup_" + kind].append(time.perf_counter() - start)
        for kind in kinds:
            seconds["restore_" + kind].append(
                harness.restore(drivers[kind][0], made[kind], size) / 1e3)
        for kind in kinds:
            drivers[kind][0](harness.ctxt).delete_backup(made[kind])
            made[kind].destroy()
    os.unlink(path)
    median = {k: statistics.median(v) for k, v in seconds.items()}
    return {
        "volume_mib": mib,
        "volume_rounds": rounds,
        "volume_seconds": {k: [round(x, 2) for x in v]
                           for k, v in seconds.items()},
        "volume_backup_stock_s": round(median["backup_stock"], 2),
        "volume_backup_sealed_s": round(median["backup_sealed"], 2),
        "volume_restore_stock_s": round(median["restore_stock"], 2),
        "volume_restore_sealed_s": round(median["restore_sealed"], 2),
        "volume_backup_sealed_vs_stock": round(
            median["backup_sealed"] / median["backup_stock"], 3),
        "volume_restore_sealed_vs_stock": round(
            median["restore_sealed"] / median["restore_stock"], 3),
    }


def audit_vs_plain(harness, sealed_cls, service, getter, backups, workers, rounds):
    """Backups per second of ``sealedmeta cinder audit``'s function against
    a plain loop of the store's own client reading the same metadata
    objects, both with *workers* threads, over *backups* small backups made
    first (eight projects). *getter* makes one thread's ``read(backup)``
    (each thread its own client). Who goes first alternates by round."""
    from cinder import objects
    from sealedmeta.cinder import audit
    from sealedmeta.cinder import drivers

    src = harness.volume_file(harness.volume_id + "-small", os.urandom(64 * 1024))
    start = time.perf_counter()
    made = []
    for n in range(backups):
        backup = harness.make_backup(sealed_cls, service, source=src,
                                     project_id="project-%d" % (n % 8))
        made.append(objects.Backup.get_by_id(harness.ctxt, backup.id))
    made_s = time.perf_counter() - start

    def run_audit():
        rows = list(audit.audit(workers=workers, drivers=drivers.project_drivers()))
        classes = {row.klass for row in rows}
        assert len(rows) == backups and classes == {audit.VALID}, classes

    local = threading.local()

    def read(backup):
        if getattr(local, "read", None) is None:
            local.read = getter()
        local.read(backup)

    def run_plain():
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(read, made):
                pass

    seconds = {"audit": [], "plain": []}
    runs = {"audit": run_audit, "plain": run_plain}
    for n in range(rounds):
        for kind in (("audit", "plain") if n % 2 == 0 else ("plain", "audit")):
            start = time.perf_counter()
            runs[kind]()
            seconds[kind].append(time.perf_counter() - start)
    audit_rate = round(backups / statistics.median(seconds["audit"]), 1)
    plain_rate = round(backups / statistics.median(seconds["plain"]), 1)
    return {
        "audit_backups": backups, "audit_workers": workers, "audit_rounds": rounds,
        "audit_made_s": round(made_s, 1),
        "audit_seconds": {k: [round(x, 2) for x in v] for k, v in seconds.items()},
        "audit_per_s": audit_rate, "plain_get_per_s": plain_rate,
        "audit_vs_plain_get": round(audit_rate / plain_rate, 3),
    }


def main(argv=None):
    parser = common.parser(__doc__)
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--volume-mib", type=int, default=0, metavar="N",
                        help="also back up and restore an N MiB volume")
    parser.add_argument("--volume-rounds", type=int, default=2, metavar="N")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="sealedmeta-cinder-bench-")
    try:
        conf, sealed_cls, stock_cls = setup(workdir)
        from cinder.backup import chunkeddriver
        from sealedmeta.cinder import volume_meta as vm

        data = (uuid.uuid4().bytes * 4 + os.urandom(16)) * (5 * 64 * 1024 // 80 + 1)
        harness = Harness(workdir, data[:5 * 64 * 1024])
        ctxt, volume_id = harness.ctxt, harness.volume_id
        make_backup, restore = harness.make_backup, harness.restore

        sealed_driver = sealed_cls(ctxt)
        sealer = sealed_driver.sealer
        text = sealed_driver.get_metadata(volume_id)
        backup_id = str(uuid.uuid4())
        armour = vm.seal(sealer, text, backup_id, volume_id)   # warms the key cache
        assert vm.open_(sealer, armour, backup_id, volume_id) == text

        it = args.iterations
        seal = timed(lambda: vm.seal(sealer, text, backup_id, volume_id), it)
        opened = timed(lambda: vm.open_(sealer, armour, backup_id, volume_id), it)

        sealed_backup = make_backup(sealed_cls, POSIX["sealed"])
        stock_backup = make_backup(stock_cls, POSIX["stock"])
        stock_read = timed(lambda: chunkeddriver.ChunkedBackupDriver._read_metadata(
            sealed_driver, sealed_backup), it)
        judge = timed(lambda: sealed_driver.judge(sealed_backup), it)

        # Whole operations, stock and sealed interleaved so both see the same
        # database size and page cache.
        whole = max(20, it // 50)
        backup_stock, backup_sealed, restore_stock, restore_sealed = [], [], [], []
        for _ in range(whole):
            backup_stock += timed(lambda: make_backup(stock_cls, POSIX["stock"]), 1, 1e3)
            backup_sealed += timed(lambda: make_backup(sealed_cls, POSIX["sealed"]), 1, 1e3)
            restore_stock.append(restore(stock_cls, stock_backup))
            restore_sealed.append(restore(sealed_cls, sealed_backup))

        figures = {
            "volume_meta_bytes": len(text),
            "armour_bytes": len(armour),
            "iterations": it,
            "seal_us": median_p95(seal),
            "open_us": median_p95(opened),
            "stock_read_metadata_us": median_p95(stock_read),
            "judge_us": median_p95(judge),
            "judge_extra_us": (statistics.median(judge) - statistics.median(stock_read),
                               None),
            "backup_stock_ms": median_p95(backup_stock),
            "backup_sealed_ms": median_p95(backup_sealed),
            "restore_stock_ms": median_p95(restore_stock),
            "restore_sealed_ms": median_p95(restore_sealed),
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        if args.volume_mib:
            for name in ("backup_file_size", "backup_sha_block_size_bytes"):
                conf.clear_override(name)
            figures.update(whole_volume(
                harness, {"stock": (stock_cls, POSIX["stock"]),
                          "sealed": (sealed_cls, POSIX["sealed"])},
                args.volume_mib, args.volume_rounds))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    for name, value in figures.items():
        if isinstance(value, tuple):
            median, p95 = value
            line = "%-24s median %9.1f" % (name, median)
            if p95 is not None:
                line += "   p95 %9.1f" % p95
            print(line)
        else:
            print("%-24s %s" % (name, value))
    common.keep(figures, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
