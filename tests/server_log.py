"""What a real server says it sent: its access log lines, read from the
moment a test starts watching (Swift's object server, radosgw's beast
frontend). A server writes a request's line when it is done with it, so the
lines are waited for; the wait is a hang guard, never part of a verdict."""

import re
import time

WAIT = 120     # seconds: the line of a request already answered is due


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
