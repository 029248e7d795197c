"""Sealed vs stock on a real Swift: a whole volume, and the fleet audit.

    .tox/swift/bin/python benchmarks/swift.py [--volume-mib N] [--rounds N]
        [--backups N] [--workers N] [--swift-dir DIR] [--json FILE]

Run it on the ``swift`` tox env's interpreter (Cinder 29.x and
python-swiftclient). Starts a one-node Swift with tempauth
(``tools/dev-swift``) in a temporary directory, stopped at the end, or uses
the running one of ``--swift-dir``. Cinder runs without services, as in
``cinder_overhead.py``; backups go to one container with
``backup_swift_auth = single_user``.

``volume_*`` (``--volume-mib``, default 1024; 0 skips it)
    a whole backup and a whole restore of an N MiB volume (half random, half
    zeros per MiB) with Cinder's default Swift object size, block size and
    compression, the stock ``SwiftBackupDriver`` and
    ``SealedSwiftBackupDriver`` interleaved round by round (who goes first
    alternates): seconds per operation (median) and sealed/stock ratios.
``audit_*`` (``--backups``, default 400; 0 skips it)
    that many small sealed backups are made, then each round reads all of
    them twice, in turn (who goes first alternates): once with
    ``sealedmeta cinder audit``'s own function (every backup enumerated from
    the database, its metadata object read through the driver and judged as
    a restore would) and once with a plain loop of python-swiftclient GETs
    of the same metadata objects, each with ``--workers`` threads (each
    thread its own connection). Printed: backups per second of each
    (median over the rounds) and audit/plain.

Nothing is asserted: these are figures for the performance page.
"""

import json
import os
import shutil
import sys
import tempfile
import warnings

import cinder_overhead
import common

warnings.simplefilter("ignore")

SWIFT = {"stock": "cinder.backup.drivers.swift.SwiftBackupDriver",
         "sealed": "sealedmeta.cinder.swift.SealedSwiftBackupDriver"}
CONTAINER = "bench-backups"


def configure(conf, env):
    from cinder.backup.drivers import swift  # noqa: F401 - its options
    user = env["tempauth"]["tester"]
    for name, value in (("backup_driver", SWIFT["sealed"]),
                        ("backup_swift_auth", "single_user"),
                        ("backup_swift_auth_url", env["auth_url"]),
                        ("backup_swift_auth_version", "1"),
                        ("backup_swift_user", user["user"]),
                        ("backup_swift_key", user["key"]),
                        ("backup_swift_container", CONTAINER),
                        ("backup_swift_enable_progress_timer", False)):
        conf.set_override(name, value)
    for name in ("backup_file_size", "backup_sha_block_size_bytes"):
        conf.clear_override(name)


def connection(env):
    from swiftclient import client
    user = env["tempauth"]["tester"]
    return client.Connection(authurl=env["auth_url"], user=user["user"],
                             key=user["key"], auth_version="1", retries=0)


def audit_rounds(conf, env, harness, backups, workers, rounds):
    """The audit's rate against plain swiftclient GETs (see the docstring)."""
    from sealedmeta.cinder import swift as sealed_swift

    # Small backups: one object of data each, besides the metadata.
    conf.set_override("backup_swift_object_size", 64 * 1024)
    conf.set_override("backup_swift_block_size", 4 * 1024)

    def getter():
        conn = connection(env)
        return lambda backup: conn.get_object(
            backup.container, backup.service_metadata + "_metadata")

    try:
        return cinder_overhead.audit_vs_plain(
            harness, sealed_swift.SealedSwiftBackupDriver, SWIFT["sealed"], getter,
            backups, workers, rounds)
    finally:
        for name in ("backup_swift_object_size", "backup_swift_block_size"):
            conf.clear_override(name)


def main(argv=None):
    parser = common.parser(__doc__)
    parser.add_argument("--volume-mib", type=int, default=1024, metavar="N")
    parser.add_argument("--rounds", type=int, default=3, metavar="N")
    parser.add_argument("--backups", type=int, default=400, metavar="N")
    parser.add_argument("--workers", type=int, default=8, metavar="N")
    parser.add_argument("--swift-dir", metavar="DIR",
                        help="use the running tools/dev-swift Swift of DIR")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="sealedmeta-swift-bench-")
    swift_dir = args.swift_dir or os.path.join(workdir, "swift")
    figures = {}
    try:
        if not args.swift_dir:
            common.dev_tool("dev-swift", "start", "--dir", swift_dir)
        with open(os.path.join(swift_dir, "env.json")) as handle:
            env = json.load(handle)
        conf, _, _ = cinder_overhead.setup(workdir)
        configure(conf, env)
        from cinder.backup.drivers import swift as stock_swift
        from sealedmeta.cinder import swift as sealed_swift
        harness = cinder_overhead.Harness(workdir, os.urandom(64 * 1024))
        if args.volume_mib:
            figures.update(cinder_overhead.whole_volume(
                harness, {"stock": (stock_swift.SwiftBackupDriver, SWIFT["stock"]),
                          "sealed": (sealed_swift.SealedSwiftBackupDriver,
                                     SWIFT["sealed"])},
                args.volume_mib, args.rounds))
        if args.backups:
            figures.update(audit_rounds(conf, env, harness, args.backups,
                                        args.workers, args.rounds))
    finally:
        if not args.swift_dir:
            common.dev_tool("dev-swift", "stop", "--dir", swift_dir, "--purge")
        shutil.rmtree(workdir, ignore_errors=True)
    return common.report(figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
