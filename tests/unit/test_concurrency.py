"""Requirement 9: rotations by many OS processes at once."""

import json
import multiprocessing
import os
import stat

from sealedmeta import FileKeyStore
from sealedmeta import Sealer
from sealedmeta import crypto
from sealedmeta import keyring as kr

from tests import sm_cli
from tests.unit import _rotation_worker

PROCESSES = 8
ROTATIONS = 4
NAME = "cinder-backup"


def test_concurrent_rotations_by_processes(tmp_path):
    repo = str(tmp_path / "keys")
    store = FileKeyStore(repo)
    first = store.create_keyring(NAME)
    before = Sealer(store, keyring=NAME).seal({"before": True}, {"worker": "none"})

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(PROCESSES)  # all rotate at once, not as they come up
    outputs = [str(tmp_path / ("worker-%d.json" % i)) for i in range(PROCESSES)]
    procs = [ctx.Process(target=_rotation_worker.rotate_and_seal,
                         args=(repo, NAME, i, ROTATIONS, start, outputs[i]))
             for i in range(PROCESSES)]
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join(120)
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join()
    assert [p.exitcode for p in procs] == [0] * PROCESSES
    pids = {p.pid for p in procs}
    assert len(pids) == PROCESSES

    ring = store.get_keyring(NAME)
    total = 1 + PROCESSES * ROTATIONS
    # version numbers contiguous 1..N, N = 1 + total rotations
    assert [v.number for v in ring.versions] == list(range(1, total + 1))
    # exactly one active, the newest; all others still openable
    assert [v.number for v in ring.versions if v.state is kr.KeyState.ACTIVE] == [total]
    assert all(v.state is kr.KeyState.DECRYPT_ONLY for v in ring.versions[:-1])
    assert (ring.versions[0].key_id, ring.versions[0].created) == (
        first.versions[0].key_id, first.versions[0].created)
    # every key file matches its key id, is private, and no temp file is left
    for v in ring.versions:
        path = os.path.join(repo, NAME, "v%d.key" % v.number)
        with open(path, "rb") as handle:
            assert crypto.key_id(handle.read()) == v.key_id
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len({v.key_id for v in ring.versions}) == total
    assert sm_cli.temp_files(repo) == []

    # each rotation got its own number, and the numbers it reported are the ring's
    results = []
    for path in outputs:
        with open(path) as handle:
            results.extend(json.load(handle))
    assert len(results) == PROCESSES * ROTATIONS
    assert sorted(r["rotated_to"] for r in results) == list(range(2, total + 1))
    for r in results:
        assert ring.version(r["rotated_to"]).key_id.hex() == r["key_id"]
    assert {r["metadata"]["pid"] for r in results} == pids

    # every envelope sealed during the race opens, for its own context only
    opener = Sealer(store, keyring=NAME)
    for r in results:
        raw = bytes.fromhex(r["envelope"])
        assert opener.open(raw, r["context"]) == r["metadata"]
    assert opener.open(before, {"worker": "none"}) == {"before": True}
    # and a new seal lands on the single active version
    assert Sealer(store, keyring=NAME).verify(
        Sealer(store, keyring=NAME).seal({}, {})).key_version == total
