"""The one verdict: may the key version an envelope names open it, and is
its signature good.

:func:`judge` decides it, from the keyring as the caller knows it, the
envelope's header (parsed, not yet authenticated) and its signature. Every
reader asks it: the Sealer (open, verify, rewrap, so a Cinder restore
too), the auditor of trees and the public-key auditor (so ``sealedmeta
verify`` and ``sealedmeta cinder audit``), and rewrap.
:func:`of_version`, the part of it that is a version's state alone, is what
the key stores apply before handing out a key and the Sealer before
checking a claim's tag.

A key holder and a public-key auditor get one answer: the checks run in
one order (suite, keyring and key id, version number, state, signature),
and only what a public-key auditor cannot check (the MAC, the payload) is
left to the key holder. Pure: no I/O, no key material.
"""

import typing

from sealedmeta import crypto
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import signing
from sealedmeta import suites

# The one vocabulary of ``sealedmeta verify`` statuses and ``sealedmeta
# cinder audit`` classes; docs/source/audit.rst says what each means.
VALID = "valid"
INVALID = "invalid"
MALFORMED = "malformed"
UNSEALED = "unsealed"
UNKNOWN_KEY = "unknown-key"
RETIRED_KEY = "retired-key"
DESTROYED_KEY = "destroyed-key"
CONTEXT_MISMATCH = "context-mismatch"
UNREADABLE = "unreadable"
UNSIGNED = "unsigned"
LEGACY = "legacy"
MISSING = "missing"

# The reason of an envelope a public-key auditor finds forged.
SIGNATURE_FAILED = "envelope failed signature verification"

# A version pending destruction is refused as a retired one is: its key is
# kept, and 'key reinstate' makes it open again (the reason names the state).
_REFUSED = {kr.KeyState.RETIRED: RETIRED_KEY,
            kr.KeyState.PENDING_DESTRUCTION: RETIRED_KEY,
            kr.KeyState.DESTROYED: DESTROYED_KEY}


class Verdict(typing.NamedTuple):
    """``status`` (a word of the vocabulary above), ``reason`` (one line;
    None when VALID) and ``version`` (the KeyVersion judged, when the
    keyring has it)."""

    status: str
    reason: str = None
    version: kr.KeyVersion = None

    def error(self, refused="envelopes", hint=""):
        """The library's exception for this verdict (not VALID): the one
        authentication error for INVALID, UnsupportedFormat for MALFORMED,
        UnknownKey for UNKNOWN_KEY (*hint* appended to its message), and
        KeyUnavailable naming what is *refused* for a retired, pending
        destruction or destroyed version."""
        if self.status == INVALID:
            return exceptions.InvalidEnvelope(crypto.AUTH_FAILED)
        if self.status == MALFORMED:
            return exceptions.UnsupportedFormat(self.reason)
        if self.status == UNKNOWN_KEY:
            return exceptions.UnknownKey(self.reason + hint)
        return exceptions.KeyUnavailable(
            "%s; %s under it are refused" % (self.reason, refused))


def _state(name, version):
    status = _REFUSED.get(version.state)
    if status is None:
        return Verdict(VALID, None, version)
    return Verdict(status, "version %d of keyring %r is %s"
                   % (version.number, name, version.state), version)


def of_version(ring, number):
    """The verdict on version *number* of *ring*: VALID when it may open
    envelopes (active or decrypt-only), else UNKNOWN_KEY, RETIRED_KEY (also
    for a version pending destruction) or DESTROYED_KEY."""
    version = ring.version(number)
    if version is None:
        return Verdict(UNKNOWN_KEY, "keyring %r has no version %r"
                       % (ring.name, number))
    return _state(ring.name, version)


def judge(ring, header, signature=None, raw=None, public=False):
    """The verdict on an envelope whose parsed header is *header*.

    *ring* is the keyring the caller has for it (None: none of that name).
    *signature* is the envelope's signature (None without one) and *raw*
    its bytes, of which the signature signs all before it. *public*: the
    caller holds public keys only, so a suite 1 envelope, or one naming a
    version without key pair, is UNSIGNED: nothing about it can be checked.

    VALID means the version may open the envelope and, for a version with
    a key pair, the signature is good; a key holder then checks the MAC.
    MALFORMED is an unknown suite; INVALID a forgery (a known key id under
    another version number, a version with a key pair and no good
    signature).
    """
    suite = suites.BY_ID.get(header.suite)
    if suite is None:
        return Verdict(MALFORMED, "unsupported algorithm suite %d (this"
                       " library knows %s)" % (header.suite, " and ".join(
                           str(known) for known in suites.BY_ID)))
    version = None
    if ring is not None and ring.name == header.keyring:
        version = ring.by_key_id(header.key_id)
    if public and not suite.signed and (
            version is None or version.public_key is None):
        return Verdict(UNSIGNED, "suite %d envelope: not signed, its origin"
                       " cannot be checked with public keys" % suite.id,
                       version)
    where = "the public keys file" if public else "the key store"
    if ring is None:
        return Verdict(UNKNOWN_KEY, "no keyring %r in %s"
                       % (header.keyring, where))
    if ring.name != header.keyring:
        return Verdict(UNKNOWN_KEY, "the envelope names keyring %r, not %r"
                       % (header.keyring, ring.name))
    if version is None:
        return Verdict(UNKNOWN_KEY, "keyring %r has no version with key id %s"
                       "%s (the envelope names version %d)" % (
                           ring.name, header.key_id.hex(),
                           " in the public keys file" if public else "",
                           header.key_version))
    failed = SIGNATURE_FAILED if public else crypto.AUTH_FAILED
    if version.number != header.key_version:
        # A known key id under another number: a forged header.
        return Verdict(INVALID, failed, version)
    verdict = _state(ring.name, version)
    if verdict.status != VALID:
        return verdict
    if version.public_key is not None:
        # Such a version signs all it seals: an envelope without its good
        # signature was made with the symmetric key alone, or changed.
        if not suite.signed or signature is None or not signing.verify(
                version.public_key, signature,
                raw[:len(raw) - len(signature)]):
            return Verdict(INVALID, failed, version)
    elif public:
        return Verdict(UNSIGNED, "version %d of keyring %r has no key pair:"
                       " the envelope's origin cannot be checked with public"
                       " keys" % (version.number, ring.name), version)
    return verdict
