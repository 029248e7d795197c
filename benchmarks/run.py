"""sealedmeta benchmarks: every figure is measured in this run, next to its
baseline, and reported as a ratio (never asserted in tests).

    python benchmarks/run.py [--quick] [--json FILE]

Figures:
  seal_open_us        seal + open of a realistic ~2 KiB Glance metadata dict
  floor_us            the same run's cost of only the primitive calls one
                      seal + open makes (msgpack pack/unpack of header and
                      payload, os.urandom, HKDF x2, AES-GCM, HMAC x2)
  fernet_msgpack_us   cryptography Fernet encrypt + decrypt of the msgpack'd dict
"""

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import msgpack
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import sealedmeta
from sealedmeta import crypto


def glance_metadata():
    """A realistic volume_meta-like dict of about 2 KiB."""
    glance = {
        "image_id": "1b6a2f4e-7c0d-4b8e-9a3f-5d2c1e0f9a87",
        "image_name": "ubuntu-24.04-server-cloudimg-amd64",
        "checksum": "0f3c2b9a7d1e4f5a6b8c9d0e1f2a3b4c",
        "container_format": "bare",
        "disk_format": "qcow2",
        "min_disk": "10",
        "min_ram": "512",
        "size": "2361393152",
        "os_distro": "ubuntu",
        "os_version": "24.04",
        "os_type": "linux",
        "architecture": "x86_64",
        "hw_disk_bus": "virtio",
        "hw_vif_model": "virtio",
        "hw_qemu_guest_agent": "yes",
        "hw_machine_type": "q35",
        "hw_firmware_type": "uefi",
        "os_require_quiesce": "yes",
        "billing_code": "bc-7730-ubuntu-pro",
        "license_key_ref": "lic-3f9a8b7c6d5e4f3a2b1c",
        "owner_specified.openstack.md5": "",
        "owner_specified.openstack.sha256": "9" * 64,
        "owner_specified.openstack.object": "images/ubuntu-24.04",
        "signature_verified": "False",
    }
    return {
        "version": 2,
        "volume-base-metadata": {
            "id": "5e9c1a7b-2f3d-4c8e-9b6a-0d1e2f3a4b5c",
            "size": 20, "status": "available", "bootable": True,
            "provider_auth": "CHAP user-4f2a secret-7b3c9d1e",
            "encryption_key_id": None,
            "display_name": "web-01-root",
            "display_description": "root disk of web-01 " * 8,
            "availability_zone": "nova",
        },
        "volume-metadata": {"team": "web", "env": "prod",
                            "cost-center": "cc-4410"},
        "volume-glance-metadata": glance,
        "padding": "x" * 700,
    }


def median_us(fn, rounds, inner):
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - start) * 1e6 / inner)
    return statistics.median(samples)


def bench_core(rounds, inner):
    metadata = glance_metadata()
    context = {"backup_id": "2c4e6a8b-0d1f-4e3a-9c7b-5a3d1f0e2c4b",
               "volume_id": "5e9c1a7b-2f3d-4c8e-9b6a-0d1e2f3a4b5c"}
    workdir = tempfile.mkdtemp(prefix="sealedmeta-bench-")
    store = sealedmeta.FileKeyStore(os.path.join(workdir, "keys"))
    store.create_keyring("bench")
    sealer = sealedmeta.Sealer(store, keyring="bench")
    sealed = sealer.seal(metadata, context)
    assert sealer.open(sealed, context) == metadata

    def seal_open():
        sealer.open(sealer.seal(metadata, context), context)

    key = store.get_key("bench", 1)
    info = crypto.info(1, 1, "bench", 1)
    header_fields = [1, 1, "bench", 1, b"k" * 16, context, 1700000000,
                     b"s" * 32, b"n" * 12]

    def floor():
        # seal
        payload = msgpack.packb(metadata, use_bin_type=True)
        header = msgpack.packb(header_fields, use_bin_type=True)
        salt_nonce = os.urandom(44)
        okm = HKDF(hashes.SHA256(), 64, salt_nonce[:32], info).derive(key)
        ct = AESGCM(okm[:32]).encrypt(salt_nonce[32:], payload, header)
        mac = hmac.HMAC(okm[32:], hashes.SHA256())
        mac.update(header)
        mac.update(ct)
        tag = mac.finalize()
        # open
        msgpack.unpackb(header, raw=False)
        okm = HKDF(hashes.SHA256(), 64, salt_nonce[:32], info).derive(key)
        mac = hmac.HMAC(okm[32:], hashes.SHA256())
        mac.update(header)
        mac.update(ct)
        mac.verify(tag)
        msgpack.unpackb(AESGCM(okm[:32]).decrypt(salt_nonce[32:], ct, header),
                        raw=False)

    fernet = Fernet(Fernet.generate_key())

    def fernet_msgpack():
        token = fernet.encrypt(msgpack.packb(metadata, use_bin_type=True))
        msgpack.unpackb(fernet.decrypt(token), raw=False)

    # Interleave the three so drift in machine load hits them alike.
    results = {"seal_open_us": [], "floor_us": [], "fernet_msgpack_us": []}
    for _ in range(rounds):
        results["seal_open_us"].append(median_us(seal_open, 1, inner))
        results["floor_us"].append(median_us(floor, 1, inner))
        results["fernet_msgpack_us"].append(median_us(fernet_msgpack, 1, inner))
    figures = {k: round(statistics.median(v), 2) for k, v in results.items()}
    figures["seal_open_vs_floor"] = round(
        figures["seal_open_us"] / figures["floor_us"], 3)
    figures["seal_open_vs_fernet_msgpack"] = round(
        figures["seal_open_us"] / figures["fernet_msgpack_us"], 3)
    figures["metadata_bytes"] = len(msgpack.packb(metadata, use_bin_type=True))
    figures["envelope_bytes"] = len(sealed)
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds (well under 2 minutes)")
    parser.add_argument("--json", metavar="FILE", help="write figures as JSON")
    args = parser.parse_args(argv)
    rounds, inner = (15, 200) if args.quick else (41, 1000)
    figures = {"machine": {"python": platform.python_version(),
                           "platform": platform.platform(),
                           "cpus": os.cpu_count()}}
    figures.update(bench_core(rounds, inner))
    width = max(len(k) for k in figures)
    for name, value in figures.items():
        if name != "machine":
            print("%-*s  %s" % (width, name, value))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(figures, handle, indent=2, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
