"""Helpers of the tests that show a metadata object over the size limit is
refused before its body is read, against real stores: an oversized object,
what the process held meanwhile (tracemalloc), and what the server says it
sent -- its access log lines, read from the moment a test starts watching
(Swift's object server, radosgw's beast frontend). A server writes a
request's line when it is done with it, so the lines are waited for; the
wait is a hang guard, never part of a verdict."""

import json
import re
import time
import tracemalloc

import pytest

from cinder import exception
from cinder import objects
from sealedmeta.cinder import audit as cinder_audit

WAIT = 120     # seconds: the line of a request already answered is due


def oversized(obj, size):
    """*obj* (a metadata object) padded to *size* bytes of valid JSON: a
    reader without a bound reads and parses it whole."""
    obj = dict(obj, padding="")
    obj["padding"] = "x" * (size - len(json.dumps(obj)))
    return json.dumps(obj).encode()


def refused(call, error, match):
    """``(exception, peak traced bytes)`` of *call*, which must raise
    *error* matching *match*."""
    tracemalloc.start()
    try:
        with pytest.raises(error, match=match) as raised:
            call()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return raised.value, peak


# The readers of a backup's metadata object, each on a tests.cinder Cloud:
# each raises InvalidBackup when the object is refused.

def restore(cloud, backup):
    target = cloud.new_target()
    before = cloud.data(target)
    try:
        cloud.restore(backup, target)
    finally:
        assert cloud.data(target) == before
        assert cloud.glance(target) == {}


def audit(cloud, backup):
    """The fleet audit's judgement (``key destroy --scan-cinder`` reads
    through the same step)."""
    row = cinder_audit.judge_backup(cloud.driver(), objects.Backup.get_by_id(
        cloud.ctxt, backup.id))
    assert row.klass == cinder_audit.INVALID
    raise exception.InvalidBackup(reason=row.reason)


def export(cloud, backup):
    cloud.driver().export_record(objects.Backup.get_by_id(cloud.ctxt, backup.id))


READERS = (restore, audit, export)


class ServerLog:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as handle:
            self.start = handle.seek(0, 2)

    def requests(self, pattern):
        """The groups of every line matching *pattern* written since this
        was made: waits for the first one."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + WAIT
        while True:
            with open(self.path, "rb") as handle:
                handle.seek(self.start)
                found = regex.findall(handle.read().decode("utf-8", "replace"))
            if found:
                return found
            assert time.monotonic() < deadline, (
                "%s has no line matching %s" % (self.path, pattern))
            time.sleep(0.2)


def one_bounded_get(gets, limit):
    """Asserts *gets* (``(status, bytes sent)`` of each GET a server logged)
    is one ranged answer that sent at most *limit* and one byte. The reader
    closes the stream once the size tells it to refuse, so the server may
    log fewer bytes than it would have sent, even none; how many depends on
    timing and is never part of the verdict."""
    assert len(gets) == 1, gets
    status, sent = gets[0]
    assert status == 206, gets
    assert 0 <= sent <= limit + 1, gets


def swift_gets(log, container, name):
    """(status, bytes sent) of each GET of *container*/*name* Swift's object
    server logged."""
    return [(int(status), 0 if size == "-" else int(size))
            for status, size in log.requests(
                r'object-server: .*"GET /[^/ ]+/[0-9]+/AUTH_[^/ ]+/%s/%s" '
                r"([0-9]{3}) ([0-9]+|-)" % (re.escape(container), re.escape(name)))]


def rgw_gets(log, bucket, key):
    """(status, bytes sent) of each GET of *bucket*/*key* radosgw logged."""
    return [(int(status), int(size)) for status, size in log.requests(
        r'beast: .*"GET /%s/%s HTTP/1\.1" ([0-9]{3}) ([0-9]+)'
        % (re.escape(bucket), re.escape(key)))]
