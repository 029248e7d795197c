"""Keyrings, key versions, their states and the one place transitions live.

No I/O and no key material: a :class:`KeyRing` is the description a key
store keeps next to the keys. Every state change any store makes goes through
:func:`rotated` or :func:`transitioned`, so the rules of the lifecycle are
enforced once.
"""

import dataclasses
import enum
import time

from sealedmeta import exceptions
from sealedmeta import names
from sealedmeta import signing


class KeyState(str, enum.Enum):
    ACTIVE = "active"              # seals and opens
    DECRYPT_ONLY = "decrypt-only"  # opens
    RETIRED = "retired"            # refused, kept (reversible)
    # refused, kept, destroyed once its destroy_after time has come (by
    # ``key destroy --due``) unless reinstated first
    PENDING_DESTRUCTION = "pending-destruction"
    DESTROYED = "destroyed"        # material gone

    def __str__(self):
        return self.value


OPENABLE = frozenset((KeyState.ACTIVE, KeyState.DECRYPT_ONLY))

# (from, to) pairs set_state may perform. active -> decrypt-only happens only
# through rotation, because exactly one version must stay active.
_ALLOWED = {
    (KeyState.DECRYPT_ONLY, KeyState.RETIRED),
    (KeyState.RETIRED, KeyState.DECRYPT_ONLY),
    (KeyState.RETIRED, KeyState.DESTROYED),
    (KeyState.RETIRED, KeyState.PENDING_DESTRUCTION),
    (KeyState.PENDING_DESTRUCTION, KeyState.DECRYPT_ONLY),
    (KeyState.PENDING_DESTRUCTION, KeyState.DESTROYED),
}

# What to do instead, for the refusals an operator meets.
_INSTEAD = {
    (KeyState.DECRYPT_ONLY, KeyState.DESTROYED):
        "; retire it first ('sealedmeta key retire')",
    (KeyState.DECRYPT_ONLY, KeyState.PENDING_DESTRUCTION):
        "; retire it first ('sealedmeta key retire')",
    (KeyState.PENDING_DESTRUCTION, KeyState.RETIRED):
        "; 'sealedmeta key reinstate' cancels its destruction",
    (KeyState.DESTROYED, KeyState.PENDING_DESTRUCTION):
        ": its key material is gone",
    (KeyState.DESTROYED, KeyState.DECRYPT_ONLY):
        ": its key material is gone",
    (KeyState.DESTROYED, KeyState.RETIRED):
        ": its key material is gone",
}


@dataclasses.dataclass(frozen=True)
class KeyVersion:
    number: int
    key_id: bytes
    state: KeyState
    created: int
    # Ed25519 public key (32 raw bytes) of a signing keyring's version; None
    # for a keyring without signatures. Not secret.
    public_key: bytes = None
    # When the version stopped being active (epoch seconds), recorded by the
    # rotation that demoted it; None while active, and in keyrings written
    # before it was recorded (see inactive_since).
    deactivated: int = None
    # When a version pending destruction is due to be destroyed (epoch
    # seconds); None in every other state.
    destroy_after: int = None

    @property
    def key_id_hex(self):
        return self.key_id.hex()

    @property
    def public_key_id(self):
        """16-byte id of the public key (None without one)."""
        if self.public_key is None:
            return None
        return signing.public_key_id(self.public_key)

    def as_dict(self):
        data = {"version": self.number, "key_id": self.key_id.hex(),
                "state": self.state.value, "created": self.created}
        if self.public_key is not None:
            data["public_key"] = self.public_key.hex()
        if self.deactivated is not None:
            data["deactivated"] = self.deactivated
        if self.destroy_after is not None:
            data["destroy_after"] = self.destroy_after
        return data


@dataclasses.dataclass(frozen=True)
class KeyRing:
    name: str
    versions: tuple

    def __post_init__(self):
        check_consistent(self.name, self.versions)

    @property
    def active(self):
        return next(v for v in self.versions if v.state is KeyState.ACTIVE)

    @property
    def signing(self):
        """True when the keyring signs (its active version has a key pair)."""
        return self.active.public_key is not None

    def version(self, number):
        for v in self.versions:
            if v.number == number:
                return v
        return None

    def by_key_id(self, key_id):
        for v in self.versions:
            if v.key_id == key_id:
                return v
        return None

    def as_dict(self):
        return {"name": self.name,
                "versions": [v.as_dict() for v in self.versions]}


def check_consistent(name, versions):
    names.check_keyring_name(name)
    if not versions:
        raise exceptions.KeyStoreError("keyring %r has no versions" % name)
    numbers = [v.number for v in versions]
    if numbers != sorted(set(numbers)):
        raise exceptions.KeyStoreError(
            "keyring %r: version numbers are not unique and ordered" % name)
    if len({v.key_id for v in versions}) != len(versions):
        raise exceptions.KeyStoreError(
            "keyring %r: two versions share a key id" % name)
    for v in versions:
        if v.public_key is not None and (type(v.public_key) is not bytes
                                         or len(v.public_key) != 32):
            raise exceptions.KeyStoreError(
                "keyring %r: version %d has a malformed public key"
                % (name, v.number))
        if (v.state is KeyState.PENDING_DESTRUCTION) != (
                v.destroy_after is not None):
            raise exceptions.KeyStoreError(
                "keyring %r: version %d is %s %s a destruction time"
                % (name, v.number, v.state, "without"
                   if v.destroy_after is None else "with"))
    active = sum(1 for v in versions if v.state is KeyState.ACTIVE)
    if active != 1:
        raise exceptions.KeyStoreError(
            "keyring %r has %d active versions; exactly one is required"
            % (name, active))


def now():
    return int(time.time())


def new_keyring(name, key_id, created=None, public_key=None):
    """A keyring whose version 1 is active (signing when *public_key*)."""
    return KeyRing(name, (KeyVersion(1, key_id, KeyState.ACTIVE,
                                     now() if created is None else created,
                                     public_key),))


def next_version_number(ring):
    return ring.versions[-1].number + 1


def rotated(ring, key_id, created=None, public_key=None):
    """(new ring, new version): a new active version; the old active -> decrypt-only.

    A signing keyring stays signing: its new version needs *public_key*. A
    keyring without signing keys becomes a signing one when the new version
    has one (``rekey --signing``); the way back is refused, since a version
    without a key pair would let a symmetric key alone make envelopes again.
    """
    if ring.signing and public_key is None:
        raise exceptions.KeyStoreError(
            "keyring %r has signing keys; the new version must have one"
            % ring.name)
    new = KeyVersion(next_version_number(ring), key_id, KeyState.ACTIVE,
                     now() if created is None else created, public_key)
    if ring.by_key_id(key_id) is not None:
        raise exceptions.KeyStoreError("key id collision in keyring %r" % ring.name)
    versions = tuple(
        dataclasses.replace(v, state=KeyState.DECRYPT_ONLY,
                            deactivated=new.created)
        if v.state is KeyState.ACTIVE else v for v in ring.versions)
    return KeyRing(ring.name, versions + (new,)), new


def inactive_since(ring, number):
    """When version *number* stopped being active (epoch seconds); None while
    it is active.

    A version without a recorded time (a keyring written before it was
    recorded, or demoted by resolve_actives) stopped being active when its
    successor was created: the rotation that created the successor demoted
    it. Without a successor, its own creation time.
    """
    version = ring.version(number)
    if version is None or version.state is KeyState.ACTIVE:
        return None
    if version.deactivated is not None:
        return version.deactivated
    later = [v.created for v in ring.versions if v.number > number]
    return min(later) if later else version.created


def settle_left(ring, number, window, at=None):
    """Seconds until *window* seconds have passed since version *number*
    stopped being active (0 when they have, or it has no such time)."""
    since = inactive_since(ring, number)
    if since is None or window <= 0:
        return 0
    # Times are whole seconds, rounded down: the moment itself may have
    # been up to a second later.
    return max(0, since + 1 + window - (now() if at is None else at))


def check_transition(ring, number, state):
    """The version a set_state would change; raises InvalidTransition."""
    state = parse_state(state)
    current = ring.version(number)
    if current is None:
        raise exceptions.InvalidTransition(
            "keyring %r has no version %r" % (ring.name, number))
    if current.state is state:
        raise exceptions.InvalidTransition(
            "version %d of %r is already %s" % (number, ring.name, state))
    if current.state is KeyState.ACTIVE:
        raise exceptions.InvalidTransition(
            "version %d of %r is the active version; rekey first"
            % (number, ring.name))
    if (current.state, state) not in _ALLOWED:
        raise exceptions.InvalidTransition(
            "version %d of %r cannot go from %s to %s%s"
            % (number, ring.name, current.state, state,
               _INSTEAD.get((current.state, state), "")))
    return current


def transitioned(ring, number, state, destroy_after=None):
    """The ring with version *number* moved to *state*, if the rules allow it.

    *destroy_after* (epoch seconds) is required to go to pending
    destruction, and refused for any other state; leaving that state
    forgets it."""
    check_transition(ring, number, state)
    state = parse_state(state)
    if (state is KeyState.PENDING_DESTRUCTION) != (destroy_after is not None):
        raise exceptions.InvalidTransition(
            "version %d of %r: a destruction time goes with %s, and only"
            " with it" % (number, ring.name, KeyState.PENDING_DESTRUCTION))
    if destroy_after is not None and (
            type(destroy_after) is not int
            or not 0 <= destroy_after <= names.MAX_TIME):
        raise exceptions.InvalidTransition(
            "bad destruction time %r" % (destroy_after,))
    return KeyRing(ring.name, tuple(
        dataclasses.replace(v, state=state, destroy_after=destroy_after)
        if v.number == number else v for v in ring.versions))


def due_for_destruction(ring, at=None):
    """The versions of *ring* pending destruction whose time has come at
    *at* (epoch seconds, default now), oldest first."""
    at = now() if at is None else at
    return [v for v in ring.versions
            if v.state is KeyState.PENDING_DESTRUCTION
            and v.destroy_after <= at]


def parse_state(state):
    try:
        return KeyState(state)
    except ValueError:
        raise exceptions.InvalidTransition(
            "unknown key state %r (one of: %s)"
            % (state, ", ".join(s.value for s in KeyState))) from None


def resolve_actives(name, versions):
    """Deterministic repair when racing rotations left several actives.

    The highest version number stays active, the others become decrypt-only:
    nothing that was sealed becomes unreadable, and every reader picks the
    same winner.
    """
    versions = tuple(sorted(versions, key=lambda v: v.number))
    actives = [v for v in versions if v.state is KeyState.ACTIVE]
    if len(actives) <= 1:
        return versions
    winner = actives[-1].number
    return tuple(
        dataclasses.replace(v, state=KeyState.DECRYPT_ONLY)
        if v.state is KeyState.ACTIVE and v.number != winner else v
        for v in versions)


def _stored_int(value, low, high):
    # Exactly an int in range: no bool, float or numeric string, and nothing
    # an envelope header could not carry (version 0, negative times).
    if type(value) is not int or not low <= value <= high:
        raise ValueError("integer field out of range")
    return value


def _stored_public_key(version):
    value = version.get("public_key")
    if value is None:
        return None
    if type(value) is not str:
        raise ValueError("public key is not hex")
    public_key = bytes.fromhex(value)
    if len(public_key) != 32:
        raise ValueError("public key size")
    return public_key


def _stored_time(version, field):
    value = version.get(field)
    if value is None:
        return None
    return _stored_int(value, 0, names.MAX_TIME)


def from_dict(data):
    """A KeyRing from its stored description; KeyStoreError when malformed."""
    try:
        name = data["name"]
        versions = tuple(
            KeyVersion(number=_stored_int(v["version"], 1,
                                          names.MAX_KEY_VERSION),
                       key_id=bytes.fromhex(v["key_id"]),
                       state=KeyState(v["state"]),
                       created=_stored_int(v["created"], 0,
                                           names.MAX_TIME),
                       public_key=_stored_public_key(v),
                       deactivated=_stored_time(v, "deactivated"),
                       destroy_after=_stored_time(v, "destroy_after"))
            for v in data["versions"])
        if any(len(v.key_id) != names.KEY_ID_SIZE for v in versions):
            raise ValueError("key id size")
    except (KeyError, TypeError, ValueError, AttributeError):
        raise exceptions.KeyStoreError(
            "stored keyring description is malformed") from None
    try:
        return KeyRing(name, versions)
    except exceptions.InvalidMetadata as exc:
        raise exceptions.KeyStoreError(str(exc)) from None
