"""``sealedmeta keyring create|list|show``."""

import datetime
import logging

from cliff import command
from cliff import lister
from cliff import show

from sealedmeta import admin
from sealedmeta import cli_common as common
from sealedmeta import conf as sm_conf
from sealedmeta import coordination
from sealedmeta import exceptions
from sealedmeta import public

LOG = logging.getLogger(__name__)


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def ring_summary(ring):
    active = ring.active
    return (("name", "active_version", "active_key_id", "versions"),
            (ring.name, active.number, active.key_id.hex(), len(ring.versions)))


class KeyringCreate(show.ShowOne):
    """Create a keyring; its version 1 is active.

    With --signing every version (this one and those rekey adds) also gets
    an Ed25519 key pair: envelopes are then signed (suite 2), and auditors
    check them with the public keys of ``keyring export-public`` alone.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME",
                            help="Keyring to create: up to 64 letters,"
                                 " digits, '.', '_' and '-', the first a"
                                 " letter or digit.")
        parser.add_argument("--signing", action="store_true",
                            help="Sign every envelope sealed under this"
                                 " keyring (Ed25519, suite 2).")
        return parser

    def take_action(self, parsed_args):
        # Under the keyring's coordination lock, like every state change.
        common.check_references(self.app.conf, sm_conf.GROUP,
                                sm_conf.COORDINATION_GROUP)
        with coordination.Coordinator.from_config(self.app.conf) as coord:
            ring = admin.create_keyring(self.app.store, parsed_args.name, coord,
                                        signing=parsed_args.signing)
        names, values = ring_summary(ring)
        if ring.signing:
            names += ("public_key_id",)
            values += (ring.active.public_key_id.hex(),)
        return names, values


class KeyringList(lister.Lister):
    """List the keyrings of the key store."""

    def take_action(self, parsed_args):
        store = self.app.store
        rows = []
        for name in store.list_keyrings():
            ring = store.get_keyring(name)
            rows.append((name, ring.active.number, len(ring.versions)))
        return ("name", "active_version", "versions"), rows


class KeyringShow(lister.Lister):
    """Show the versions of a keyring (never key material).

    A signing keyring's listing has one more column, public_key_id: the id
    of each version's Ed25519 public key, as ``keyring create --signing``
    and the public keys file of ``keyring export-public`` give it.

    With --leftovers, list instead what the key store holds for the keyring
    that no version uses: secrets left by interrupted rotations or destroys
    (Barbican), and what happens to them. Nothing is changed; ``rekey``
    removes those that are safe to remove.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="Keyring.")
        parser.add_argument("--leftovers", action="store_true",
                            help="List the key store's secrets of this keyring"
                                 " that no version uses (left by interrupted"
                                 " rotations or destroys) instead.")
        return parser

    def take_action(self, parsed_args):
        if parsed_args.leftovers:
            found = self.app.store.leftovers(parsed_args.name)
            if not found:  # an empty table prints nothing: say so
                LOG.info("keyring %s: the key store holds nothing left over",
                         parsed_args.name)
            return (("version", "kind", "name", "ref", "age_seconds", "action"),
                    [(f.version, f.kind, f.name, f.ref,
                      None if f.age is None else int(f.age), f.action)
                     for f in found])
        ring = self.app.store.get_keyring(parsed_args.name)
        names = ("version", "key_id", "state", "created")
        signing = any(v.public_key is not None for v in ring.versions)
        if signing:
            names += ("public_key_id",)
        rows = [(v.number, v.key_id.hex(), v.state.value, iso(v.created))
                + ((None if v.public_key is None else v.public_key_id.hex(),)
                   if signing else ())
                for v in ring.versions]
        return names, rows


class KeyringCopy(show.ShowOne):
    """Copy a keyring into another key store, keeping versions, states and key ids.

    Envelopes sealed against the source open against the destination. The
    source is the store of the global options; the destination is described
    by its own configuration file (e.g. one with keystore = barbican).
    Destroyed versions have no key left to copy: they are carried over as
    destroyed (number, key id, public key), so ``verify`` against the
    destination still reports envelopes under them as ``destroyed-key``.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME",
                            help="Keyring to copy (from the store of the"
                                 " global options).")
        parser.add_argument("--to-config", metavar="FILE", required=True,
                            help="Configuration file of the destination store.")
        return parser

    def take_action(self, parsed_args):
        target = self.app.load_store([parsed_args.to_config])
        ring, keys = self.app.store.export_keyring(parsed_args.name)
        signing_keys = {}
        carried = len(keys)
        try:
            signing_keys = self.app.store.export_signing_keys(ring)
            if signing_keys:
                copied = target.import_keyring(ring, keys, signing_keys)
            else:
                copied = target.import_keyring(ring, keys)
        finally:
            keys.clear()
            signing_keys.clear()
        return (("name", "destination", "versions_copied", "active_version",
                 "active_key_id"),
                (copied.name, target.describe(), carried, copied.active.number,
                 copied.active.key_id.hex()))


class KeyringExportPublic(command.Command):
    """Write the public signing keys of keyrings to a file, for auditors.

    Only public facts: version numbers, key ids, states, creation times and
    Ed25519 public keys (format: docs, "Public keys file"). Auditors run
    ``sealedmeta verify --public-keys FILE`` with it, without key store
    access. Only signing keyrings (keyring create --signing) have them.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("names", metavar="NAME", nargs="+",
                            help="Signing keyrings whose public keys to write.")
        parser.add_argument("-o", "--output", metavar="FILE", required=True,
                            help="File to write ('-' = standard output).")
        return parser

    def take_action(self, parsed_args):
        rings = []
        for name in parsed_args.names:
            if any(r.name == name for r in rings):
                raise common.CommandError("keyring %r given twice" % name)
            rings.append(self.app.store.get_keyring(name))
        try:
            data = public.dumps(rings)
        except public.PublicKeysError as exc:
            raise exceptions.SealedMetaError(str(exc)) from None
        # Public: readable by others, like any published key.
        common.write_output(parsed_args.output, data, self.app.stdout,
                            mode=0o644)
        return 0
