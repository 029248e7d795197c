"""What ``sealedmeta keyring status`` shows of each version of a keyring:
its state and the times that decide what may be done with it next.

No I/O: the keyring as read from the store, the settle window
(:func:`sealedmeta.admin.settle_window`) and, optionally, an audit report
of the backups (:class:`sealedmeta.audit.Report`) to count what uses each
version.
"""

import dataclasses

from sealedmeta import keyring as kr


@dataclasses.dataclass(frozen=True)
class VersionStatus:
    number: int
    key_id: str
    state: str
    created: int
    # When it stopped being active (None while active).
    deactivated: int = None
    # When retire / destroy stop being refused as too early (None while
    # active), and the seconds left until then from the time asked (0 once
    # passed).
    settle_ends: int = None
    settle_left: int = None
    # When a version pending destruction is destroyed (None: not pending).
    pending_destruction: int = None
    # Envelopes of the scanned backups under the version (None: not asked).
    backups: int = None


def status(ring, settle, at=None, report=None):
    """One :class:`VersionStatus` per version of *ring*, oldest first.

    *settle*: the settle window in seconds; *at*: the current time (epoch
    seconds, default now); *report*: an audit report of the backups, whose
    envelopes under each version are counted.
    """
    at = kr.now() if at is None else at
    rows = []
    for version in ring.versions:
        since = kr.inactive_since(ring, version.number)
        ends = left = None
        if since is not None:
            left = kr.settle_left(ring, version.number, settle, at)
            # settle_left counts from the whole second after `since`.
            ends = since + 1 + settle if settle > 0 else since
        backups = None
        if report is not None:
            backups = len(report.under(ring.name, version.key_id))
        rows.append(VersionStatus(
            number=version.number, key_id=version.key_id.hex(),
            state=version.state.value, created=version.created,
            deactivated=since, settle_ends=ends, settle_left=left,
            pending_destruction=version.destroy_after,
            backups=backups))
    return rows
