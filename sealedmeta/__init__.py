"""sealedmeta: encrypted, MACed, versioned envelopes for backup metadata.

Public API::

    from sealedmeta import Sealer, FileKeyStore, inspect, armor, dearmor
"""

from sealedmeta import envelope as _envelope
from sealedmeta.envelope import armor, dearmor  # noqa: F401
from sealedmeta.keystores.file import FileKeyStore  # noqa: F401
from sealedmeta.sealer import Sealer  # noqa: F401

__all__ = ["Sealer", "FileKeyStore", "inspect", "armor", "dearmor"]


def inspect(data, max_size=_envelope.DEFAULT_MAX_ENVELOPE_SIZE):
    """The header of an envelope (raw bytes or armour), WITHOUT authentication.

    No key is needed and nothing is verified: use it to see which keyring,
    version and context an envelope claims, never to trust them.
    """
    return _envelope.parse(_envelope.load(data, max_size), max_size).header
