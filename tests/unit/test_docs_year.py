"""The keys page's year of rotation, run as written.

docs/source/keys.rst shows what the timer's steps print over a year. Its
``text`` block starting ``# day 0`` is run here: the ``$`` commands of each
``# day N`` part by one bash in a scratch HOME (the default file key store,
as the page's other transcripts), the clock moved forward to day N
between the parts by moving every time the keyring records (created,
deactivated, destroy_after) back by as much -- all that the commands
decide on is how long ago those times were. What each command prints
must be what the page shows, key ids and times aside.
"""

import difflib
import json
import re

from tests import doc_blocks
from tests.unit.test_docs_examples import _environment

PAGE = "docs/source/keys.rst"
RING = "cinder-backup"
DAY = 86400
_DAY = re.compile(r"# day (\d+)\b")
_TIMES = ("created", "deactivated", "destroy_after")


def year_block():
    """[(day, [doc_blocks.Command])] of the page's year."""
    blocks = [(line, body) for line, body in doc_blocks.code_blocks(PAGE, "text")
              if body.startswith("# day 0")]
    assert len(blocks) == 1, "expected one '# day 0' text block in %s" % PAGE
    lineno, body = blocks[0]
    days = []
    for offset, line in enumerate(body.splitlines()):
        where = "%s:%d" % (PAGE, lineno + offset)
        match = _DAY.match(line)
        if match:
            day = int(match.group(1))
            assert not days or day > days[-1][0], where + ": days go forward"
            days.append((day, []))
        elif line.startswith("$ "):
            assert days, where + ": a command before the first day"
            days[-1][1].append(doc_blocks.Command(where, line[2:]))
        else:
            assert days and days[-1][1], where + ": output before a command"
            days[-1][1][-1].expected.append(line)
    return days


def _move_clock(home, seconds):
    """As if *seconds* passed: every time the keyring records, that much
    earlier."""
    path = home / ".local/share/sealedmeta/keys" / RING / "keyring.json"
    data = json.loads(path.read_text())
    for version in data["versions"]:
        for field in _TIMES:
            if field in version:
                version[field] -= seconds
    path.write_text(json.dumps(data, indent=1))


def run_year(tmp_path):
    """[(Command, what it printed)] of the whole year."""
    home = tmp_path / "home"
    work = home / "work"
    work.mkdir(parents=True)
    env = _environment(home)
    ran, today = [], 0
    for day, commands in year_block():
        if day > today:
            _move_clock(home, (day - today) * DAY)
            today = day
        ran += zip(commands, doc_blocks.run_transcript(commands, str(work), env))
    return ran


def test_a_year_of_rotation(tmp_path):
    problems = []
    ran = run_year(tmp_path)
    assert len(ran) > 10
    for command, actual in ran:
        want = doc_blocks.normalise(command.expected)
        got = doc_blocks.normalise(actual)
        if want != got:
            diff = difflib.unified_diff(want.splitlines(), got.splitlines(),
                                        "documented", "actual", lineterm="")
            problems.append("%r\n%s" % (command, "\n".join(diff)))
    assert not problems, "\n\n".join(problems)


def test_the_year_runs_the_units_steps():
    """The page's timer runs are the three steps of the systemd unit."""
    unit = doc_blocks.read("etc/systemd/sealedmeta-rotation.service")
    steps = [line.split(" ", 3)[3] for line in unit.splitlines()
             if line.startswith("ExecStart=")]
    steps = [s.replace("${KEYRING}", RING).replace("${MAX_AGE}", "90d")
             .replace("--scan-cinder ${CINDER_CONF}", "--scan backup")
             for s in steps]
    steps = ["sealedmeta " + s for s in steps]
    assert len(steps) == 3
    full = 0
    for day, commands in year_block():
        # A day's timer run: the unit's steps in its order (the last day
        # shown stops after the rotation).
        run = [c.text for c in commands if c.text in steps]
        assert run == steps[:len(run)], day
        full += run == steps
    assert full >= 3
