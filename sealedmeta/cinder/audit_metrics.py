"""The figures of a ``cinder audit`` in Prometheus text format, for
node_exporter's textfile collector (``cinder audit --textfile FILE``).

Metric names and labels are documented in docs/source/audit.rst. The file is
written whole or not at all (prometheus-client's ``write_to_textfile``
writes a temporary file beside it and renames it), so the collector never
reads half a file. Imports nothing from Cinder.
"""

import os

from prometheus_client import CollectorRegistry
from prometheus_client import Gauge
from prometheus_client import write_to_textfile

PREFIX = "sealedmeta_cinder_audit"


class TextfileError(Exception):
    """The figures cannot be written where asked."""


def check_writable(path):
    """Fail before the audit runs when *path*'s directory cannot take the
    file (the audit of a whole cloud takes a while)."""
    directory = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise TextfileError("--textfile %s is a directory" % path)
    if not os.path.isdir(directory):
        raise TextfileError("--textfile %s: no directory %s" % (path, directory))
    if not os.access(directory, os.W_OK | os.X_OK):
        raise TextfileError("--textfile %s: cannot write in %s"
                            % (path, directory))


def registry_for(summary, started, ended, errors):
    """A CollectorRegistry holding the figures of *summary* (a
    :class:`sealedmeta.cinder.audit.Summary`), the audit's start and end
    (epoch seconds) and its *errors* (backups it could not judge)."""
    registry = CollectorRegistry()
    backups = Gauge(PREFIX + "_backups", "Backups per class.", ["class"],
                    registry=registry)
    for klass, count in summary.classes.items():
        backups.labels(klass).set(count)
    projects = Gauge(PREFIX + "_project_backups",
                     "Backups per project and class (classes with none are"
                     " left out).", ["project_id", "class"], registry=registry)
    for project, counts in sorted(summary.projects.items(),
                                  key=lambda item: str(item[0])):
        for klass, count in counts.items():
            if count:
                projects.labels(str(project), klass).set(count)
    versions = Gauge(PREFIX + "_key_version_backups",
                     "Sealed-valid backups per key version.", ["key_version"],
                     registry=registry)
    for version, count in sorted(summary.key_versions.items()):
        versions.labels(str(version)).set(count)
    Gauge(PREFIX + "_errors", "Backups the audit could not judge (their"
          " object or the key store could not be read).",
          registry=registry).set(errors)
    Gauge(PREFIX + "_start_time_seconds", "When the audit started (Unix"
          " time).", registry=registry).set(started)
    Gauge(PREFIX + "_end_time_seconds", "When the audit ended (Unix time).",
          registry=registry).set(ended)
    Gauge(PREFIX + "_duration_seconds", "How long the audit took.",
          registry=registry).set(ended - started)
    return registry


def write(path, summary, started, ended, errors):
    """Write the figures to *path* atomically."""
    try:
        write_to_textfile(path, registry_for(summary, started, ended, errors))
    except OSError as exc:
        raise TextfileError("cannot write --textfile %s: %s"
                            % (path, exc.strerror or exc)) from None
