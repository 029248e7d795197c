"""What a version secret's user metadata holds: the version's mutable
state (``state``, and ``destroy_after`` while it is pending destruction)
with its facts (``keyring``, ``version``, ``key_id``, ``created``), and the
fields a state change keeps (``public_key``, ``signing_key``,
``deactivated``)."""

from sealedmeta import names

PENDING = "pending"
# Secret metadata fields a state change keeps as they are.
KEPT_FIELDS = ("public_key", "signing_key", "deactivated")


def parse_time(text):
    """Epoch seconds from a decimal string of secret metadata; None when
    it is not one."""
    if type(text) is not str or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value <= names.MAX_TIME else None


class SecretMetadata:
    """Reading and writing a version secret's metadata."""

    def __init__(self, session):
        self.session = session
        # version secret uuid -> its KEPT_FIELDS ({} for a version without
        # signing key), as last read or written
        self.kept = {}

    def read(self, uuid):
        """The secret's user metadata, or None when the secret is gone."""
        session = self.session
        try:
            meta = session.read("reading key version state",
                                session.client.client.get,
                                "secrets/%s/metadata" % uuid)
        except Exception as exc:
            if session.is_not_found(exc):
                return None
            raise
        return meta.get("metadata", {})

    def signing_key(self, secret):
        """The uuid of version secret *secret*'s signing key, or None."""
        return self.kept.get(secret, {}).get("signing_key")

    def set_state(self, secret, name, number, key_id, created, state,
                  deactivated=None, destroy_after=None):
        # The metadata is replaced as a whole: keep the signing key's fields.
        extra = self.kept.get(secret)
        if extra is None:
            meta = self.read(secret) or {}
            extra = self.kept[secret] = {
                k: meta[k] for k in KEPT_FIELDS if k in meta}
        meta = {"keyring": name, "version": str(number), "key_id": key_id.hex(),
                "created": str(created), "state": state}
        if destroy_after is not None:
            # Goes with the state: every other state change drops it.
            meta["destroy_after"] = str(destroy_after)
        if deactivated is not None:
            # When the version stopped being active (see keyring.py): kept
            # with the other fields by every later state change.
            extra["deactivated"] = str(deactivated)
        meta.update(extra)
        self.session.write(
            "recording the state of version %d of %r" % (number, name),
            self.session.client.secrets.set_secret_metadata, secret, meta)
