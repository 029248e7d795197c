"""A one-line progress bar on a terminal's standard error (nothing otherwise)."""

import time

from sealedmeta import cli_common as common


class ProgressBar:
    """Callable ``(done, total)``; redraws at most every *interval* seconds."""

    WIDTH = 30

    def __init__(self, stream, label, interval=0.1, clock=time.monotonic):
        self.stream = stream
        self.label = label
        self.interval = interval
        self._clock = clock
        self._last = None
        self._drawn = False

    def __call__(self, done, total):
        now = self._clock()
        if done < total and self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        filled = self.WIDTH * done // total if total else self.WIDTH
        self.stream.write("\r%s [%s%s] %d/%d" % (
            self.label, "#" * filled, "." * (self.WIDTH - filled), done, total))
        self.stream.flush()
        self._drawn = True

    def close(self):
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


class NoProgress:
    def __call__(self, done, total):
        return None

    def close(self):
        return None


def for_stream(stream, label):
    """A ProgressBar when *stream* is a terminal, else a silent stand-in."""
    if common.is_terminal(stream):
        return ProgressBar(stream, label)
    return NoProgress()
