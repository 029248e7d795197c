"""The load script (tests/reliability/load.py) with small numbers: 4 agent
processes x 300 seal/open operations at 60/s each against one real
Barbican while a fifth process rekeys every 1.5 s. Zero failed seals or
opens; several rotations happened and were used. The full run (4 x 2,000,
by hand) is described in docs/source/threat-model.rst."""

import json
import subprocess
import sys

from tests.reliability import figures
from tests.reliability.load import __file__ as LOAD

AGENTS, OPS, RATE, REKEY = 4, 300, 60, 1.5


def test_agents_under_rotation_never_fail(fast_barbican, tmp_path):
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, LOAD, "--dir", fast_barbican.dir, "--agents", str(AGENTS),
         "--ops", str(OPS), "--rate", str(RATE), "--rekey-interval", str(REKEY),
         "--cache-ttl", "2", "--refresh-interval", "1", "--json", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    summary = json.loads(out.read_text())
    assert summary["failures"] == {} and summary["failed_opens"] == 0, summary
    assert summary["seals"] == AGENTS * OPS, summary
    assert summary["opens"] == AGENTS * OPS, summary
    # (an agent's first operations find no envelope of its peer yet)
    assert summary["peer_opens"] >= 0.8 * AGENTS * OPS, summary
    assert summary["rotations"] >= 2, summary
    assert len(summary["versions_sealed_under"]) >= 2, summary
    figures.record(
        "load (%s, small)" % summary["mode"], agents=AGENTS, ops_per_agent=OPS,
        rate_per_agent=RATE, rekey_interval_s=REKEY, wall_s=summary["wall_s"],
        seals=summary["seals"], opens=summary["opens"] + summary["peer_opens"],
        failed_opens=summary["failed_opens"], rotations=summary["rotations"],
        versions_sealed_under=json.dumps(summary["versions_sealed_under"]),
        barbican_requests=summary["barbican_requests"])
