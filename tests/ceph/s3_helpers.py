"""Backups through Cinder's real S3 drivers into radosgw, and the tenant's
own view of the bucket (boto3 with the bucket owner's keys)."""

import json
import uuid

import boto3
from botocore import exceptions as boto_exc
from oslo_config import cfg

from cinder.backup.drivers import s3 as stock_s3
from cinder import objects

from tests.cinder import helpers

CONF = cfg.CONF

SEALED_S3 = "sealedmeta.cinder.s3.SealedS3BackupDriver"
STOCK_S3 = "cinder.backup.drivers.s3.S3BackupDriver"
S3_OPTIONS = ("backup_s3_endpoint_url", "backup_s3_store_access_key",
              "backup_s3_store_secret_key", "backup_s3_store_bucket",
              "backup_s3_object_size", "backup_s3_block_size",
              "backup_s3_enable_progress_timer", "backup_s3_verify_ssl")
ClientError = boto_exc.ClientError


def sealed_class():
    from sealedmeta.cinder import s3
    return s3.SealedS3BackupDriver


def client(ceph, user):
    env = ceph.env
    keys = env["rgw_users"][user]
    return boto3.client("s3", endpoint_url=env["rgw_url"], region_name="us-east-1",
                        aws_access_key_id=keys["access_key"],
                        aws_secret_access_key=keys["secret_key"])


def s3_settings(ceph, bucket):
    keys = ceph.env["rgw_users"]["cinder"]
    return {
        "backup_s3_endpoint_url": ceph.env["rgw_url"],
        "backup_s3_store_access_key": keys["access_key"],
        "backup_s3_store_secret_key": keys["secret_key"],
        "backup_s3_store_bucket": bucket,
        # Small objects: a 320 KiB volume makes five chunk objects.
        "backup_s3_object_size": helpers.CHUNK,
        "backup_s3_block_size": helpers.SHA_BLOCK,
        "backup_s3_enable_progress_timer": False,
        "backup_s3_verify_ssl": False,
    }


class S3Cloud(helpers.Cloud):
    """helpers.Cloud whose backups go to one radosgw bucket."""

    def __init__(self, ctxt, voldir, ceph):
        super().__init__(ctxt, voldir)
        self.ceph = ceph
        self.bucket = "backups-" + uuid.uuid4().hex[:12]
        self.tenant = client(ceph, "cinder")      # the bucket owner's own API
        self.tenant.create_bucket(Bucket=self.bucket)

    def configure(self):
        for name, value in s3_settings(self.ceph, self.bucket).items():
            CONF.set_override(name, value)
        CONF.set_override("backup_driver", SEALED_S3)

    @staticmethod
    def unconfigure():
        for name in S3_OPTIONS + ("backup_driver",):
            CONF.clear_override(name)

    def driver(self, cls=None):
        return (cls or sealed_class())(self.ctxt)

    def backup(self, volume_id, parent=None, cls=None, service=None):
        cls = cls or sealed_class()
        if service is None:
            service = STOCK_S3 if cls is stock_s3.S3BackupDriver else SEALED_S3
        return super().backup(volume_id, parent=parent, cls=cls, service=service)

    # -- the objects the tenant can edit -----------------------------------

    def metadata_key(self, backup):
        backup = objects.Backup.get_by_id(self.ctxt, backup.id)
        return backup.service_metadata + "_metadata"

    def raw_object(self, backup):
        return self.tenant.get_object(Bucket=self.bucket,
                                      Key=self.metadata_key(backup))["Body"].read()

    def read_object(self, backup):
        return json.loads(self.raw_object(backup))

    def write_raw_object(self, backup, data):
        self.tenant.put_object(Bucket=self.bucket, Key=self.metadata_key(backup),
                               Body=data)

    def delete_object(self, backup):
        self.tenant.delete_object(Bucket=self.bucket, Key=self.metadata_key(backup))

    def write_object(self, backup, obj):
        self.write_raw_object(backup, json.dumps(obj, sort_keys=True, indent=2).encode())

    def object_names(self, backup=None):
        prefix = ""
        if backup is not None:
            prefix = objects.Backup.get_by_id(self.ctxt, backup.id).service_metadata
        names = []
        for page in self.tenant.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix):
            names.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(names)

    def all_stored_bytes(self):
        """Every version of every object of the bucket, as (key, bytes)."""
        found = []
        for page in self.tenant.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket):
            for version in page.get("Versions", []):
                body = self.tenant.get_object(
                    Bucket=self.bucket, Key=version["Key"],
                    VersionId=version["VersionId"])["Body"].read()
                found.append((version["Key"], body))
        return found
