"""Destroying versions (tombstones), and what interrupted changes leave
behind.

What an interrupted rotation (or destroy) leaves -- a pending secret never
listed, its signing key, a tombstone never listed -- is reported by
``leftovers`` and removed by it once it is STALE_AGE old (``rekey`` does so
under the keyring's lock): leftovers are removed only when they are not
listed in the container and were created at least STALE_AGE seconds ago
(Barbican's clock: its ``created`` against the ``Date`` of its answer). A
secret that old and still unlisted belongs to a rotation that can no longer
claim it (see rotation.CLAIM_WINDOW), unless that process stalled for more
than STALE_AGE - CLAIM_WINDOW seconds between its last check and its next
request. A destroy cut half-way is finished by running it again
(``finish_destroy``).
"""

import datetime
import email.utils

from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta.keystores import base
from sealedmeta.keystores.barbican import layout
from sealedmeta.keystores.barbican import secret_meta
from sealedmeta.keystores.barbican.session import unwrap
from sealedmeta.keystores.barbican.session import uuid_of

STALE_AGE = 3600.0


def _http_date(value):
    """An HTTP Date header as an aware datetime; the local clock without
    one."""
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return datetime.datetime.now(datetime.timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


def _iso_date(value):
    """Barbican's ``created`` (ISO 8601, UTC) as an aware datetime, or None."""
    try:
        when = datetime.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


class Cleanup:
    """Destroys, tombstones and leftovers."""

    def __init__(self, session, access, layout, meta, reader):
        self.session = session
        self.access = access
        self.layout = layout
        self.meta = meta
        self.reader = reader

    def finish_destroy(self, name, version):
        ring, raw, _ = self.reader.load(name)
        current = ring.version(version)
        if current is None or current.state is not kr.KeyState.DESTROYED:
            raise exceptions.InvalidTransition(
                "version %r of keyring %r is not destroyed" % (version, name))
        left = self.destroy(name, current, raw)
        return self.reader.get_keyring(name).version(version), left

    def destroy(self, name, current, raw):
        """Destroy version *current*: retired, or already destroyed by a
        destroy that was cut half-way. Each step is skipped when it is done
        (or repeats harmlessly), so running this again after a failure at
        any point finishes the job:

        1. the version secret records ``destroyed``: from then on readers
           refuse the version whatever happens next;
        2. a tombstone is listed: Barbican drops a deleted secret from the
           container, and the tombstone keeps the version known (number,
           key id, public key), so envelopes under it are reported as under
           a destroyed key;
        3. the signing key, then the version secret, are deleted, each with
           its consumer (the private key first: once the version secret is
           gone, nothing would name it).

        Returns True if anything was left to do.
        """
        number = current.number
        entries = [(s, st) for n, _k, _c, s, st in raw if n == number]
        material = [(s, st) for s, st in entries
                    if s not in self.reader.tombstones]
        for secret, stored in material:
            if stored != kr.KeyState.DESTROYED.value:
                self.meta.set_state(secret, name, number, current.key_id,
                                    current.created, kr.KeyState.DESTROYED.value)
        tombstone_listed = any(s in self.reader.tombstones for s, _ in entries)
        if not tombstone_listed:
            self.list_tombstone(name, current)
        for secret, _ in material:
            signing_key = self.meta.signing_key(secret)
            if signing_key:
                self._delete_secret(signing_key, name,
                                    "the signing key of version %d" % number)
            self._delete_secret(secret, name, "the secret of version %d" % number)
            self.meta.kept.pop(secret, None)
        return bool(material) or not tombstone_listed

    def list_tombstone(self, name, current):
        """List a tombstone of destroyed version *current* in keyring
        *name*'s container: the version stays known (number, key id, public
        key) when its secret is gone."""
        session = self.session
        version = current.number
        what = "recording the destruction of version %d" % version
        tomb = session.write(what, session.client.secrets.create(
            name=self.layout.secret_name(name, version, ":destroyed"),
            payload="destroyed", payload_content_type="text/plain").store)
        tomb = uuid_of(tomb)
        self.access.restrict("secrets", tomb, what)
        tomb_meta = {"keyring": name, "version": str(version),
                     "key_id": current.key_id.hex(),
                     "created": str(current.created), "state": "destroyed",
                     "tombstone": "1"}
        if current.public_key is not None:
            tomb_meta["public_key"] = current.public_key.hex()
        if current.deactivated is not None:
            tomb_meta["deactivated"] = str(current.deactivated)
        session.write(what, session.client.secrets.set_secret_metadata, tomb,
                      tomb_meta)
        self.layout.list_entry(self.layout.containers[name], current, tomb, what)
        self.reader.tombstones.add(tomb)

    def _delete_secret(self, uuid, name, what):
        """Delete secret *uuid* of keyring *name*, its consumer first. A
        consumer or secret already gone counts as removed, so this can be
        repeated. True if the secret was still there."""
        session = self.session
        try:
            session.client.secrets.remove_consumer(
                uuid, layout.CONSUMER_SERVICE, layout.CONSUMER_TYPE, name)
        except Exception as exc:
            if not session.is_not_found(exc):
                raise session.error("removing the consumer of %s" % what,
                                    exc) from None
        try:
            session.km.delete(session.ctx, uuid, True)
        except Exception as exc:
            if session.is_not_found(unwrap(exc)):
                return False
            raise session.error("deleting %s" % what, exc) from None
        return True

    def leftovers(self, name, remove=False, min_age=None):
        """Secrets of keyring *name* that no version uses, as
        :class:`~sealedmeta.keystores.base.Leftover` records.

        Reported: pending version secrets and signing keys a rotation
        created but never listed (it was killed, or lost a race and could
        not clean up), tombstones a destroy never listed, pending versions
        that *are* listed (a rotation cut after claiming), and the material
        of a version whose destroy was cut half-way.

        With *remove*, those neither listed in the container nor named by a
        listed version, and at least *min_age* (default STALE_AGE) seconds
        old, are deleted. Nothing the container lists is ever deleted, nor
        anything unlisted that is not pending (it may be a version someone
        took out of the container by hand). The age is what makes this safe
        against a rotation in flight that holds no lock: see CLAIM_WINDOW.
        """
        min_age = STALE_AGE if min_age is None else min_age
        ring, raw, container = self.reader.load(name)
        listed = {s for _n, _k, _c, s, _st in raw}
        found, now = self._named_secrets(name, listed)
        info = {f[0]: f for f in found}   # uuid -> (uuid, name, number, kind, created)
        keep = set(listed)                # never removed
        keep.update(self.meta.signing_key(s) for s in listed)
        report = []
        removable = []
        named = {}    # signing key uuid -> why it is kept with its version

        def age(uuid):
            created = info.get(uuid, (None,) * 5)[4]
            # Date has whole seconds: never below 0.
            return None if created is None else max(
                0.0, (now - created).total_seconds())

        def add(uuid, kind, number, action):
            report.append(base.Leftover(uuid, info.get(uuid, (None,) * 5)[1],
                                        kind, number, age(uuid), action))

        def stale(uuid, kind, number):
            seconds = age(uuid)
            if seconds is None or seconds < min_age:
                add(uuid, kind, number, "kept: younger than %gs (a rotation in"
                    " flight may still claim it)" % min_age)
                return False
            removable.append((uuid, kind, number))
            return True

        # Listed: reported, never removed.
        for number, _k, _c, secret, state in raw:
            version = ring.version(number)
            if state == secret_meta.PENDING:
                add(secret, "pending version", number,
                    "kept: listed in the keyring (a rotation cut after"
                    " claiming it)")
            elif (secret not in self.reader.tombstones and version is not None
                  and version.state is kr.KeyState.DESTROYED):
                unfinished = ("kept: version %d is destroyed; destroy it again"
                              " to finish" % number)
                add(secret, "destroyed version's secret", number, unfinished)
                signing_key = self.meta.signing_key(secret)
                if signing_key:
                    add(signing_key, "destroyed version's signing key", number,
                        unfinished)
        # Unlisted version secrets: only pending ones (or ones a rotation
        # never got to label) may go; their metadata names their signing key.
        for uuid, _name, number, kind, _created in found:
            if kind != "pending version" or uuid in keep:
                continue
            meta = self.meta.read(uuid)
            if meta is None:
                continue   # deleted meanwhile
            state = meta.get("state")
            if state not in (None, secret_meta.PENDING):
                add(uuid, "unlisted version", number,
                    "kept: %s, not pending, and not listed in the keyring:"
                    " check it by hand" % state)
                keep.add(uuid)
            elif stale(uuid, kind, number):
                continue
            if meta.get("signing_key"):
                named[meta["signing_key"]] = (
                    "kept: named by the kept version secret %s" % uuid)
        # Signing keys no kept version names, and unlisted tombstones.
        for uuid, _name, number, kind, _created in found:
            if kind == "pending version" or uuid in keep:
                continue
            if uuid in named:
                add(uuid, kind, number, named[uuid])
            else:
                stale(uuid, kind, number)
        # Signing keys first (a version secret names its signing key).
        removable.sort(key=lambda r: r[1] != "signing key")
        if removable and remove:
            # Read the container once more: anything listed since is kept.
            doc = self.session.read("reading keyring %r" % name,
                                    self.session.client.client.get,
                                    "containers/%s" % container)
            now_listed = {entry[-1] for entry in layout.entries(doc)}
            for uuid, kind, number in removable:
                if uuid in now_listed:
                    add(uuid, kind, number, "kept: listed in the keyring")
                    continue
                self._delete_secret(uuid, name, "the leftover %s %s" % (kind, uuid))
                add(uuid, kind, number, "removed")
        else:
            for uuid, kind, number in removable:
                add(uuid, kind, number, "removable")
        return sorted(report, key=lambda r: (r.version, r.name or "", r.ref))

    def _named_secrets(self, name, listed):
        """([(uuid, secret name, version number, kind, created)], Barbican's
        time now) for the secrets named like this store names those of
        keyring *name*; kind: "pending version" (``:vN``), "signing key"
        (``:vN:sign``) or "tombstone" (``:vN:destroyed``)."""
        session = self.session
        like, own = self.layout.secret_pattern(name)
        kinds = {None: "pending version", ":sign": "signing key",
                 ":destroyed": "tombstone"}
        # Barbican selects names "similar to" the filter (SQL LIKE); should
        # one not, every secret of the project is looked at instead.
        for params in ({"name": like}, {}):
            found, now, offset = [], None, 0
            while True:
                answer = session.read("listing the secrets of keyring %r" % name,
                                      session.client.client.request, "secrets",
                                      "GET", params=dict(params, limit=100,
                                                         offset=offset),
                                      headers={"Accept": "application/json"})
                if now is None:
                    now = _http_date(answer.headers.get("Date"))
                page = answer.json()
                items = page.get("secrets", [])
                for item in items:
                    match = own.match(item.get("name") or "")
                    # another user's secret is never ours to remove
                    if match and item.get("secret_ref") and \
                            item.get("creator_id") == session.service_user():
                        found.append((uuid_of(item["secret_ref"]), item["name"],
                                      int(match.group(1)), kinds[match.group(2)],
                                      _iso_date(item.get("created"))))
                offset += len(items)
                if not items or offset >= page.get("total", 0):
                    break
            if not listed or listed & {f[0] for f in found}:
                break
        return found, now

    def forget_version_secret(self, secret):
        """Best-effort removal of a version secret that never became a
        version, and of its signing key."""
        uuid = self.meta.kept.pop(secret, {}).get("signing_key")
        self.session.forget_secret(secret)
        if uuid:
            self.session.forget_secret(uuid)

