"""The library's exceptions.

Every error sealedmeta raises on purpose is a :class:`SealedMetaError`.
Envelope problems are :class:`InvalidEnvelope`: a failed authentication is
exactly ``InvalidEnvelope`` (one type, one message, whatever the cause, so the
error is no oracle); structural problems found before any key is touched get
subclasses.
"""


class SealedMetaError(Exception):
    """Base of every sealedmeta error."""


class InvalidEnvelope(SealedMetaError):
    """The envelope cannot be trusted.

    Raised as such for every authentication failure: wrong key, any changed
    byte, a forged header.
    """


class MalformedEnvelope(InvalidEnvelope):
    """Not an envelope, truncated, over a limit or badly encoded."""


class EnvelopeTooLarge(MalformedEnvelope):
    """The envelope (or its armour) is over the configured size limit."""


class UnsupportedFormat(InvalidEnvelope):
    """An envelope of a format version or suite this library does not know."""


class ContextMismatch(InvalidEnvelope):
    """A genuine envelope, sealed for another context (e.g. another backup)."""


class KeyUnavailable(SealedMetaError):
    """The key version an envelope needs is unknown, retired or destroyed."""


class UnknownKey(InvalidEnvelope, KeyUnavailable):
    """The envelope names a keyring or key id this sealer does not know.

    Both an envelope problem (a changed header looks exactly like this) and a
    key problem (a keyring moved without its keys), so it is both. Raised
    only after a fresh read of the keyring, rate limited.
    """


class KeyStoreError(SealedMetaError):
    """The key store failed or refused: unreachable, denied, inconsistent."""


class NoSuchKeyring(KeyStoreError):
    """The named keyring does not exist in the key store."""


class KeyringExists(KeyStoreError):
    """A keyring of that name already exists."""


class UntrustedKeyObject(KeyStoreError):
    """An object of the key store that its service user did not create.

    Another user of a shared project may have planted or changed it: it is
    never used. The message names the object, never its content.
    """


class InvalidTransition(SealedMetaError):
    """A key version state change the lifecycle does not allow."""


class InvalidMetadata(SealedMetaError, ValueError):
    """Metadata, context or a name that cannot be sealed (refused at seal time)."""


class ConfigurationError(SealedMetaError):
    """A setting a tool needs is missing or wrong; the message names it."""


class SetupError(SealedMetaError):
    """A tool cannot run at all (its configuration, a driver it loads, a
    file or argument it was given); nothing was done."""
