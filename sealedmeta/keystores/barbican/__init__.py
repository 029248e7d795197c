"""The Barbican key store: version keys are Barbican secrets.

Layout in Barbican (one project, dedicated to sealedmeta):

* each key version is a symmetric secret named ``PREFIX:KEYRING:vN`` (read
  through castellan); its user metadata holds the version's mutable state
  (``state``, plus ``keyring``, ``version``, ``key_id``, ``created``);
* a generic container named ``PREFIX:KEYRING`` lists the versions; each
  entry is named ``vN.KEYID.CREATED`` -- the immutable facts of the version --
  so a destroyed version (its secret deleted) is still known by number and
  key id;
* a signing keyring's version also has an Ed25519 private key, stored as
  a Barbican ``private`` secret (PKCS#8 PEM, as castellan stores it) named
  ``PREFIX:KEYRING:vN:sign``; the version secret's metadata records its
  uuid (``signing_key``) and the public key (``public_key``, hex). A
  destroyed version's tombstone keeps ``public_key``, and destroying deletes
  the private key with the version secret;
* every version secret, and every signing key, carries a consumer (service
  ``sealedmeta``, resource type ``keyring``, resource id the keyring name):
  Barbican's clients refuse to delete a secret with consumers unless forced.

A rotation stores the new secret as ``pending`` before it is listed, checks
that no racing rotation took the same number, and only then makes it active
and the previous one decrypt-only. A crash at any step leaves the previous
active version active, or (after the new one was marked active) two actives
that every reader resolves the same way: the highest number wins.

What an interrupted rotation (or destroy) leaves behind -- a pending secret
never listed, its signing key, a tombstone never listed -- is reported by
:meth:`BarbicanKeyStore.leftovers` and removed by it once it is
:data:`STALE_AGE` old (``rekey`` does so under the keyring's lock); see
there for why that cannot race with a rotation still in flight. A destroy
cut half-way is finished by running it again (:meth:`finish_destroy`).

Every secret and container is readable by the service user alone (ACL
``project-access: false`` with that user listed): Barbican then lets no
other member of the project read it, change its metadata or its entries.
Anything a keyring refers to that Barbican does not record as created by
that user (``creator_id``) is refused with
:class:`~sealedmeta.exceptions.UntrustedKeyObject`; objects of a keyring
made before ACLs were set get theirs the first time they are checked.
A version secret and a signing key are created without payload, made
private, and only then given their key, so the key is never readable by
the project.

One keystoneauth session (and so one token) per store object: castellan's own
client would authenticate again for every call.

The parts are one object per module, each handed the parts it works with
when the store is built (``store.py``), none reaching into another's
state; the architecture page (docs/source/architecture.rst, "key stores")
lists them, the one list of them.
"""

from sealedmeta.keystores.barbican.options import GROUP
from sealedmeta.keystores.barbican.options import list_opts
from sealedmeta.keystores.barbican.options import register_opts
from sealedmeta.keystores.barbican.store import BarbicanKeyStore

__all__ = ["BarbicanKeyStore", "GROUP", "list_opts", "register_opts"]
