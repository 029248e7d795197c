"""What a tenant writes into the data objects of its own backups (Swift,
``per_user``: the tenant's account) costs the backup host at most the
chunk limit (``[sealedmeta] max_chunk_size``; by default four times the
driver's chunk size) in memory: a data object made huge is refused from
the size Swift reports, before its body is read; one that inflates to
more than the limit is refused once the limit is reached; a parent's
digest list made huge is refused at the next incremental backup; objects
added under a backup's prefix are listed only up to what a metadata object
can list.

What Swift sent is read from its own log; what the process held, from
tracemalloc. Before the bound, each of these was read or inflated whole."""

import json
import zlib

import pytest
from oslo_config import cfg

from cinder import exception
from cinder import objects
from sealedmeta.cinder import chunks
from sealedmeta.cinder import swift as sealed_swift

from tests import bounded_reads
from tests.bounded_reads import ServerLog, one_bounded_get, refused, swift_gets
from tests.cinder.helpers import CHUNK
from tests.swift import helpers

BIG = 32 * 1024 * 1024
LIMIT = chunks.SLACK * CHUNK
PEAK = 4 * 1024 * 1024


@pytest.fixture
def mode():
    return "per_user"


def _data_objects(cloud, backup):
    backup = objects.Backup.get_by_id(cloud.ctxt, backup.id)
    return backup.container, [n for n in cloud.object_names(backup)
                              if not n.endswith(("_metadata", "_sha256file"))]


def test_a_data_object_made_huge_is_refused_before_its_body(cloud, stores):
    backup = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    container, names = _data_objects(cloud, backup)
    first = names[0]
    cloud.conn.put_object(container, first, contents=b"\0" * BIG)
    log = ServerLog(stores["ks"]["logs"]["swift"])
    error, peak = refused(lambda: bounded_reads.restore(cloud, backup),
                          exception.InvalidBackup, "over the %d byte limit" % LIMIT)
    one_bounded_get(swift_gets(log, container, first), LIMIT)
    assert peak < PEAK, peak
    assert ("data object %s of container %s is %d bytes, over the %d byte limit"
            " ([sealedmeta] max_chunk_size" % (first, container, BIG, LIMIT)) in str(error)


def test_a_data_object_that_inflates_past_the_limit_is_refused(cloud):
    backup = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    container, names = _data_objects(cloud, backup)
    bomb = zlib.compress(b"\0" * BIG, 9)          # some 32 KiB
    assert len(bomb) < LIMIT
    cloud.conn.put_object(container, names[0], contents=bomb)
    error, peak = refused(lambda: bounded_reads.restore(cloud, backup),
                          exception.InvalidBackup, "decompresses")
    assert peak < PEAK, peak
    assert "decompresses (zlib) to more than the %d byte limit" % LIMIT in str(error)


def test_the_limit_is_the_configured_one(cloud):
    """``max_chunk_size`` set: that many bytes, whatever the chunk size."""
    backup = cloud.backup(cloud.volume(glance=helpers.GLANCE))
    container, names = _data_objects(cloud, backup)
    cloud.conn.put_object(container, names[0], contents=b"\0" * (2 * LIMIT))
    cfg.CONF.set_override("max_chunk_size", 3 * LIMIT, group="sealedmeta")
    try:
        # Read whole (it is under 3 * LIMIT), then refused as zlib would.
        with pytest.raises(zlib.error):
            bounded_reads.restore(cloud, backup)
        cfg.CONF.set_override("max_chunk_size", LIMIT // 2, group="sealedmeta")
        with pytest.raises(exception.InvalidBackup, match="is %d bytes, over the %d byte"
                           " limit" % (2 * LIMIT, LIMIT // 2)):
            bounded_reads.restore(cloud, backup)
    finally:
        cfg.CONF.clear_override("max_chunk_size", group="sealedmeta")


def test_a_digest_list_made_huge_is_refused_at_the_next_incremental(cloud, stores):
    src = cloud.volume(glance=helpers.GLANCE)
    full = cloud.backup(src)
    full = objects.Backup.get_by_id(cloud.ctxt, full.id)
    name = full.service_metadata + "_sha256file"
    document = json.loads(cloud.conn.get_object(full.container, name)[1])
    blocks = -(-full.size * 2 ** 30 // helpers.SHA_BLOCK)
    limit = sealed_swift.DIGEST_ENTRY * blocks + sealed_swift.DIGEST_REST
    document["sha256s"] += ["0" * 64] * ((limit // 68) + 1 - len(document["sha256s"]))
    huge = json.dumps(document).encode()
    assert len(huge) > limit
    cloud.conn.put_object(full.container, name, contents=huge)
    log = ServerLog(stores["ks"]["logs"]["swift"])
    cloud.write(src, 0, b"changed")
    error, peak = refused(lambda: cloud.backup(src, parent=full),
                                      exception.InvalidBackup, "digest list")
    one_bounded_get(swift_gets(log, full.container, name), limit)
    assert peak < PEAK, peak
    assert ("the digest list %s of backup %s is %d bytes, over the %d byte limit of a"
            " %d GiB volume's" % (name, full.id, len(huge), limit, full.size)) \
        in str(error)


def test_a_backup_prefix_flooded_with_objects_is_not_listed_whole(cloud, stores):
    """The tenant adds objects under its backup's prefix: the listing a
    restore and a delete make stops past the most objects a metadata object
    within max_metadata_object_size can list (64 KiB: 1,026), so a tenant's
    millions are never held; the restore is refused saying so."""
    backup = objects.Backup.get_by_id(
        cloud.ctxt, cloud.backup(cloud.volume(glance=helpers.GLANCE)).id)
    cfg.CONF.set_override("max_metadata_object_size", 64 * 1024, group="sealedmeta")
    try:
        most = 64 * 1024 // sealed_swift.MIN_LISTED_ENTRY + 2
        for i in range(most + 10):
            cloud.conn.put_object(backup.container, "%s-%05d" % (backup.service_metadata, i),
                                  contents=b"")
        with pytest.raises(exception.InvalidBackup, match="holds more than %d objects under %s"
                           % (most, backup.service_metadata)):
            bounded_reads.restore(cloud, backup)
        with pytest.raises(exception.InvalidBackup, match="more than a backup's metadata"
                           " object can list"):
            cloud.driver().get_container_entries(backup.container, backup.service_metadata)
    finally:
        cfg.CONF.clear_override("max_metadata_object_size", group="sealedmeta")
    # Within the bound (the default 8 MiB: 131,074 objects; set here, the
    # conftest clears it) the same listing is whole, paged.
    cfg.CONF.set_override("max_metadata_object_size", 8 * 1024 * 1024, group="sealedmeta")
    names = cloud.driver().get_container_entries(backup.container, backup.service_metadata)
    assert names == cloud.object_names(backup) and len(names) > most + 10
