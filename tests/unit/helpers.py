"""Shared helpers of the unit tests (no fixtures here: see conftest.py)."""

import collections
import math
import os
import resource
import signal
import stat
import tempfile
import time
import types

from sealedmeta import atomic
from sealedmeta import crypto
from sealedmeta import envelope
from sealedmeta import suites

MSGPACK_INT_MIN = -(2**63)
MSGPACK_INT_MAX = 2**64 - 1


class FakeClock:
    """An injectable monotonic clock the test moves by hand."""

    def __init__(self, start=1000.0):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class CountingStore:
    """Proxy over a real key store that counts every call made through it."""

    def __init__(self, inner):
        self._inner = inner
        self.calls = collections.Counter()

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return attr(*args, **kwargs)
        return counted

    @property
    def total(self):
        return sum(self.calls.values())

    def reset(self):
        self.calls.clear()


def assert_same(got, want, path="$"):
    """Deep equality that also requires identical types (True is not 1) and
    treats NaN as equal to NaN and -0.0 as different from 0.0."""
    assert type(got) is type(want), "%s: %r is %s, expected %s" % (
        path, got, type(got).__name__, type(want).__name__)
    if type(want) is dict:
        assert sorted(got) == sorted(want), path
        for key in want:
            assert_same(got[key], want[key], "%s.%s" % (path, key))
    elif type(want) is list:
        assert len(got) == len(want), path
        for i, (g, w) in enumerate(zip(got, want)):
            assert_same(g, w, "%s[%d]" % (path, i))
    elif type(want) is float:
        if math.isnan(want):
            assert math.isnan(got), path
        else:
            assert got == want, path
            assert math.copysign(1.0, got) == math.copysign(1.0, want), path
    else:
        assert got == want, path


def header_end(raw):
    """Offset where the ciphertext starts (read from the length field)."""
    return 8 + int.from_bytes(raw[6:8], "big")


def split(raw):
    """(prefix incl. header, ciphertext, mac) of an envelope, by the layout."""
    end = header_end(raw)
    return raw[:end], raw[end:-32], raw[-32:]


def with_header(raw, header_bytes, fmt=1, length=None):
    """The envelope *raw* with its header bytes replaced (body kept)."""
    _, ciphertext, mac = split(raw)
    if length is None:
        length = len(header_bytes)
    return (envelope.MAGIC + bytes((fmt,)) + length.to_bytes(2, "big")
            + header_bytes + ciphertext + mac)


def header_fields(raw):
    """The header of *raw* as the list that is msgpack-encoded."""
    h = envelope.parse(raw).header
    return [h.format_version, h.suite, h.keyring, h.key_version, h.key_id,
            dict(h.context), h.created, h.salt, h.nonce]


def forge(raw, **changes):
    """*raw* with header fields changed, canonically re-encoded, body kept."""
    import dataclasses
    h = envelope.parse(raw).header
    if "context" in changes:
        changes["context"] = types.MappingProxyType(dict(changes["context"]))
    h = dataclasses.replace(h, **changes)
    return with_header(raw, envelope.encode_header(h))


def seal_raw(key, keyring, version, payload, context=None, created=1,
             salt=None, nonce=None, suite=suites.PLAIN.id):
    """An envelope with an arbitrary *payload* (bytes), genuinely MACed with
    *key*: lets the tests reach the payload decoder past authentication."""
    salt = os.urandom(envelope.SALT_SIZE) if salt is None else salt
    nonce = os.urandom(envelope.NONCE_SIZE) if nonce is None else nonce
    header = envelope.Header(
        envelope.FORMAT_VERSION, suite, keyring, version, crypto.key_id(key),
        types.MappingProxyType(dict(sorted((context or {}).items()))),
        created, salt, nonce)
    prefix = envelope.encode_prefix(envelope.encode_header(header))
    info = crypto.info(envelope.FORMAT_VERSION, suite, keyring, version)
    ciphertext, mac = crypto.encrypt(key, salt, nonce, info, prefix, payload)
    return envelope.assemble(prefix, ciphertext, mac)


def nest(depth, kind="dict"):
    """Metadata whose innermost container sits at *depth* (top level = 1)."""
    if kind == "dict":
        value = {}
        for _ in range(depth - 1):
            value = {"k": value}
        return value
    inner = []
    for _ in range(depth - 2):
        inner = [inner]
    return {"k": inner} if depth >= 2 else {}


def snapshot(root):
    """{relative path: (mode, content or None)} of everything under *root*."""
    result = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            content = None
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as handle:
                    content = handle.read()
            result[os.path.relpath(path, root)] = (st.st_mode, content)
    return result


def temp_file(directory, age, data=b"partial"):
    """A temporary file made as atomic.write_file makes one (mkstemp, same
    prefix), last written *age* seconds ago; its path."""
    fd, path = tempfile.mkstemp(prefix=atomic.TEMP_PREFIX, dir=str(directory))
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    set_age(path, age)
    return path


def set_age(path, age):
    """Set the times of *path* (a link itself, not followed) *age* seconds
    into the past."""
    then = time.time() - age
    os.utime(path, (then, then), follow_symlinks=False)


def file_size_limit(limit):
    """A ``preexec_fn`` for a child process in which writing a regular file
    past *limit* bytes fails with EFBIG ("File too large") -- a real failing
    write, for root too (unlike permission bits)."""
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec
