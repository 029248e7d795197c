"""Scenarios whose premise is a matter of time (a step done inside an
agent's cache_ttl, a secret younger than an age): a try whose premise did
not hold on this machine says nothing either way, so it is run again with
longer times instead of failing. The verdict then does not depend on the
machine's speed; the number of tries is capped and the failure names why
each try said nothing.
"""

import pytest


class Inconclusive(Exception):
    """Raised by a try whose premise did not hold (it took too long)."""


def until_conclusive(run, settings):
    """``run(setting, attempt)`` for each of *settings* in turn, until one
    try is not :class:`Inconclusive`; fail when none was."""
    why = []
    for attempt, setting in enumerate(settings):
        try:
            return run(setting, attempt)
        except Inconclusive as exc:
            print("\ntry %d (%s) inconclusive: %s" % (attempt, setting, exc))
            why.append(str(exc))
    pytest.fail("every try was inconclusive: %s" % why)
