"""Child-process body of test_concurrency (imported by 'spawn' children)."""

import json
import os
import time

from sealedmeta import FileKeyStore
from sealedmeta import Sealer


def rotate_and_seal(repo, name, worker, rotations, start, out_path):
    """Wait at the *start* barrier (every worker imported and ready), then
    rotate *rotations* times, sealing after each."""
    store = FileKeyStore(repo)
    store.get_keyring(name)  # warm up imports and caches before the race
    start.wait(60)
    results = []
    for round_ in range(rotations):
        version = store.rotate(name)
        # cache_ttl=0: seal under whatever is active now (maybe a racer's)
        sealer = Sealer(store, keyring=name, cache_ttl=0)
        context = {"worker": str(worker), "round": str(round_)}
        metadata = {"worker": worker, "round": round_, "rotated_to": version.number,
                    "pid": os.getpid()}
        sealed = sealer.seal(metadata, context)
        results.append({"rotated_to": version.number, "key_id": version.key_id.hex(),
                        "context": context, "metadata": metadata,
                        "envelope": sealed.hex()})
        time.sleep(0.001 * (worker % 3))  # vary the interleaving a little
    tmp = out_path + ".part"
    with open(tmp, "w") as handle:
        json.dump(results, handle)
    os.replace(tmp, out_path)
