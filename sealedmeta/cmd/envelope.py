"""``sealedmeta seal``, ``open`` and ``inspect``."""

from cliff import columns
from cliff import command
from cliff import show

import sealedmeta
from sealedmeta import cli_common as common
from sealedmeta import envelope as sm_envelope
from sealedmeta.cmd import keyring as keyring_cmd


def _armour_limit(max_size):
    return len(sm_envelope.ARMOR_PREFIX) + (max_size * 4 + 2) // 3 + 2


def read_envelope(app, path):
    limit = app.conf.sealedmeta.max_envelope_size
    data = common.read_input(path, _armour_limit(limit), "envelope")
    return sm_envelope.load(data, limit)


class ContextColumn(columns.FormattableColumn):
    """A context map: ``k=v, k=v`` in tables, an object in JSON/YAML."""

    def human_readable(self):
        return ", ".join("%s=%s" % item for item in sorted(self._value.items()))

    def machine_readable(self):
        return dict(self._value)


class Seal(command.Command):
    """Seal a JSON metadata object into an envelope bound to a context."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--keyring", metavar="NAME", default=None,
                            help="Keyring to seal under (default: [sealedmeta]"
                                 " keyring).")
        parser.add_argument("--context", metavar="K=V", action="append",
                            required=True,
                            help="Context entry the envelope is bound to"
                                 " (repeatable), e.g. backup_id=ID.")
        parser.add_argument("--armor", action="store_true",
                            help="Write the text armour instead of raw bytes.")
        parser.add_argument("input", metavar="INPUT", nargs="?", default="-",
                            help="JSON object file, '-' for stdin (default).")
        parser.add_argument("-o", "--output", metavar="OUT", default="-",
                            help="Envelope file, '-' for stdout (default).")
        return parser

    def take_action(self, parsed_args):
        context = common.parse_pairs(parsed_args.context)
        sealer = self.app.sealer(parsed_args.keyring)
        metadata = common.read_json_object(parsed_args.input,
                                           sealer.max_envelope_size)
        sealed = sealer.seal(metadata, context)
        to_stdout = parsed_args.output in (None, "-")
        if parsed_args.armor:
            sealed = (sealedmeta.armor(sealed) + "\n").encode("ascii")
        elif to_stdout and common.is_terminal(self.app.stdout):
            raise common.CommandError(
                "refusing to write a binary envelope to a terminal; use"
                " --armor or -o FILE")
        common.write_output(parsed_args.output, sealed, self.app.stdout,
                            mode=0o644)
        return 0


class Open(command.Command):
    """Authenticate an envelope for a context and print its metadata (JSON)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--context", metavar="K=V", action="append",
                            required=True,
                            help="The context the envelope must have been"
                                 " sealed for (repeatable).")
        parser.add_argument("input", metavar="INPUT", nargs="?", default="-",
                            help="Envelope (raw or armoured), '-' for stdin.")
        parser.add_argument("-o", "--output", metavar="OUT", default="-",
                            help="JSON file (written 0600), '-' for stdout.")
        return parser

    def take_action(self, parsed_args):
        context = common.parse_pairs(parsed_args.context)
        raw = read_envelope(self.app, parsed_args.input)
        keyring = sealedmeta.inspect(raw).keyring
        metadata = self.app.sealer(keyring).open(raw, context)
        try:
            # Tenant-set text: a terminal may show it.
            text = common.json_text(metadata)
        except (TypeError, ValueError):
            raise common.CommandError(
                "the metadata holds binary values, which JSON cannot carry;"
                " open it with the Python API") from None
        common.write_output(parsed_args.output, (text + "\n").encode("utf-8"),
                            self.app.stdout)
        return 0


class Inspect(show.ShowOne):
    """Show an envelope's header WITHOUT authenticating it (no key needed)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("envelope", metavar="ENVELOPE",
                            help="Envelope file (raw or armoured), '-' for stdin.")
        return parser

    def take_action(self, parsed_args):
        raw = read_envelope(self.app, parsed_args.envelope)
        header = sealedmeta.inspect(raw, self.app.conf.sealedmeta.max_envelope_size)
        fields = header.as_dict()
        fields["created"] = keyring_cmd.iso(header.created)
        fields["context"] = ContextColumn(fields["context"])
        fields["size"] = len(raw)
        fields["authenticated"] = False
        names = ("format_version", "suite", "keyring", "key_version", "key_id",
                 "context", "created", "size", "authenticated")
        return names, tuple(fields[n] for n in names)
