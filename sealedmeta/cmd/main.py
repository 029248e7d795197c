"""The cliff application behind the ``sealedmeta`` console script."""

import logging
import os
import re
import sys
import warnings

from cliff import app
from cliff import commandmanager
from cliff import display
from oslo_config import cfg

from sealedmeta import cli_common as common
from sealedmeta import conf as sm_conf
from sealedmeta import exceptions
from sealedmeta import keystores
from sealedmeta import sealer as sm_sealer
from sealedmeta.cmd import formatters
from sealedmeta.cmd import logs

try:
    from importlib import metadata as _metadata
    VERSION = _metadata.version("sealedmeta")
except Exception:  # running from a source tree that is not installed
    VERSION = "0"


# reStructuredText inline markup in the commands' docstrings (also the
# docs' source): ``literal``, :role:`text` / :role:`~a.b` -> text.
_ROLE = re.compile(r":[a-z]+:`(~?)([^`<]*?)(?:\s*<[^>]*>)?`")
_LITERAL = re.compile(r"``([^`]+)``")


def _role(match):
    # :class:`~a.b.C` shows C, as Sphinx does.
    return match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)


def plain(text):
    """*text* without reStructuredText inline markup, for a terminal."""
    return _LITERAL.sub(r"\1", _ROLE.sub(_role, text))


class CommandManager(commandmanager.CommandManager):
    """cliff's, with each command's help text shown without markup."""

    def find_command(self, argv):
        factory, name, rest = super().find_command(argv)
        described = factory.get_description

        def get_description(cmd):
            return plain(described(cmd))
        return (type(factory.__name__, (factory,),
                     {"get_description": get_description,
                      "__module__": factory.__module__}), name, rest)


class SealedMetaApp(app.App):

    CONSOLE_MESSAGE_FORMAT = "sealedmeta: %(message)s"

    def __init__(self):
        super().__init__(
            description="Seal, open, inspect and manage keys of sealed backup"
                        " metadata envelopes.",
            version=VERSION,
            command_manager=CommandManager("sealedmeta.cli"),
            deferred_help=True)
        self.conf = None
        self._store = None
        self._error = None

    def run(self, argv):
        # cliff logs an error (one line) and answers 1 for every exception:
        # the exit status is chosen here by what the error was.
        self._error = None
        status = super().run(argv)
        if self._error is not None:
            return common.exit_status(self._error)
        return status

    def clean_up(self, cmd, result, err):
        self._error = err

    # Libraries that chat at INFO on a console that should show only results
    # and our own one-line errors.
    QUIET_LOGGERS = ("barbicanclient", "castellan", "keystoneauth", "stevedore",
                     "tooz", "urllib3", "oslo_config", "oslo_messaging",
                     "oslo.messaging", "oslo_service")
    # Libraries that log at ERROR what the key store turns into one message
    # of its own: barbicanclient logs every 4xx answer ("4xx Client error:
    # Forbidden ..."), so a refusal would print two lines, or one for a 404
    # the store expects. Shown again with -v -v.
    SILENT_LOGGERS = ("barbicanclient",)

    def configure_logging(self):
        root = logging.getLogger()
        before = list(root.handlers)
        super().configure_logging()
        for handler in root.handlers:
            if handler not in before:  # cliff's console handler
                handler.addFilter(common.EscapingFilter())
        if self.options.verbose_level < 2:
            for name in self.QUIET_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)
            for name in self.SILENT_LOGGERS:
                logging.getLogger(name).setLevel(logging.CRITICAL)

    def build_option_parser(self, description, version, argparse_kwargs=None):
        parser = super().build_option_parser(description, version,
                                             argparse_kwargs)
        parser.add_argument(
            "--config-file", metavar="FILE", action="append", default=None,
            help="oslo.config file (repeatable). Without one the file key"
                 " store under the user's data directory is used.")
        parser.add_argument(
            "--key-repository", metavar="DIR", default=None,
            help="Directory of the file key store (overrides the config).")
        return parser

    @staticmethod
    def load_conf(files):
        conf = cfg.ConfigOpts()
        sm_conf.register_opts(conf)
        logs.register_options(conf)
        for path in files:
            if not os.path.isfile(path):
                raise exceptions.SealedMetaError(
                    "configuration file %s does not exist" % path)
        try:
            conf(args=[], project="sealedmeta", default_config_files=files,
                 validate_default_values=True)
        except (cfg.Error, ValueError) as exc:
            raise exceptions.SealedMetaError(
                "bad configuration: %s" % exc) from None
        return conf

    def load_store(self, files):
        """A key store built from other configuration files."""
        return keystores.load(self.load_conf(files))

    def initialize_app(self, argv):
        try:
            self._initialize(argv)
        except Exception as exc:
            self._error = exc
            raise

    def _initialize(self, argv):
        conf = self.load_conf(self.options.config_file or [])
        if self.options.key_repository:
            conf.set_override("key_repository", self.options.key_repository,
                              group=sm_conf.GROUP)
        self.conf = conf
        logs.setup(conf, VERSION, self.options.verbose_level)

    def prepare_to_run_command(self, cmd):
        super().prepare_to_run_command(cmd)
        if isinstance(cmd, display.DisplayCommandBase):
            formatters.install(cmd)
            common.escape_display(cmd)

    @property
    def store(self):
        if self._store is None:
            common.check_references(self.conf, sm_conf.GROUP)
            self._store = keystores.load(self.conf)
        return self._store

    def sealer(self, keyring=None):
        return sm_sealer.Sealer.from_config(self.conf, store=self.store,
                                            keyring=keyring)


def quiet_library_warnings():
    """Libraries (eventlet under Cinder, tooz, ...) warn about their own
    deprecations on stderr; the console is for results and our errors."""
    warnings.simplefilter("ignore", DeprecationWarning)
    # eventlet's EventletDeprecationWarning (imported through tooz and
    # futurist wherever Cinder is installed) is not a DeprecationWarning.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")
    # eventlet's DNS library (dnspython) names cryptography's deprecated DSA
    # classes as eventlet loads it.
    warnings.filterwarnings("ignore", module=r"dns\.")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--debug" not in argv:
        quiet_library_warnings()
    return SealedMetaApp().run(argv)


if __name__ == "__main__":
    sys.exit(main())
