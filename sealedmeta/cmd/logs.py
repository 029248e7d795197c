"""oslo.log for the command line, next to cliff's console output.

oslo.log is configured from the configuration files (``log_file``,
``use_syslog``, ``use_journal``, ``debug``, ``default_log_levels``, ...) and
writes to those destinations in its own format. The terminal stays cliff's:
one ``sealedmeta: message`` line on standard error per warning or error
(more with ``-v`` / ``--debug``), and nothing on standard output, which
carries the commands' results (``-f json``). So the stream handlers
oslo.log would add (its standard-output fallback, ``use_stderr``) are left
out: cliff's console handler already is the standard-error destination.
"""

import logging
import sys

from oslo_config import cfg
from oslo_log import log as oslo_log

from sealedmeta import exceptions

PRODUCT = "sealedmeta"


def register_options(conf):
    oslo_log.register_options(conf)


def _is_console(handler):
    if isinstance(handler, logging.FileHandler):
        return False
    stream = getattr(handler, "stream", None)
    return isinstance(handler, logging.StreamHandler) and stream in (
        sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__)


def setup(conf, version="unknown", verbose_level=1):
    """``oslo_log.setup(conf, 'sealedmeta')``, keeping cliff's handlers."""
    root = logging.getLogger()
    cliff_handlers = list(root.handlers)
    try:
        oslo_log.setup(conf, PRODUCT, version=version)
    except (cfg.Error, ValueError, OSError, RuntimeError, ImportError) as exc:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in cliff_handlers:
            root.addHandler(handler)
        raise exceptions.SealedMetaError(
            "cannot set up logging: %s" % exc) from None
    for handler in list(root.handlers):
        if _is_console(handler):
            root.removeHandler(handler)
    for handler in cliff_handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    if verbose_level >= 2 or conf.debug:
        root.setLevel(logging.DEBUG)
