"""Where the scanning commands find envelopes besides the files under a
PATH: source plug-ins.

The files under a PATH are read through the carriers
(:mod:`sealedmeta.carriers`). Anything else that holds backups' envelopes
(a Ceph backup pool, the backups of a Cinder database) is a plug-in of the
``sealedmeta.sources`` entry-point namespace: a :class:`Source` adds its
options to a command and, from what was given, builds the objects an
audit reads (each with ``items()``, see :meth:`sealedmeta.audit.Auditor.run`).
A command asks for the sources it offers by entry-point name, so the
command line imports none of them: the Cinder adapter's sources are
loaded only by their entry points.
"""

import abc
import logging

LOG = logging.getLogger(__name__)

NAMESPACE = "sealedmeta.sources"


class Source(abc.ABC):
    """A kind of place backups' envelopes are kept, as the scanning
    commands offer it. Built without arguments by its entry point."""

    #: The option that names one, and its metavar (for messages).
    option = None
    metavar = None

    #: Exceptions a built source raises while it is read when it cannot
    #: be: the scan cannot run (exit status 2), nothing is judged.
    errors = ()

    #: The settle window (seconds) of the agents that seal what the last
    #: :meth:`build` named, when its configuration says (None: unknown).
    settle = None

    @abc.abstractmethod
    def add_arguments(self, parser, help=None):
        """Add its options to *parser* (*help*: that of :attr:`option`,
        in place of its own)."""

    @abc.abstractmethod
    def given(self, parsed_args):
        """Whether the options of this source were given."""

    @abc.abstractmethod
    def build(self, parsed_args, conf):
        """The sources named in *parsed_args* (``[]`` when none), with the
        limits of *conf*; a CommandError when they cannot be set up."""


def load(names):
    """The :class:`Source` plug-ins *names*, in that order. One that cannot
    be loaded is logged and left out: its options are then unknown to the
    command, which refuses them."""
    from stevedore import named

    def failed(manager, entrypoint, exc):
        LOG.warning("cannot load source %s from %s: %s", entrypoint.name,
                    NAMESPACE, exc)

    manager = named.NamedExtensionManager(
        NAMESPACE, names, name_order=True, invoke_on_load=True,
        on_load_failure_callback=failed)
    return [ext.obj for ext in manager if isinstance(ext.obj, Source)]


def given(plugins, parsed_args):
    return any(p.given(parsed_args) for p in plugins)


def build(plugins, parsed_args, conf):
    """``(sources, settle)``: every source named in *parsed_args*, and the
    longest settle window their agents use (None: no source says)."""
    found, windows = [], []
    for plugin in plugins:
        found += plugin.build(parsed_args, conf)
        if plugin.settle is not None:
            windows.append(plugin.settle)
    return found, (max(windows) if windows else None)


def errors(plugins):
    """What the sources of *plugins* raise when they cannot be read."""
    return tuple(e for p in plugins for e in p.errors)
