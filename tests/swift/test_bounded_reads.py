"""Metadata objects a tenant makes huge in its own Swift account are refused
from the size Swift reports, before their body is read: at restore, in the
fleet audit (and ``key destroy --scan-cinder``, which reads through it), at
export of a backup made before the switch, and for the archived versions
``cinder reseal`` judges. The cap is ``[sealedmeta]
max_metadata_object_size``.

What Swift sent is read from its own log (the object server's line for the
GET, with the bytes it sent); what the process held, from tracemalloc."""

import pytest
from oslo_config import cfg

from cinder import exception

from tests import bounded_reads
from tests.bounded_reads import (
    ServerLog, one_bounded_get, oversized, refused, swift_gets)
from tests.swift import helpers
from tests.swift import test_legacy_and_reseal as legacy_reseal

CONF = cfg.CONF
LIMIT = 64 * 1024                 # the smallest max_metadata_object_size
BIG = 32 * 1024 * 1024


@pytest.fixture
def mode():
    return "per_user"


@pytest.fixture
def limit():
    CONF.set_override("max_metadata_object_size", LIMIT, group="sealedmeta")
    yield LIMIT
    CONF.clear_override("max_metadata_object_size", group="sealedmeta")


@pytest.fixture
def stock_backup(cloud):
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())
    cloud.write_raw_object(backup, oversized(cloud.read_object(backup), BIG))
    return backup


@pytest.mark.parametrize("read", bounded_reads.READERS)
def test_an_oversized_metadata_object_is_refused_before_its_body(
        cloud, stores, stock_backup, limit, read):
    log = ServerLog(stores["ks"]["logs"]["swift"])
    error, peak = refused(lambda: read(cloud, stock_backup), exception.InvalidBackup,
                          "over the %d byte limit" % LIMIT)
    container, name = cloud.location(stock_backup)
    # Swift sent at most the limit and one byte, never the object.
    one_bounded_get(swift_gets(log, container, name), LIMIT)
    assert peak < 4 * 1024 * 1024, peak
    assert ("is %d bytes, over the %d byte limit ([sealedmeta]"
            " max_metadata_object_size): not read" % (BIG, LIMIT)) in str(error)


def test_reseal_leaves_an_oversized_archived_version_unread(
        cloud, capsys, tmp_path, keys, stores, limit):
    archive = cloud.container + "-archive"
    cloud.conn.put_container(archive)
    cloud.conn.put_container(cloud.container, headers={"X-History-Location": archive})
    src = cloud.volume(glance=helpers.GLANCE)
    backup = cloud.backup(src, cls=helpers.stock_class())
    container, name = cloud.location(backup)
    # A version named as Swift names them, made huge by the tenant.
    version = "%03x%s/%s" % (len(name), name, "1700000000.00000")
    cloud.conn.put_object(archive, version, oversized(cloud.read_object(backup), BIG))
    conf = legacy_reseal.write_cinder_conf(tmp_path, keys, stores)
    with open(conf, "a") as handle:          # its last section is [sealedmeta]
        handle.write("max_metadata_object_size = %d\n" % LIMIT)
    log = ServerLog(stores["ks"]["logs"]["swift"])

    code, rows, err = legacy_reseal.reseal(capsys, conf, "--backup-id", backup.id)

    row = rows[backup.id]
    assert code == 1, err
    assert row["result"] == "resealed-plaintext-left", row
    assert ("%s/%s (the metadata object is %d bytes, over the %d byte limit"
            % (archive, version, BIG, LIMIT)) in row["reason"], row
    one_bounded_get(swift_gets(log, archive, version), LIMIT)
    assert int(cloud.conn.head_object(archive, version)["content-length"]) == BIG
