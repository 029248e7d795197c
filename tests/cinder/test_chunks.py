"""The sealed Swift class's codec (sealedmeta.cinder.chunks.BoundedCodec):
what Cinder's compressor modules do for data within the limit, and a
refusal, never more output than the limit, for data that inflates past it
-- with the real zlib, bz2 and python-zstd."""

import bz2
import tracemalloc
import zlib

import pytest
import zstd

from cinder import exception
from sealedmeta.cinder import chunks

LIMIT = 256 * 1024
BIG = 64 * 1024 * 1024
ALGORITHMS = ("zlib", "bz2", "zstd")


def _peak(call):
    tracemalloc.start()
    try:
        call()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_data_within_the_limit_round_trips(algorithm):
    codec = chunks.BoundedCodec(algorithm, LIMIT)
    data = bytes(range(256)) * (LIMIT // 256)       # exactly the limit
    packed = codec.compress(data)
    assert codec.decompress(packed) == data
    assert codec.decompress(codec.compress(b"")) == b""


@pytest.mark.parametrize("algorithm,bomb", [
    ("zlib", lambda: zlib.compress(b"\0" * BIG, 9)),
    ("bz2", lambda: bz2.compress(b"\0" * BIG, 9)),
    ("zstd", lambda: zstd.compress(b"\0" * BIG)),
])
def test_data_that_inflates_past_the_limit_is_refused(algorithm, bomb):
    packed = bomb()
    assert len(packed) < LIMIT
    codec = chunks.BoundedCodec(algorithm, LIMIT)

    def inflate():
        with pytest.raises(exception.InvalidBackup, match="decompresses \\(%s\\) to more"
                           " than the %d byte limit" % (algorithm, LIMIT)):
            codec.decompress(packed)
    assert _peak(inflate) < 4 * LIMIT


def test_one_byte_over_the_limit_is_refused():
    codec = chunks.BoundedCodec("zlib", LIMIT)
    with pytest.raises(exception.InvalidBackup):
        codec.decompress(zlib.compress(b"x" * (LIMIT + 1)))


def test_a_zstd_frame_without_its_content_size_is_refused():
    # A frame header with no Frame_Content_Size field (descriptor 0x00,
    # window descriptor), as a streaming compressor writes it: what it
    # inflates to is unknown until inflated.
    packed = zstd.compress(b"data")
    size = chunks.zstd_content_size(packed)
    assert size == 4
    streamed = bytes.fromhex("28b52ffd") + bytes([0x00, 0x48]) + packed[6:]
    assert chunks.zstd_content_size(streamed) is None
    with pytest.raises(exception.InvalidBackup, match="does not state its content size"):
        chunks.BoundedCodec("zstd", LIMIT).decompress(streamed)


@pytest.mark.parametrize("value,width,flag", [(200, 1, 0), (300, 2, 1), (70000, 4, 2),
                                              (2 ** 33, 8, 3)])
def test_zstd_content_size_fields(value, width, flag):
    # single segment (bit 5) with each field width; 2 bytes hold value - 256
    stored = value - 256 if width == 2 else value
    header = (bytes.fromhex("28b52ffd") + bytes([(flag << 6) | 0x20])
              + stored.to_bytes(width, "little"))
    assert chunks.zstd_content_size(header) == value
    assert chunks.zstd_content_size(header[:-1]) is None   # cut short


def test_truncated_data_fails_as_the_library_fails():
    codec = chunks.BoundedCodec("zlib", LIMIT)
    packed = zlib.compress(b"y" * 1000)
    with pytest.raises(zlib.error):
        codec.decompress(packed[:-4])
    with pytest.raises(zlib.error):
        codec.decompress(b"not zlib")
    with pytest.raises(ValueError):
        chunks.BoundedCodec("bz2", LIMIT).decompress(bz2.compress(b"z" * 1000)[:-10])


def test_bz2_streams_in_a_row_are_read_as_bz2_reads_them():
    codec = chunks.BoundedCodec("bz2", LIMIT)
    packed = bz2.compress(b"a" * 1000) + bz2.compress(b"b" * 1000)
    assert codec.decompress(packed) == bz2.decompress(packed)


def test_an_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="unsupported compression algorithm"):
        chunks.BoundedCodec("lz4", LIMIT)
