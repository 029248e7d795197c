"""The sealed GCS class's bounded reader, over google-api-python-client's
own HTTP layer.

There is no GCS server here, and nothing below pretends to be one: the
answers are canned in the client library's own ``HttpMockSequence``, shaped
as GCS documents its answers to a ranged media GET (206 with
``Content-Range``, or a whole 200). What is checked is ours: the one
request the reader makes (Cinder's downloader, ``Range: bytes=0-<limit>``),
that it asks for nothing more, and what it does with each answer. That a
real GCS honours the range is GCS's documented behaviour, not tested here.
"""

import pytest
from googleapiclient import discovery
from googleapiclient import http as google_http

from sealedmeta.cinder import gcs as sealed_gcs
from sealedmeta.cinder import metadata_object

LIMIT = 64 * 1024
BIG = 32 * 1024 * 1024


class Answers(google_http.HttpMockSequence):
    """The library's canned-answer transport, keeping the requests made."""

    def __init__(self, answers):
        super().__init__(answers)
        self.requests = []

    def request(self, uri, method="GET", body=None, headers=None, *args, **kwargs):
        self.requests.append((method, uri, dict(headers or {})))
        if not self._iterable:
            raise AssertionError("a request beyond the expected ones: %s %s" % (method, uri))
        return super().request(uri, method, body, headers, *args, **kwargs)


def _driver(answers):
    transport = Answers(answers)
    driver = sealed_gcs.SealedGoogleBackupDriver.__new__(
        sealed_gcs.SealedGoogleBackupDriver)
    driver.conn = discovery.build("storage", "v1", http=transport,
                                  static_discovery=True)
    driver.num_retries = 0
    return driver, transport


def _read(answers):
    driver, transport = _driver(answers)
    try:
        return driver.read_object_bounded("bucket", "volume_v/backup_b_metadata",
                                          LIMIT), transport
    finally:
        # Exactly one GET of the object's media, for bytes 0 to the limit.
        [(method, uri, headers)] = transport.requests
        assert method == "GET"
        assert "alt=media" in uri and "volume_v%2Fbackup_b_metadata" in uri
        assert headers.get("range") == "bytes=0-%d" % LIMIT


def test_an_object_within_the_limit_is_read_whole():
    data = b'{"volume_meta": null}'
    got, _ = _read([({"status": "206", "content-range": "bytes 0-%d/%d"
                      % (len(data) - 1, len(data))}, data)])
    assert got == data


def test_an_object_over_the_limit_is_refused_from_its_reported_size():
    with pytest.raises(metadata_object.ObjectTooLarge,
                       match="is %d bytes, over the %d byte limit.*: not read"
                             % (BIG, LIMIT)):
        _read([({"status": "206", "content-range": "bytes 0-%d/%d" % (LIMIT, BIG)},
                b"x" * (LIMIT + 1))])


def test_a_whole_answer_over_the_limit_is_refused():
    # A 200 that ignored the range: refused from its length, never parsed.
    with pytest.raises(metadata_object.ObjectTooLarge,
                       match="is %d bytes, over the %d byte limit" % (BIG, LIMIT)):
        _read([({"status": "200", "content-length": str(BIG)}, b"x" * (LIMIT + 1))])
