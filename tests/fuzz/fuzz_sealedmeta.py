"""Atheris (libFuzzer) harness over sealedmeta's readers of untrusted bytes.

Usage::

    python tests/fuzz/fuzz_sealedmeta.py TARGET [libFuzzer flags] [CORPUS_DIR]
    python tests/fuzz/fuzz_sealedmeta.py --seed-corpus TARGET DIR

Targets (each gets the fuzz input as the untrusted bytes):

``dearmor``
    :func:`sealedmeta.dearmor` on the input as ASCII text (and as bytes),
    then :func:`sealedmeta.inspect` on what it returns.
``parse``
    :func:`sealedmeta.envelope.parse`, :func:`sealedmeta.envelope.load` and
    :func:`sealedmeta.inspect` on the input.
``open``
    :meth:`Sealer.open` for a fixed context, then ``verify`` and ``rewrap``,
    with a keyring whose key is fixed, so the corpus (genuine envelopes under
    that key) stays valid from run to run.
``payload``
    the input as the *plaintext* of an envelope genuinely sealed under the
    fixed key (what only a key holder can make), then :meth:`Sealer.open`:
    the payload decoder behind authentication.
``selftest``
    raises a non-library exception on purpose (run_fuzz.py checks that a
    crash is reported).
``audit``
    the input written to a file (a raw / armoured envelope file, or, when it
    starts like JSON, a Cinder ``*_metadata`` object) and
    ``sealedmeta.audit.Auditor.run`` over it, as ``sealedmeta verify`` does;
    the report must serialise to JSON.

Only the library's own exceptions (``SealedMetaError``) may escape a call:
anything else propagates, and atheris reports it as a crash (exit status
non-zero, the input saved under ``-artifact_prefix``). Successes are checked
too: what opens must be genuine (one of the seeds, byte for byte), and the
auditor must never report a changed envelope ``valid``; a Cinder carrier
that fails with a non-library exception (which the scanner turns into a
``malformed`` finding) is a crash here.
"""

import hashlib
import json
import os
import sys
import tempfile
import types

import atheris

with atheris.instrument_imports(include=["sealedmeta"]):
    import sealedmeta
    from sealedmeta import audit
    from sealedmeta import carriers as sm_carriers
    from sealedmeta import crypto
    from sealedmeta import envelope
    from sealedmeta import exceptions
    from sealedmeta import keyring as kr
    from sealedmeta import suites
    from sealedmeta.cinder import carrier as _cinder_carrier  # noqa: F401
    from sealedmeta.keystores.file import FileKeyStore

RING = "cinder-backup"
# Fixed keys: the seed corpus stays genuine across runs and machines.
KEYS = {1: hashlib.sha256(b"sealedmeta fuzz key 1").digest(),
        2: hashlib.sha256(b"sealedmeta fuzz key 2").digest()}
CONTEXT = {"backup_id": "9d1e3d2c-0c5e-4b1f-a1d2-7f1c2b3a4d5e",
           "volume_id": "3f2e1d0c-b9a8-4765-8432-10fedcba9876"}
TARGETS = ("dearmor", "parse", "open", "payload", "audit")

_WORLD = None


class World:
    """A file key store in a private temporary directory, holding RING with
    version 1 decrypt-only and version 2 active under the fixed keys."""

    def __init__(self):
        # In the directory run_fuzz.py gives (and removes: libFuzzer ends the
        # process with exit(), so no cleanup of ours would run), else tmpfs
        # when there is one (the audit target writes a file per input).
        base = os.environ.get("SEALEDMETA_FUZZ_DIR")
        if base is None and os.access("/dev/shm", os.W_OK):
            base = "/dev/shm"
        self.dir = tempfile.mkdtemp(prefix="sealedmeta-fuzz-", dir=base)
        self.store = FileKeyStore(os.path.join(self.dir, "keys"))
        versions = (
            kr.KeyVersion(1, crypto.key_id(KEYS[1]), kr.KeyState.DECRYPT_ONLY, 1),
            kr.KeyVersion(2, crypto.key_id(KEYS[2]), kr.KeyState.ACTIVE, 2))
        self.store.import_keyring(kr.KeyRing(RING, versions), dict(KEYS))
        # refresh_interval: an unknown key id costs a disk read at most once
        # a second, as in production (the rate limit is part of the design)
        self.sealer = sealedmeta.Sealer(self.store, RING, refresh_interval=1.0)
        self.carriers = sm_carriers.load_carriers()
        self.auditor = audit.Auditor(self.store, carriers=self.carriers)
        self.files = os.path.join(self.dir, "files")
        os.mkdir(self.files)
        self.raw_path = os.path.join(self.files, "envelope")
        # Named as Cinder names it: the carrier takes the backup from it.
        self.cinder_path = os.path.join(
            self.files, "volume_%s_20250101000000_backup_%s_metadata"
            % (CONTEXT["volume_id"], CONTEXT["backup_id"]))
        self.genuine = set()


def world():
    global _WORLD
    if _WORLD is None:
        _WORLD = World()
    return _WORLD


# -- seed corpus ----------------------------------------------------------------

def _seal_under(version, metadata, context, salt, nonce, created=1700000000,
                payload=None):
    """A genuine envelope under a fixed version key (deterministic); with
    *payload*, those bytes are sealed as they are."""
    header = envelope.Header(
        envelope.FORMAT_VERSION, suites.PLAIN.id, RING, version,
        crypto.key_id(KEYS[version]),
        types.MappingProxyType(dict(sorted(context.items()))), created, salt,
        nonce)
    prefix = envelope.encode_prefix(envelope.encode_header(header))
    info = crypto.info(envelope.FORMAT_VERSION, suites.PLAIN.id, RING, version)
    if payload is None:
        payload = envelope.encode_payload(metadata)
    ciphertext, mac = crypto.encrypt(KEYS[version], salt, nonce, info, prefix,
                                     payload)
    return envelope.assemble(prefix, ciphertext, mac)


METADATA = [
    {"volume_id": CONTEXT["volume_id"]},
    {"volume_id": CONTEXT["volume_id"], "size": 10,
     "glance_metadata": {"image_id": "0b1c", "os_distro": "debian",
                         "billing_code": "BC-1", "licence": "L-2"},
     "user_metadata": {"k": "v"}, "nested": [1, 2.5, None, True, b"\x00"]},
    {"pad": "x" * 2000, "n": -1, "list": list(range(40))},
]


def genuine_envelopes():
    out = []
    for i, meta in enumerate(METADATA):
        for version in (1, 2):
            out.append(_seal_under(version, meta, CONTEXT,
                                   bytes([i, version]) * 16,
                                   bytes([version, i]) * 6))
    out.append(_seal_under(2, {"a": 1}, {"backup_id": "other", "volume_id": "v"},
                           bytes(32), bytes(12)))
    return out


def cinder_object(raw, backup_id=CONTEXT["backup_id"],
                  volume_id=CONTEXT["volume_id"]):
    return json.dumps({
        "backup_id": backup_id, "volume_id": volume_id, "backup_name": "b",
        "backup_description": None, "created_at": "2025-01-01 00:00:00",
        "version": "1.0.0", "objects": [{"volume_0001_backup-00001": {
            "compression": "zlib", "length": 1024, "md5": "0" * 32,
            "offset": 0}}],
        "volume_meta": sealedmeta.armor(raw)}, indent=2, sort_keys=True).encode()


def seed_corpus(target, directory):
    os.makedirs(directory, exist_ok=True)
    seeds = []
    for raw in genuine_envelopes():
        armour = sealedmeta.armor(raw).encode()
        if target == "dearmor":
            seeds += [armour]
        elif target == "selftest":
            seeds += [raw[:3]]
        elif target == "payload":
            pass  # below
        elif target == "audit":
            seeds += [raw, armour + b"\n", cinder_object(raw)]
        else:
            seeds += [raw, armour]
    if target == "payload":
        seeds += [envelope.encode_payload(m) for m in METADATA] + [
            b"\x80", b"\x81\xa1a\x91\x91\x91\xc0"]
    seeds += [b"", b"SMETA\x01", b"sealedmeta:"]
    for data in seeds:
        name = hashlib.sha1(data).hexdigest()
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(data)
    return len(seeds)


# -- targets ---------------------------------------------------------------------

def _library_errors_only(call, *args):
    """call(*args); None when it raised a library error (anything else
    propagates: a crash)."""
    try:
        return call(*args)
    except exceptions.SealedMetaError:
        return None


def target_dearmor(data):
    text = data.decode("latin-1")
    raw = _library_errors_only(sealedmeta.dearmor, text)
    raw_b = _library_errors_only(sealedmeta.dearmor, data)
    if raw is not None:
        # accepted only when canonical: the armour of the result is the input
        assert sealedmeta.armor(raw) == text, "dearmor accepted a non-canonical armour"
        assert raw_b == raw
        _library_errors_only(sealedmeta.inspect, raw)
    else:
        assert raw_b is None or not text.isascii()


def target_parse(data):
    _library_errors_only(envelope.parse, data)
    _library_errors_only(envelope.load, data)
    header = _library_errors_only(sealedmeta.inspect, data)
    if header is not None:
        json.dumps(header.as_dict())  # what `sealedmeta inspect -f json` prints


def target_open(data):
    w = world()
    genuine = w.genuine or _genuine_set(w)
    meta = _library_errors_only(w.sealer.open, data, CONTEXT)
    if meta is not None:
        raw = envelope.load(data)
        assert raw in genuine, "a changed envelope OPENED: %r" % data[:64]
    header = _library_errors_only(w.sealer.verify, data)
    if header is not None:
        assert envelope.load(data) in genuine, "a changed envelope verified"
    _library_errors_only(w.sealer.rewrap, data)


def target_payload(data):
    w = world()
    raw = _seal_under(2, None, CONTEXT, bytes(32), bytes(12), payload=data)
    meta = _library_errors_only(w.sealer.open, raw, CONTEXT)
    if meta is not None:
        assert type(meta) is dict
        envelope.check_metadata(meta)   # what opens obeys the payload rules
        json.dumps(meta, default=repr)


def _genuine_set(w):
    w.genuine.update(genuine_envelopes())
    return w.genuine


def target_audit(data):
    w = world()
    genuine = w.genuine or _genuine_set(w)
    cinder = data.lstrip(b" \t\r\n")[:1] == b"{"
    path, other = ((w.cinder_path, w.raw_path) if cinder
                   else (w.raw_path, w.cinder_path))
    with open(path, "wb") as handle:
        handle.write(data)
    if os.path.exists(other):
        os.unlink(other)
    report = _library_errors_only(w.auditor.run, [path])
    if report is None:
        return
    json.dumps(report.as_dict(), sort_keys=True)
    for finding in report.findings:
        assert finding.status in audit.STATUSES
        reason = finding.reason or ""
        # examine() turns a carrier's non-library exception into a finding;
        # here it is a crash of that carrier
        assert " failed: " not in reason or not reason.startswith("carrier "), reason
        if finding.status == audit.VALID:
            if cinder:
                obj = json.loads(data.decode("utf-8"))
                raw = sealedmeta.dearmor(obj["volume_meta"])
            else:
                raw = envelope.load(data)
            assert raw in genuine, "audit called a changed envelope valid"


def target_selftest(data):
    """Fails on purpose once an input gets past the magic: run_fuzz.py runs
    it first and requires a crash, so a harness that could not report one
    does not pass silently."""
    if data.startswith(envelope.MAGIC):
        raise RuntimeError("self-test: a non-library exception escaped")
    _library_errors_only(envelope.parse, data)


TARGET_FUNCS = {"selftest": target_selftest,
                "dearmor": target_dearmor, "parse": target_parse,
                "open": target_open, "payload": target_payload,
                "audit": target_audit}


def main(argv):
    if len(argv) >= 2 and argv[1] == "--seed-corpus":
        print(seed_corpus(argv[2], argv[3]))
        return 0
    if len(argv) < 2 or argv[1] not in TARGET_FUNCS:
        sys.stderr.write("usage: %s {%s} [libFuzzer flags] [CORPUS]\n"
                         % (argv[0], "|".join(TARGETS)))
        return 2
    target = TARGET_FUNCS[argv[1]]
    world()  # set up before fuzzing starts (not counted as an input)
    atheris.Setup([argv[0]] + argv[2:], target)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
