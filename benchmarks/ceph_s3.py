"""The fleet audit on radosgw's S3 against a plain boto3 loop.

    .tox/ceph/bin/python benchmarks/ceph_s3.py [--backups N] [--workers N]
        [--rounds N] [--ceph-dir DIR] [--json FILE]

Run it on the ``ceph`` tox env's interpreter (Cinder 29.x and boto3).
Starts a one-host Ceph with ``tools/dev-ceph`` in a temporary directory
(stopped at the end), or uses the running one of ``--ceph-dir``. Cinder
runs without services, as in ``cinder_overhead.py``, with the sealed S3
driver writing to one bucket of radosgw.

``--backups`` (default 400) small sealed backups are made; then each round
reads all of them twice, in turn (who goes first alternates): once with
``sealedmeta cinder audit``'s own function (each backup enumerated from the
database, its metadata object read through the driver and judged as a
restore would) and once with a plain loop of boto3 ``get_object`` calls of
the same objects, each with ``--workers`` threads (each thread its own
client). Printed: backups per second of each (median over the rounds) and
audit/plain. Nothing is asserted.
"""

import json
import os
import shutil
import sys
import tempfile
import uuid
import warnings

import cinder_overhead
import common

warnings.simplefilter("ignore")

SEALED_S3 = "sealedmeta.cinder.s3.SealedS3BackupDriver"


def client(env):
    import boto3
    keys = env["rgw_users"]["cinder"]
    return boto3.client("s3", endpoint_url=env["rgw_url"], region_name="us-east-1",
                        aws_access_key_id=keys["access_key"],
                        aws_secret_access_key=keys["secret_key"])


def configure(conf, env, bucket):
    from cinder.backup.drivers import s3  # noqa: F401 - its options
    keys = env["rgw_users"]["cinder"]
    for name, value in (("backup_driver", SEALED_S3),
                        ("backup_s3_endpoint_url", env["rgw_url"]),
                        ("backup_s3_store_access_key", keys["access_key"]),
                        ("backup_s3_store_secret_key", keys["secret_key"]),
                        ("backup_s3_store_bucket", bucket),
                        ("backup_s3_object_size", 64 * 1024),
                        ("backup_s3_block_size", 4 * 1024),
                        ("backup_s3_enable_progress_timer", False),
                        ("backup_s3_verify_ssl", False)):
        conf.set_override(name, value)
    for name in ("backup_file_size", "backup_sha_block_size_bytes"):
        conf.clear_override(name)


def main(argv=None):
    parser = common.parser(__doc__)
    parser.add_argument("--backups", type=int, default=400, metavar="N")
    parser.add_argument("--workers", type=int, default=8, metavar="N")
    parser.add_argument("--rounds", type=int, default=3, metavar="N")
    parser.add_argument("--ceph-dir", metavar="DIR",
                        help="use the running tools/dev-ceph cluster of DIR")
    args = parser.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="sealedmeta-s3-bench-")
    ceph_dir = args.ceph_dir or os.path.join(workdir, "ceph")
    try:
        if not args.ceph_dir:
            common.dev_tool("dev-ceph", "start", "--dir", ceph_dir)
        with open(os.path.join(ceph_dir, "env.json")) as handle:
            env = json.load(handle)
        bucket = "bench-" + uuid.uuid4().hex[:12]
        client(env).create_bucket(Bucket=bucket)
        conf, _, _ = cinder_overhead.setup(workdir)
        configure(conf, env, bucket)
        from sealedmeta.cinder import s3 as sealed_s3
        harness = cinder_overhead.Harness(workdir, os.urandom(64 * 1024))

        def getter():
            own = client(env)
            return lambda backup: own.get_object(
                Bucket=bucket, Key=backup.service_metadata + "_metadata")["Body"].read()

        figures = cinder_overhead.audit_vs_plain(
            harness, sealed_s3.SealedS3BackupDriver, SEALED_S3, getter,
            args.backups, args.workers, args.rounds)
    finally:
        if not args.ceph_dir:
            common.dev_tool("dev-ceph", "stop", "--dir", ceph_dir)
        shutil.rmtree(workdir, ignore_errors=True)
    return common.report(figures, args.json)


if __name__ == "__main__":
    sys.exit(main())
