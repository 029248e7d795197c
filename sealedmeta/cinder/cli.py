"""``sealedmeta cinder reseal``: seal the metadata of existing Cinder backups.

Imports Cinder only when run, so ``sealedmeta --help`` and every other
command work where Cinder is not installed.
"""

import logging

from cliff import lister

from sealedmeta import exceptions
from sealedmeta.cmd import common

LOG = logging.getLogger(__name__)

# sealedmeta is installed from a clone (it is not on PyPI): name the extra
# as docs/source/cinder.rst installs it.
NO_CINDER = ("'sealedmeta cinder reseal' needs the cinder package in this"
             " environment (in a clone of sealedmeta: pip install '.[cinder]')")


def load_cinder_conf(files):
    """Parse Cinder's configuration *files* into Cinder's global CONF."""
    from oslo_config import cfg

    from cinder import objects
    objects.register_all()
    from cinder.backup import manager  # noqa: F401 - registers backup_driver
    from sealedmeta.cinder import options
    options.register_opts(cfg.CONF)
    try:
        cfg.CONF(args=[], project="cinder", default_config_files=list(files))
    except (cfg.Error, ValueError) as exc:
        raise common.CommandError("bad Cinder configuration: %s" % exc) from None
    return cfg.CONF


class Reseal(lister.Lister):
    """Seal the unsealed metadata of Cinder backups made before sealing.

    Reads Cinder's configuration (the global --config-file, e.g.
    /etc/cinder/cinder.conf, whose backup_driver must be a sealedmeta.cinder
    class and whose [sealedmeta] section names the key store), rewrites each
    backup's metadata object in place with volume_meta sealed, taking the
    Glance metadata from the Cinder database rather than from the object,
    and records the sealed driver as the backup's service. Reports one row
    per backup; exit status 1 when any could not be resealed.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--backup-id", metavar="ID", action="append",
                           dest="backup_ids",
                           help="A backup to reseal (repeatable).")
        which.add_argument("--all", action="store_true", dest="all_backups",
                           help="Every backup of the configured driver.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Check and report, write nothing.")
        return parser

    def run(self, parsed_args):
        self.exit_code = 0
        super().run(parsed_args)
        return self.exit_code

    def take_action(self, parsed_args):
        files = self.app.options.config_file
        if not files:
            raise common.CommandError(
                "'sealedmeta cinder reseal' needs Cinder's configuration:"
                " --config-file /etc/cinder/cinder.conf")
        try:
            import cinder  # noqa: F401
        except ImportError:
            raise common.CommandError(NO_CINDER) from None
        load_cinder_conf(files)
        from sealedmeta.cinder import reseal
        try:
            results = reseal.reseal(parsed_args.backup_ids, parsed_args.all_backups,
                                    dry_run=parsed_args.dry_run)
        except exceptions.SetupError as exc:
            raise common.CommandError(str(exc)) from None
        failed = [r for r in results if r.result in (reseal.FAILED, reseal.PLAINTEXT_LEFT)]
        if failed:
            LOG.error("%d of %d backups could not be resealed (first: %s: %s)",
                      len(failed), len(results), failed[0].backup_id, failed[0].reason)
            self.exit_code = 1
        left = [r for r in results if r.plaintext_left]
        if left:
            LOG.error("%d backups keep superseded plaintext versions of their metadata"
                      " object (first: %s: %s)", len(left), left[0].backup_id,
                      left[0].reason)
            self.exit_code = 1
        return reseal.COLUMNS, [r.as_row() for r in results]


class Audit(lister.Lister):
    """Judge every backup the Cinder database knows, where it is stored.

    Reads each selected backup's metadata object through the configured
    sealed backup_driver (in each backup's project on per-user Swift) and
    judges it as a restore would: valid (with its key version), legacy,
    invalid, context-mismatch, missing or unreadable. A summary per
    class, project and key version goes to standard error. Exit status 0
    when every backup is sealed and valid, 1 when any is not, 2 when the
    audit cannot run. Never writes to the store or the database.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--project", metavar="PROJECT_ID",
                            help="Only this project's backups.")
        parser.add_argument("--status", metavar="STATUS",
                            help="Only backups in this status (e.g. available).")
        parser.add_argument("--since", metavar="YYYY-MM-DD[THH:MM:SS]",
                            help="Only backups created at or after this UTC time.")
        parser.add_argument("--workers", type=int, default=4, metavar="N",
                            help="Backups read at the same time (default 4).")
        parser.add_argument("--state", metavar="FILE",
                            help="Record finished backups in FILE; a rerun with"
                            " the same FILE does not read them again.")
        parser.add_argument("--shard", metavar="K/N",
                            help="Only the K-th of N shards of the backups, by id.")
        parser.add_argument("--chain", action="store_true",
                            help="Judge each incremental backup's parents too,"
                            " as its restore needs them: it takes the class of"
                            " the first parent that is not valid or"
                            " legacy.")
        parser.add_argument("--public-keys", metavar="FILE",
                            help="Judge envelopes with the public keys in FILE"
                            " (keyring export-public) alone: signature, header"
                            " and context, no key store.")
        return parser

    def run(self, parsed_args):
        self.exit_code = 0
        try:
            super().run(parsed_args)
        except common.CommandError as exc:
            LOG.error("cinder audit cannot run: %s", exc)
            return 2
        return self.exit_code

    def take_action(self, parsed_args):
        import datetime
        files = self.app.options.config_file
        if not files:
            raise common.CommandError(
                "'sealedmeta cinder audit' needs Cinder's configuration:"
                " --config-file /etc/cinder/cinder.conf")
        try:
            import cinder  # noqa: F401
        except ImportError:
            raise common.CommandError(NO_CINDER) from None
        if parsed_args.workers < 1:
            raise common.CommandError("--workers must be at least 1")
        since = None
        if parsed_args.since:
            try:
                since = datetime.datetime.fromisoformat(parsed_args.since)
            except ValueError:
                raise common.CommandError("bad --since %r" % parsed_args.since) from None
            since = since.replace(tzinfo=None)
        load_cinder_conf(files)
        from sealedmeta.cinder import audit
        from sealedmeta.cinder import reseal
        from sealedmeta import audit as sm_audit
        from sealedmeta import public
        try:
            shard = audit.parse_shard(parsed_args.shard) if parsed_args.shard else None
            auditor = None
            if parsed_args.public_keys is not None:
                auditor = sm_audit.PublicAuditor(
                    public.load(parsed_args.public_keys),
                    max_envelope_size=self.app.conf.sealedmeta.max_envelope_size)
            drivers = reseal.project_drivers()
            state = audit.State(parsed_args.state, {
                "project": parsed_args.project, "status": parsed_args.status,
                "since": since and since.isoformat(), "shard": shard,
                "public_keys": auditor is not None, "chain": parsed_args.chain})
        except (exceptions.SetupError, public.PublicKeysError) as exc:
            raise common.CommandError(str(exc)) from None
        summary = audit.Summary()
        stderr = self.app.stderr
        tty = common.is_terminal(stderr)

        def progress(done):
            if tty:
                stderr.write("\raudit: %d backups judged" % done)
                stderr.flush()

        def rows():
            try:
                for row in audit.audit(parsed_args.project, parsed_args.status, since,
                                       shard, parsed_args.workers, state, summary,
                                       progress, drivers, auditor,
                                       parsed_args.chain):
                    yield row.as_row()
            finally:
                state.close()
                if tty:
                    stderr.write("\n")
            self._summarize(summary)

        return audit.COLUMNS, rows()

    def produce_output(self, parsed_args, column_names, data):
        # cliff's JSON formatter builds the whole list before writing it:
        # write the rows as they are judged instead, one a line, so memory
        # stays flat whatever the database holds. (A table needs every row
        # for its widths: -f json, csv or value suit a whole cloud.)
        if parsed_args.formatter != "json" or parsed_args.sort_columns:
            return super().produce_output(parsed_args, column_names, data)
        import json
        columns, selector = self._generate_columns_and_selector(
            parsed_args, column_names)
        out = self.app.stdout
        separator = "[\n"
        for row in data:
            if selector:
                row = self._compress_iterable(row, selector)
            out.write(separator + json.dumps(dict(zip(columns, row, strict=True))))
            separator = ",\n"
        out.write("[]\n" if separator == "[\n" else "\n]\n")
        return 0

    def _summarize(self, summary):
        from sealedmeta.cinder import audit
        if not summary.all_valid:
            self.exit_code = 1
        out = self.app.stderr
        out.write("summary: %d backups: %s\n" % (summary.total, ", ".join(
            "%s %d" % (k, v) for k, v in summary.classes.items())))
        for project, counts in sorted(summary.projects.items()):
            out.write("project %s: %s\n" % (project, ", ".join(
                "%s %d" % (k, v) for k, v in counts.items() if v)))
        for version, count in sorted(summary.key_versions.items()):
            out.write("key version %s: %d %s\n" % (version, count, audit.VALID))
        out.flush()


class AuditMerge(Audit):
    """Merge the JSON reports of 'cinder audit --shard K/N' runs into one.

    Each FILE is the output of 'cinder audit -f json'; a backup in two
    reports is an error. Same columns, summary and exit status as the audit.
    """

    def get_parser(self, prog_name):
        parser = lister.Lister.get_parser(self, prog_name)
        parser.add_argument("reports", nargs="+", metavar="FILE",
                            help="A shard's JSON report.")
        return parser

    def take_action(self, parsed_args):
        import json
        from sealedmeta.cinder import audit
        rows = {}
        for path in parsed_args.reports:
            try:
                with open(path, encoding="utf-8") as handle:
                    report = json.load(handle)
                shard_rows = [audit.Row.from_dict(item) for item in report]
            except OSError as exc:
                raise common.CommandError("cannot read report %s: %s"
                                          % (path, exc.strerror)) from None
            except (ValueError, KeyError, TypeError) as exc:
                raise common.CommandError("bad report %s: %s" % (path, exc)) from None
            for row in shard_rows:
                if row.backup_id in rows:
                    raise common.CommandError(
                        "backup %s is in two reports (%s)" % (row.backup_id, path))
                rows[row.backup_id] = row
        summary = audit.Summary()
        ordered = [rows[key] for key in sorted(rows)]
        for row in ordered:
            summary.add(row)
        self._summarize(summary)
        return audit.COLUMNS, [row.as_row() for row in ordered]
