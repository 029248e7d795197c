"""Bounded reading and decompression of a chunked backup's data objects.

Cinder's restore reads each data object whole and decompresses it whole
(``ChunkedBackupDriver._restore_v1``): both sizes are whatever the object
says. Where a tenant can write the objects (Swift with ``backup_swift_auth
= per_user``, the tenant's own account), a replaced object of gigabytes, or
a few megabytes of zlib that inflate to gigabytes, costs the backup host
that much memory. A sealed driver class bounds both at
:func:`limit`: the driver's own chunk size (``chunk_size_bytes``, what a
backup writes at most per object before compression) times
:data:`SLACK`, or ``[sealedmeta] max_chunk_size`` when set.

:class:`BoundedCodec` stands where Cinder's compressor module stood: the
same ``compress``, and a ``decompress`` that stops at the limit. It knows
Cinder's algorithms (zlib, bz2, zstd).
"""

import bz2
import struct
import zlib

from oslo_config import cfg

from cinder import exception

CONF = cfg.CONF

# The bound over the configured chunk size: room for a chunk size lowered
# since older backups were made, and for incompressible data growing a
# little under compression.
SLACK = 4

ZSTD_MAGIC = 0xFD2FB528


def limit(chunk_size_bytes):
    """The largest data object, and the most one decompresses to, in bytes."""
    configured = CONF.sealedmeta.max_chunk_size
    return configured if configured else SLACK * int(chunk_size_bytes)


def limit_words(max_size):
    """How a refusal names the limit: "the N byte limit (...)"."""
    return ("the %d byte limit ([sealedmeta] max_chunk_size; 0, the default:"
            " %d times the driver's chunk size)" % (max_size, SLACK))


class BoundedCodec:
    """Cinder's compressor for *algorithm*, whose ``decompress`` returns at
    most *max_size* bytes, or raises ``InvalidBackup`` saying why."""

    def __init__(self, algorithm, max_size):
        self.algorithm = algorithm.lower()
        self.max_size = max_size
        if self.algorithm in ("zlib", "gzip"):
            self._module = zlib
        elif self.algorithm in ("bz2", "bzip2"):
            self._module = bz2
        elif self.algorithm == "zstd":
            import zstd
            self._module = zstd
        else:
            raise ValueError("unsupported compression algorithm: %s" % algorithm)

    def compress(self, data):
        return self._module.compress(data)

    def decompress(self, data):
        if self._module is zlib:
            return self._zlib(data)
        if self._module is bz2:
            return self._bz2(data)
        return self._zstd(data)

    def _too_large(self):
        return exception.InvalidBackup(
            reason="a data object decompresses (%s) to more than %s: not"
            " decompressed further" % (self.algorithm, limit_words(self.max_size)))

    def _zlib(self, data):
        inflater = zlib.decompressobj()
        out = inflater.decompress(data, self.max_size + 1)
        if len(out) > self.max_size or inflater.unconsumed_tail:
            raise self._too_large()
        if not inflater.eof:
            # as zlib.decompress
            raise zlib.error("Error -5 while decompressing data: incomplete or"
                             " truncated stream")
        return out

    def _bz2(self, data):
        # Cinder writes one stream per object; bz2.decompress would also
        # take several in a row, so they are taken here too.
        parts, size = [], 0
        while True:
            inflater = bz2.BZ2Decompressor()
            out = inflater.decompress(data, self.max_size + 1 - size)
            size += len(out)
            parts.append(out)
            if size > self.max_size or (not inflater.eof and not inflater.needs_input):
                raise self._too_large()
            if not inflater.eof:
                raise ValueError("Compressed data ended before the end-of-stream"
                                 " marker was reached")
            data = inflater.unused_data
            if not data:
                return b"".join(parts)

    def _zstd(self, data):
        # python-zstd sizes its output from the frame's content size, or
        # grows it without bound when the frame has none: the size is read
        # from the frame header (RFC 8878, 3.1.1.1) and checked first.
        size = zstd_content_size(data)
        if size is None:
            raise exception.InvalidBackup(
                reason="a zstd data object's frame does not state its content"
                " size, which bounds what it decompresses to: not decompressed")
        if size > self.max_size:
            raise self._too_large()
        out = self._module.decompress(data)
        if len(out) > self.max_size:
            raise self._too_large()
        return out


def zstd_content_size(data):
    """The Frame_Content_Size of the zstd frame *data* starts with, or None
    when the frame does not state it (or *data* is no zstd frame)."""
    if len(data) < 5 or struct.unpack_from("<I", data)[0] != ZSTD_MAGIC:
        return None
    descriptor = data[4]
    fcs_flag, single_segment = descriptor >> 6, (descriptor >> 5) & 1
    dict_id_size = (0, 1, 2, 4)[descriptor & 3]
    fcs_size = (1 if single_segment else 0, 2, 4, 8)[fcs_flag]
    if fcs_size == 0:
        return None
    start = 5 + (0 if single_segment else 1) + dict_id_size
    field = data[start:start + fcs_size]
    if len(field) != fcs_size:
        return None
    value = int.from_bytes(field, "little")
    return value + 256 if fcs_size == 2 else value
