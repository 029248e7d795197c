"""Generate tests/vectors/v1.json: known-answer vectors of envelope format 1.

DO NOT re-run this to make a failing test pass. The vectors pin the exact
bytes of format 1 / suite 1: ``tests/unit/test_vectors.py`` checks that the
library still produces them byte for byte and still opens them. Regenerate
only on a deliberate, reviewed change of the format (which then needs a new
format or suite number, and a new file, rather than rewriting this one)::

    python tests/vectors/generate.py          # writes v1.json and v1-suite2.json
    python tests/vectors/generate.py --check  # exit 1 if a file differs

``v1-suite2.json`` holds the suite-2 vector (suite 1 plus an Ed25519
signature over everything before it, from a fixed 32-byte seed; Ed25519 is
deterministic, so the bytes are fixed too). It is a separate file so that
``v1.json`` stays byte for byte what it was.

Every input is fixed (key, salt, nonce, creation time); the envelope is
composed from the library's own building blocks: envelope.Header,
encode_header, encode_prefix, crypto.key_id, crypto.info, crypto.encrypt,
envelope.encode_payload and assemble. Binary metadata values are written in
JSON as {"$bytes": "<hex>"}.
"""

import hashlib
import json
import os
import sys
import types

from sealedmeta import crypto
from sealedmeta import envelope
from sealedmeta import suites

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "v1.json")
SUITE2_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           "v1-suite2.json")

INPUTS = [
    {
        "name": "cinder-backup typical",
        "key": bytes(range(32)),
        "keyring": "cinder-backup",
        "key_version": 1,
        "created": 1700000000,
        "salt": bytes(range(0x40, 0x60)),
        "nonce": bytes(range(0xA0, 0xAC)),
        "context": {"backup_id": "8a3c1e0e-6d3b-4c52-9b8f-0d7c5e1b2a90",
                    "volume_id": "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9"},
        "metadata": {"version": "1.0.0", "volume_id": "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9",
                     "backup_name": "nightly", "size": 10, "container": "volumebackups",
                     "objects": [{"volume_f1e2-00001": {
                         "offset": 0, "length": 52428800, "compression": "zlib",
                         "md5": "9e107d9d372bb6826bd81d3542a419d6"}}],
                     "parent_id": None, "incremental": False},
    },
    {
        "name": "minimal: empty context and metadata, time 0, version 7",
        "key": hashlib.sha256(b"sealedmeta vector 2").digest(),
        "keyring": "k",
        "key_version": 7,
        "created": 0,
        "salt": b"\x00" * 32,
        "nonce": b"\xff" * 12,
        "context": {},
        "metadata": {},
    },
    {
        "name": "edges: longest name, largest version and time, every type",
        "key": b"\xff" * 32,
        "keyring": "A" + "z9._-" * 12 + "ZZZ",
        "key_version": envelope.MAX_KEY_VERSION,
        "created": envelope.MAX_CREATED,
        "salt": hashlib.sha256(b"salt").digest(),
        "nonce": hashlib.sha256(b"nonce").digest()[:12],
        "context": {"backup_id": "b", "volume_id": "\u00e9t\u00e9 \u2603 \U0001F512",
                    "A:z.0_-": "", "project_id": "x" * 1024},
        "metadata": {"": "", "\u00e9": "\u2603", "bytes": b"\x00\x01\xfe\xff",
                     "empty_bytes": b"", "ints": [0, -1, 127, 128, -33, 255, 65536,
                                                 2**32, -(2**63), 2**64 - 1],
                     "floats": [0.5, -1.25, 1e300, 1.0], "bools": [True, False],
                     "none": None, "nested": {"a": [[{"b": [[]]}]]}},
    },
]


SUITE2_INPUTS = [
    {
        "name": "suite 2: signed cinder-backup, version 3",
        "key": hashlib.sha256(b"sealedmeta suite 2 vector key").digest(),
        "signing_seed": hashlib.sha256(b"sealedmeta suite 2 vector seed").digest(),
        "keyring": "cinder-backup",
        "key_version": 3,
        "created": 1750000000,
        "salt": bytes(range(0x10, 0x30)),
        "nonce": bytes(range(0x30, 0x3C)),
        "context": {"backup_id": "0b5c8f2e-1a2b-4c3d-8e9f-0a1b2c3d4e5f",
                    "volume_id": "5e4d3c2b-1a09-4f8e-9d7c-6b5a49382716"},
        "metadata": {"version": "1.0.0", "backup_name": "signed",
                     "glance": {"image_id": "42", "os_distro": "debian"},
                     "size": 1, "bytes": b"\x00\xff"},
    },
]


def to_json_value(value):
    if type(value) is bytes:
        return {"$bytes": value.hex()}
    if type(value) is dict:
        return {k: to_json_value(v) for k, v in value.items()}
    if type(value) is list:
        return [to_json_value(v) for v in value]
    return value


def from_json_value(value):
    if type(value) is dict:
        if list(value) == ["$bytes"]:
            return bytes.fromhex(value["$bytes"])
        return {k: from_json_value(v) for k, v in value.items()}
    if type(value) is list:
        return [from_json_value(v) for v in value]
    return value


def compose(key, keyring, key_version, created, salt, nonce, context, metadata):
    """(envelope bytes, header bytes, payload bytes) from fixed inputs."""
    header = envelope.Header(
        envelope.FORMAT_VERSION, suites.PLAIN.id, keyring, key_version,
        crypto.key_id(key), types.MappingProxyType(dict(sorted(context.items()))),
        created, salt, nonce)
    header_bytes = envelope.encode_header(header)
    prefix = envelope.encode_prefix(header_bytes)
    info = crypto.info(envelope.FORMAT_VERSION, suites.PLAIN.id, keyring, key_version)
    payload = envelope.encode_payload(metadata)
    ciphertext, mac = crypto.encrypt(key, salt, nonce, info, prefix, payload)
    return envelope.assemble(prefix, ciphertext, mac), header_bytes, payload


def compose_signed(key, seed, keyring, key_version, created, salt, nonce,
                   context, metadata):
    """(envelope bytes, header bytes, payload bytes, signature) of suite 2."""
    from cryptography.hazmat.primitives.asymmetric import ed25519
    header = envelope.Header(
        envelope.FORMAT_VERSION, suites.SIGNED.id, keyring, key_version,
        crypto.key_id(key), types.MappingProxyType(dict(sorted(context.items()))),
        created, salt, nonce)
    header_bytes = envelope.encode_header(header)
    prefix = envelope.encode_prefix(header_bytes)
    info = crypto.info(envelope.FORMAT_VERSION, suites.SIGNED.id, keyring,
                       key_version)
    payload = envelope.encode_payload(metadata)
    ciphertext, mac = crypto.encrypt(key, salt, nonce, info, prefix, payload)
    unsigned = envelope.assemble(prefix, ciphertext, mac)
    signature = ed25519.Ed25519PrivateKey.from_private_bytes(seed).sign(unsigned)
    return unsigned + signature, header_bytes, payload, signature


def build_suite2():
    from sealedmeta import signing
    vectors = []
    for spec in SUITE2_INPUTS:
        raw, header_bytes, payload, signature = compose_signed(
            spec["key"], spec["signing_seed"], spec["keyring"],
            spec["key_version"], spec["created"], spec["salt"], spec["nonce"],
            spec["context"], spec["metadata"])
        public_key = signing.public_key_of(spec["signing_seed"])
        vectors.append({
            "name": spec["name"],
            "format_version": envelope.FORMAT_VERSION,
            "suite": suites.SIGNED.id,
            "key": spec["key"].hex(),
            "key_id": crypto.key_id(spec["key"]).hex(),
            "signing_seed": spec["signing_seed"].hex(),
            "public_key": public_key.hex(),
            "public_key_id": signing.public_key_id(public_key).hex(),
            "keyring": spec["keyring"],
            "key_version": spec["key_version"],
            "created": spec["created"],
            "salt": spec["salt"].hex(),
            "nonce": spec["nonce"].hex(),
            "context": spec["context"],
            "metadata": to_json_value(spec["metadata"]),
            "header": header_bytes.hex(),
            "payload": payload.hex(),
            "signature": signature.hex(),
            "envelope": raw.hex(),
            "armor": envelope.armor(raw),
        })
    return {
        "description": "Known-answer vectors of sealedmeta envelope format 1, suite 2"
                       " (suite 1 with suite byte 2 + Ed25519 over everything before"
                       " the signature). Generated once by tests/vectors/generate.py;"
                       " never edit or regenerate to make a test pass. Binary"
                       " metadata values: {\"$bytes\": hex}.",
        "vectors": vectors,
    }


def render_suite2():
    return json.dumps(build_suite2(), indent=1, ensure_ascii=True,
                      sort_keys=False) + "\n"


def build():
    vectors = []
    for spec in INPUTS:
        raw, header_bytes, payload = compose(
            spec["key"], spec["keyring"], spec["key_version"], spec["created"],
            spec["salt"], spec["nonce"], spec["context"], spec["metadata"])
        vectors.append({
            "name": spec["name"],
            "format_version": envelope.FORMAT_VERSION,
            "suite": suites.PLAIN.id,
            "key": spec["key"].hex(),
            "key_id": crypto.key_id(spec["key"]).hex(),
            "keyring": spec["keyring"],
            "key_version": spec["key_version"],
            "created": spec["created"],
            "salt": spec["salt"].hex(),
            "nonce": spec["nonce"].hex(),
            "context": spec["context"],
            "metadata": to_json_value(spec["metadata"]),
            "header": header_bytes.hex(),
            "payload": payload.hex(),
            "envelope": raw.hex(),
            "armor": envelope.armor(raw),
        })
    return {
        "description": "Known-answer vectors of sealedmeta envelope format 1, suite 1"
                       " (HKDF-SHA256 / AES-256-GCM / HMAC-SHA256). Generated once by"
                       " tests/vectors/generate.py; never edit or regenerate to make a"
                       " test pass. Binary metadata values: {\"$bytes\": hex}.",
        "vectors": vectors,
    }


def render():
    return json.dumps(build(), indent=1, ensure_ascii=True, sort_keys=False) + "\n"


def main(argv):
    files = ((PATH, render(), len(INPUTS)),
             (SUITE2_PATH, render_suite2(), len(SUITE2_INPUTS)))
    if "--check" in argv:
        status = 0
        for path, text, _ in files:
            with open(path, encoding="utf-8") as handle:
                same = handle.read() == text
            print("%s: %s" % (path, "up to date" if same
                              else "DIFFERS from the generator"))
            status = status or (0 if same else 1)
        return status
    for path, text, count in files:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
        print("wrote %s (%d vectors)" % (path, count))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
