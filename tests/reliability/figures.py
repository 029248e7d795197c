"""Figures measured by the reliability suite, printed at the end of the run.

Tests call :func:`record`; the conftest prints every record in pytest's
terminal summary (no ``-s`` needed), and appends it as one JSON line to
``$SEALEDMETA_FIGURES`` when that is set, so a run leaves a machine-readable
list of what it measured (docs/source/threat-model.rst quotes them).
"""

import json
import os
import time

RECORDS = []


def record(name, **values):
    entry = {"name": name, "time": int(time.time())}
    entry.update(values)
    RECORDS.append(entry)
    path = os.environ.get("SEALEDMETA_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(entry, sort_keys=True) + "\n")
    return entry


def lines():
    out = []
    for entry in RECORDS:
        values = ", ".join("%s=%s" % (k, _fmt(v)) for k, v in entry.items()
                           if k not in ("name", "time"))
        out.append("%s: %s" % (entry["name"], values))
    return out


def _fmt(value):
    if isinstance(value, float):
        return "%.3g" % value if abs(value) < 100 else "%.0f" % value
    return str(value)
