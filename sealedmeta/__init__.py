"""sealedmeta: encrypted, MACed, versioned envelopes for backup metadata.

Public API, for programs that embed the library::

    from sealedmeta import Sealer, FileKeyStore, inspect, armor, dearmor

``Sealer`` and ``FileKeyStore`` are imported on first use: every module of
the package imports this one first, and the format (which ``inspect``,
``armor`` and ``dearmor`` are) must not load the layers above it
(docs/source/architecture.rst).
"""

from sealedmeta import envelope as _envelope
from sealedmeta.envelope import armor, dearmor  # noqa: F401

__all__ = ["Sealer", "FileKeyStore", "inspect", "armor", "dearmor"]


def __getattr__(name):
    if name == "Sealer":
        from sealedmeta.sealer import Sealer
        return Sealer
    if name == "FileKeyStore":
        from sealedmeta.keystores.file import FileKeyStore
        return FileKeyStore
    raise AttributeError("module %r has no attribute %r" % (__name__, name))


def inspect(data, max_size=_envelope.DEFAULT_MAX_ENVELOPE_SIZE):
    """The header of an envelope (raw bytes or armour), WITHOUT authentication.

    No key is needed and nothing is verified: use it to see which keyring,
    version and context an envelope claims, never to trust them.
    """
    return _envelope.parse(_envelope.load(data, max_size), max_size).header
