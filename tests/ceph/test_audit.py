"""``sealedmeta cinder audit`` over backups in a radosgw bucket, through
Cinder's real S3 driver and the real command line; the bucket's owner edits
and deletes objects with boto3, the store's own API. (The Ceph RBD driver's
audit is tested in test_rbd.py, with its fixtures.)"""

import copy

import pytest
from oslo_config import cfg

from sealedmeta.cinder import audit

from tests.ceph.test_s3 import cinder_conf  # noqa: F401 - fixture
from tests.ceph.test_s3 import s3  # noqa: F401 - fixture
from tests.cinder import test_audit as cinder_audit

from cinder.backup.drivers import s3 as stock_s3

CONF = cfg.CONF


@pytest.fixture
def fleet(s3):  # noqa: F811
    # One bucket holds every project's backups: the second project differs
    # in the database only.
    other = copy.copy(s3)
    other.project_id = "second-project"
    return cinder_audit.mixed_fleet(s3, other, stock_s3.S3BackupDriver)


def test_each_backup_in_the_bucket_lands_in_its_class(fleet, capsys,
                                                       cinder_conf):  # noqa: F811
    code, rows, err = cinder_audit.audit_json(capsys, cinder_conf, "--workers", "3")
    assert code == 1, err
    cinder_audit.check_mixed_fleet(fleet, rows, err, "second-project")


def test_a_clean_project_exits_zero(fleet, capsys, cinder_conf):  # noqa: F811
    code, rows, err = cinder_audit.audit_json(capsys, cinder_conf, "--project",
                                              "second-project")
    assert code == 0, err
    assert {row["class"] for row in rows.values()} == {audit.VALID}
    assert len(rows) == 2


def test_a_bucket_the_service_cannot_read_is_unreadable_not_missing(
        fleet, capsys, cinder_conf):  # noqa: F811
    """Wrong keys (as a wrong cinder.conf gives; set as the test's override,
    which wins over the file in this process): every backup is reported
    unreadable (the store refused), never missing or invalid; exit 1."""
    CONF.set_override("backup_s3_store_secret_key", "not-the-secret")
    code, rows, err = cinder_audit.audit_json(capsys, cinder_conf)
    assert code == 1, err
    assert {row["class"] for row in rows.values()} == {audit.UNREADABLE}
    assert len(rows) == 7

