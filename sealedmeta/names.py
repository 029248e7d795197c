"""What a keyring and its versions are known by: the rules for a keyring's
name and the bounds of a version's number, key id and times.

Part of the keyring model, kept in a module of its own with no other
dependency so that every layer can use the same rules: the envelope format
(a header names the keyring, version and key id), the keyring model and
the key stores.
"""

import re

from sealedmeta import exceptions

KEY_ID_SIZE = 16
MAX_KEYRING_NAME = 64
MAX_KEY_VERSION = 2**31 - 1
MAX_TIME = 2**63 - 1   # seconds since the epoch: creation, deactivation

KEYRING_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}\Z")


def check_keyring_name(name):
    """Raise InvalidMetadata unless *name* is a valid keyring name."""
    if type(name) is not str or not KEYRING_NAME.match(name):
        raise exceptions.InvalidMetadata(
            "invalid keyring name %r: 1-64 characters of A-Z a-z 0-9 . _ -,"
            " starting with a letter or digit" % (name,))
    return name
