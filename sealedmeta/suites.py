"""The algorithm suites of envelope format 1: the one table of them.

A suite is chosen by its id, here, by every layer that needs one: the
format (whether an envelope ends with a signature), the crypto (the id goes
into the HKDF info), the Sealer (which suite a key version seals with) and
the verdict (which suites exist, which are signed). A leaf module, like
``names.py``, so that the format and the layers above it share it.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Suite:
    id: int
    name: str
    # The envelope ends with an Ed25519 signature of every byte before it.
    signed: bool


PLAIN = Suite(1, "HKDF-SHA256/AES-256-GCM/HMAC-SHA256", False)
SIGNED = Suite(2, PLAIN.name + " + Ed25519", True)

BY_ID = {suite.id: suite for suite in (PLAIN, SIGNED)}


def for_version(version):
    """The suite key version *version* seals with: the signed one when it
    has a key pair."""
    return PLAIN if version.public_key is None else SIGNED
