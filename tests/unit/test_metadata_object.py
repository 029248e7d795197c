"""sealedmeta.cinder.metadata_object: the one bounded reader of Cinder
metadata objects (no Cinder needed)."""

import errno
import io
import json
import tracemalloc

import pytest

from sealedmeta.cinder import metadata_object as mo

MIB = 1024 * 1024


def test_a_real_shaped_object_reads_back():
    obj = {"backup_id": "b", "volume_id": "v", "version": "1.0.0",
           "volume_meta": "sealedmeta:" + "A" * 3000,
           "objects": [{"volume_v_backup_b-%05d" % i: {
               "compression": "zlib", "length": 52428800, "md5": "0" * 32,
               "offset": i * 52428800}} for i in range(1000)]}
    data = json.dumps(obj, sort_keys=True, indent=2).encode()
    assert mo.loads(data) == obj
    assert mo.loads(data.decode()) == obj


@pytest.mark.parametrize("data,error,match", [
    (b"x" * (MIB + 1), mo.ObjectTooLarge, "over the 1048576 byte limit"),
    (b"[" + b"0," * (MIB // 16) + b"0]", mo.ObjectTooLarge, "over 65536 JSON elements"),
    (b"[" * 33 + b"]" * 33, mo.ObjectError, "nested deeper than 32"),
    (b"[" * 50000 + b"]" * 50000, mo.ObjectError, "nested deeper than 32"),
    (b'{"a": ' * 40 + b"1" + b"}" * 40, mo.ObjectError, "nested deeper than 32"),
    (b'{"a": 1, "a": 2}', mo.ObjectError, "duplicate key"),
    (b"[NaN]", mo.ObjectError, "not valid JSON"),
    (b"\xff{}", mo.ObjectError, "not valid JSON"),
    (b"{", mo.ObjectError, "not valid JSON"),
    (b"1" * 5000, mo.ObjectError, "not valid JSON"),  # int digit limit
])
def test_refused_with_one_error_type(data, error, match):
    with pytest.raises(error, match=match):
        mo.loads(data, MIB)


def test_depth_32_is_accepted():
    assert mo.loads(b"[" * 32 + b"]" * 32, MIB) is not None


def test_read_stops_after_the_limit():
    stream = io.BytesIO(b"{}" + b" " * (4 * MIB))
    with pytest.raises(mo.ObjectTooLarge):
        mo.read(stream, MIB)
    assert stream.tell() == MIB + 1
    assert mo.read(io.BytesIO(b"{}"), MIB) == b"{}"


class ShortReads:
    """A streamed body: each read(n) gives at most *step* bytes, and counts
    what it handed out."""

    def __init__(self, data, step=1000):
        self.data, self.step, self.given = data, step, 0

    def read(self, n):
        chunk = self.data[self.given:self.given + min(n, self.step)]
        self.given += len(chunk)
        return chunk


def test_read_goes_on_after_short_reads_and_stops_after_the_limit():
    assert mo.read(ShortReads(b"{}" * 5000), MIB) == b"{}" * 5000
    body = ShortReads(b" " * (4 * MIB), step=64 * 1024)
    with pytest.raises(mo.ObjectTooLarge, match="is over the 1048576 byte limit"):
        mo.read(body, MIB)
    assert body.given == MIB + 1


def test_a_reported_size_over_the_limit_is_refused_unread():
    body = ShortReads(b" " * (2 * MIB))
    with pytest.raises(mo.ObjectTooLarge,
                       match="is 2097152 bytes, over the 1048576 byte limit.*: not read"):
        mo.read(body, MIB, size=2 * MIB)
    assert body.given == 0
    # A size within the limit that is a lie still stops after the limit.
    with pytest.raises(mo.ObjectTooLarge):
        mo.read(body, MIB, size=10)
    assert body.given == MIB + 1


@pytest.mark.parametrize("content_range,content_length,size", [
    ("bytes 0-65536/9000000", "65537", 9000000),
    ("bytes 0-2/3", "3", 3),
    ("bytes */0", None, 0),
    ("bytes 0-9/*", "10", None),
    (None, "42", 42),
    (None, 42, 42),
    ("", "12", 12),
    (None, None, None),
    (None, "\u00b2", None),       # a digit to str.isdigit, not to int()
    ("bytes 0-1/\u0663", None, None),
])
def test_reported_size(content_range, content_length, size):
    assert mo.reported_size(content_range, content_length) == size


def test_file_size_of_files_only(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 123)
    with open(path, "rb") as handle:
        assert mo.file_size(handle) == 123
    assert mo.file_size(io.BytesIO(b"abc")) is None
    assert mo.file_size(object()) is None


@pytest.mark.parametrize("unit", [b"[],", b"{},", b'"",', b"1,", b'"xxxxxx",',
                                  b'"xxxxxxxxxxxxxx",', b'{"":0},',
                                  b'"\\u1234",'])
def test_memory_is_bounded_for_any_shape(unit):
    """Largest inputs the limits let through, for the shapes that cost the
    most per byte: parsing stays under 12 times the size limit."""
    per = sum(unit.count(c) for c in (b"[", b"{", b",", b":"))
    count = min((MIB - 3) // len(unit), (MIB // mo.BYTES_PER_ELEMENT) // per - 1)
    data = b"[" + unit * count + b"0]"
    tracemalloc.start()
    try:
        mo.loads(data, MIB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 12 * MIB, (unit, peak)


class SwiftLike(Exception):
    """swiftclient.exceptions.ClientException's shape."""

    def __init__(self, status):
        super().__init__("Object GET failed")
        self.http_status = status


class BotoLike(Exception):
    """botocore.exceptions.ClientError's shape."""

    def __init__(self, code):
        super().__init__("An error occurred (%s)" % code)
        self.response = {"Error": {"Code": code}}


class CinderLike(Exception):
    """cinder.exception.CinderException(reason=err)'s shape."""

    def __init__(self, **kwargs):
        super().__init__("wrapped")
        self.kwargs = kwargs


def _raised_from(inner, outer):
    try:
        try:
            raise inner
        except Exception:
            raise outer
    except Exception as exc:
        return exc


@pytest.mark.parametrize("exc,expected", [
    (FileNotFoundError(errno.ENOENT, "No such file"), True),
    (PermissionError(errno.EACCES, "denied"), False),
    (SwiftLike(404), True),
    (SwiftLike(503), False),
    (BotoLike("NoSuchKey"), True),
    (BotoLike("AccessDenied"), False),
    (CinderLike(reason=BotoLike("NoSuchKey")), True),
    (_raised_from(BotoLike("NoSuchKey"), RuntimeError("S3 client error")), True),
    (_raised_from(BotoLike("SlowDown"), RuntimeError("S3 client error")), False),
    (ValueError("x"), False),
])
def test_missing_object_errors_of_every_storage_client(exc, expected):
    assert mo.missing(exc) is expected
