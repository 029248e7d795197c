"""SIGKILL of ``sealedmeta --config-file DIR/sealedmeta.conf rewrap PATH``
against the REAL Barbican store, :data:`REWRAP_KILLS` times, plus
:data:`REKEY_KILLS` kills of ``rekey NAME --rewrap PATH`` (a rotation in
Barbican followed by the rewrap, killed at any step of either).

Envelopes are sealed under a Barbican-backed keyring (raw, armoured and
Cinder ``*_metadata`` forms). After every kill: the keyring loads from
Barbican with exactly one active version; every envelope opens with its
context; Barbican's own view (container entries and each secret's state,
read with python-barbicanclient, not through sealedmeta) is recorded:
pending secrets left by killed rotations, and moments where two versions
were marked active (a kill between "new active" and "old demoted", which
every reader resolves to the highest). At the end reruns finish: rewrap
leaves everything under the active version, a second one changes nothing,
verify passes.
"""

import json

from sealedmeta import keystores
from sealedmeta import Sealer
from sealedmeta.cmd.main import SealedMetaApp

from tests import sm_cli
from tests.reliability import crashkit
from tests.reliability import figures
from tests.reliability import test_crash_rewrap_tree as tree_kit
from tests.reliability.conftest import unique_name

REWRAP_KILLS = 50
REKEY_KILLS = 20
# Attempts allowed for the kills: a run that ends before its chosen line
# costs one more; far more than that many means the kill moments are wrong.
MAX_ATTEMPTS = 3 * (REWRAP_KILLS + REKEY_KILLS)
DIRS, PER_DIR = 5, 40


def barbican_states(client, container_name):
    """{state: count} of the secrets listed in the keyring's container, as
    Barbican has them (pending / active / decrypt-only / ...)."""
    api = client.client
    page = api.get("containers", params={"name": container_name, "limit": 10})
    docs = [c for c in page.get("containers", []) if c.get("name") == container_name]
    assert len(docs) == 1, docs
    states = {}
    for ref in docs[0].get("secret_refs", []):
        uuid = ref["secret_ref"].rstrip("/").rsplit("/", 1)[-1]
        try:
            meta = api.get("secrets/%s/metadata" % uuid).get("metadata", {})
        except Exception as exc:  # a withdrawn secret: deleted, still listed
            if getattr(exc, "status_code", None) == 404 or "404" in str(exc):
                states["gone"] = states.get("gone", 0) + 1
                continue
            raise
        state = meta.get("state", "?")
        states[state] = states.get(state, 0) + 1
    return states


def test_sigkill_rewrap_and_rekey_against_barbican(fast_barbican, tmp_path,
                                                   monkeypatch):
    bk = fast_barbican
    monkeypatch.setattr(tree_kit, "DIRS", DIRS)
    monkeypatch.setattr(tree_kit, "PER_DIR", PER_DIR)
    total = DIRS * PER_DIR
    seed, rng = crashkit.new_rng()
    name = unique_name("crash")
    conf = bk.write_conf(tmp_path / "sealedmeta.conf",
                         {("sealedmeta", "keyring"): name})
    repo = tmp_path / "unused-file-store"
    store = keystores.load(SealedMetaApp.load_conf([conf]))
    client = bk.barbican_client()
    store.create_keyring(name)
    opener = Sealer(store, name, cache_ttl=3600, refresh_interval=0)
    tree = tmp_path / "tree"
    expected = tree_kit.make_tree(tree, opener)
    assert len(expected) == total
    store.rotate(name)

    def run(argv):
        code, out, err = sm_cli.run(argv, tmp_path, repo, config=conf)
        assert code == 0, err
        return out

    def lines_of(argv):
        """The lines a full ``-v -v`` run prints (its progress: start-up,
        Keystone and Barbican requests, the rotation, one per rewritten
        file), as (lines before the first file, all lines)."""
        proc = sm_cli.start(["-v", "-v"] + argv, tmp_path, repo, config=conf)
        lines, code, _ = crashkit.count_lines(proc)
        assert code == 0, lines[-20:]
        first = next(i for i, line in enumerate(lines)
                     if line.startswith("sealedmeta: rewrapped "))
        return first, len(lines)

    full = {"rewrap": lines_of(["rewrap", str(tree)])}
    assert tree_kit.check_all(opener, expected) == {2: total}
    full["rekey"] = lines_of(["rekey", name, "--rewrap", str(tree)])

    kills = {"rewrap": 0, "rekey": 0}
    finished = {"rewrap": 0, "rekey": 0}
    two_actives = pending_seen = mid_run = attempt = 0
    versions = tree_kit.check_all(opener, expected)
    while kills["rewrap"] < REWRAP_KILLS or kills["rekey"] < REKEY_KILLS:
        assert attempt < MAX_ATTEMPTS, (
            "%d attempts gave only %s kills: the runs end before the line"
            " chosen to kill them at (%s finished first)"
            % (attempt, kills, finished))
        attempt += 1
        kind = "rekey" if (attempt % 3 == 0 and kills["rekey"] < REKEY_KILLS) \
            or kills["rewrap"] >= REWRAP_KILLS else "rewrap"
        active = store.get_keyring(name).active.number
        if kind == "rewrap" and versions.get(active, 0) == total:
            store.rotate(name)  # give the rewrap something to do
            active = store.get_keyring(name).active.number
        before = versions.get(active, 0)
        argv = (["rewrap", str(tree)] if kind == "rewrap"
                else ["rekey", name, "--rewrap", str(tree)])
        # Half of the moments anywhere before the first file is rewritten
        # (start-up, Keystone, Barbican reads, rotation), half while the
        # files are rewritten: after a line the command printed.
        first, every = full[kind]
        todo = total if kind == "rekey" else total - before
        if attempt % 2 and first:
            line = rng.randint(1, first)
        else:
            line = rng.randint(first + 1, max(first + 1, first + (
                every - first) * todo // total - 1))
        proc = sm_cli.start(["-v", "-v"] + argv, tmp_path, repo, config=conf)
        killed, _ = crashkit.kill_at_line(proc, line, rng)
        if killed:
            kills[kind] += 1
        else:
            finished[kind] += 1
            assert proc.returncode == 0, proc.unread[-2000:]
        # After the kill: one active version, every envelope opens.
        ring = crashkit.check_ring(store.get_keyring(name))
        versions = tree_kit.check_all(opener, expected)
        assert sum(versions.values()) == total
        if kind == "rewrap":
            done = versions.get(ring.active.number, 0) - before
            mid_run += 0 < done and versions.get(ring.active.number, 0) < total
        states = barbican_states(client, "sealedmeta:%s" % name)
        two_actives += states.get("active", 0) > 1
        pending_seen += states.get("pending", 0) > 0
    final_states = barbican_states(client, "sealedmeta:%s" % name)
    result = figures.record(
        "SIGKILL against Barbican (%s mode)" % bk.mode, seed=seed,
        envelopes=total, rewrap_kills=kills["rewrap"],
        rewrap_kills_mid_run=mid_run, rekey_kills=kills["rekey"],
        runs_that_finished_first=finished["rewrap"] + finished["rekey"],
        attempts=attempt, lines_of_a_rewrap=full["rewrap"][1],
        lines_of_a_rekey_rewrap=full["rekey"][1],
        checks_with_two_marked_active=two_actives,
        checks_with_pending_secrets=pending_seen,
        versions=store.get_keyring(name).active.number,
        barbican_states_at_end=json.dumps(final_states, sort_keys=True))
    assert kills["rewrap"] >= REWRAP_KILLS, result
    assert kills["rekey"] >= REKEY_KILLS, result

    # Reruns finish.
    out = run(["rewrap", str(tree), "-f", "json"])
    assert json.loads(out)["failed"] == 0
    active = store.get_keyring(name).active.number
    assert tree_kit.check_all(opener, expected) == {active: total}
    out = run(["rewrap", str(tree), "-f", "json"])
    assert json.loads(out)["already_current"] == total
    out = run(["verify", str(tree), "-f", "json"])
    assert json.loads(out)["summary"]["counts"]["valid"] == total
    # a rotation after all this works and leaves one active version
    assert store.rotate(name).number > active
    crashkit.check_ring(store.get_keyring(name))
    store.close()
