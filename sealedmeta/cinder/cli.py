"""``sealedmeta cinder ...``: reseal, mark-legacy, audit and audit-merge,
over the backups of a Cinder database.

Imports Cinder only when run, so ``sealedmeta --help`` and every other
command work where Cinder is not installed.
"""

import logging
import time

from cliff import lister

from sealedmeta import cli_common as common
from sealedmeta import exceptions

LOG = logging.getLogger(__name__)

# sealedmeta is installed from a clone (it is not on PyPI): name the extra
# as docs/source/cinder.rst installs it.
def no_cinder(what):
    """The one line for *what* (a command, an option) run without Cinder."""
    return ("%s needs the cinder package in this environment (in a clone of"
            " sealedmeta: pip install '.[cinder]')" % what)


def _require_cinder(cmd):
    try:
        import cinder  # noqa: F401
    except ImportError:
        raise common.CommandError(
            no_cinder("'sealedmeta %s'" % cmd.cmd_name)) from None


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
    check_database(files)
    return cfg.CONF


def check_database(files):
    """One line, before anything else is done, when the database of
    *files*' ``[database] connection`` has no backups table (``cinder-manage
    db sync`` never ran, or it is another database): the failed query's
    error is its SQL. The connection URL is not shown (it may hold a
    password)."""
    from oslo_db import exception as db_exception

    from cinder import context as cinder_context
    from cinder import objects
    try:
        objects.BackupList.get_all(cinder_context.get_admin_context(), limit=1)
    except db_exception.DBNonExistentTable as exc:
        raise common.CommandError(
            "Cinder's database has no table %s: create Cinder's tables with"
            " 'cinder-manage db sync', or set [database] connection in %s to"
            " Cinder's database" % (exc.table, " or ".join(files))) from None


def load_cinder(app, command):
    """Cinder's configuration, from the global --config-file, loaded for
    ``sealedmeta cinder COMMAND``; CommandError without one or without
    Cinder."""
    files = app.options.config_file
    if not files:
        raise common.CommandError(
            "'sealedmeta cinder %s' needs Cinder's configuration:"
            " --config-file /etc/cinder/cinder.conf" % command)
    try:
        import cinder  # noqa: F401
    except ImportError:
        raise common.CommandError(
            no_cinder("'sealedmeta cinder %s'" % command)) from None
    return load_cinder_conf(files)


class Reseal(common.FindsProblems, lister.Lister):
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

    def take_action(self, parsed_args):
        load_cinder(self.app, "reseal")
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
            self.problems = True
        left = [r for r in results if r.plaintext_left]
        if left:
            LOG.error("%d backups keep superseded plaintext versions of their metadata"
                      " object (first: %s: %s)", len(left), left[0].backup_id,
                      left[0].reason)
            self.problems = True
        return reseal.COLUMNS, [r.as_row() for r in results]


class MarkLegacy(common.FindsProblems, lister.Lister):
    """Mark imported backups made before sealing, from their export records.

    Cinder's backup import records every imported backup as made by the
    configured (sealed) driver, so the restore of one the stock class made
    before sealing is refused. Run after 'openstack volume backup record
    import' with the same records (JSON, as 'record export -f json' writes
    them): for each record whose legacy claim authenticates for the
    imported row, and whose backup's metadata object is still the exported
    one, the row's service becomes the stock class again, and
    [sealedmeta] legacy_backups applies to it. One row per record; exit
    status 1 when any could not be marked, 2 when the command cannot run.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("records", nargs="+", metavar="RECORD",
                            help="A backup record file (JSON with backup_service"
                            " and backup_url).")
        return parser

    def take_action(self, parsed_args):
        load_cinder(self.app, "mark-legacy")
        from sealedmeta.cinder import drivers as sm_drivers
        from sealedmeta.cinder import records
        from sealedmeta.cinder import reseal
        claims = []   # every record is read before anything is changed
        for path in parsed_args.records:
            data = common.read_input(path, records.MAX_RECORD, "record")
            try:
                claims.append(records.claim_of_record(data))
            except ValueError as exc:
                raise common.CommandError("record %s: %s" % (path, exc)) from None
        try:
            drivers = sm_drivers.project_drivers()
        except exceptions.SetupError as exc:
            raise common.CommandError(str(exc)) from None
        from cinder import context as cinder_context
        ctxt = cinder_context.get_admin_context()
        backups, rows = reseal.select_backups(ctxt, [i for i, _ in claims])
        rows = [(r.backup_id, None, records.FAILED, None,
                 "no such backup: import the record first") for r in rows]
        found = {b.id: b for b in backups}
        for backup_id, claim in claims:
            backup = found.get(backup_id)
            if backup is None:
                continue
            try:
                driver = drivers(backup.project_id)
            except Exception as exc:  # the service user's login, a driver's own
                result, reason = records.FAILED, "cannot act in project %s: %s" % (
                    backup.project_id, exc)
            else:
                result, reason = records.mark_legacy(driver, backup, claim)
            rows.append((backup.id, backup.volume_id, result, backup.service, reason))
        if any(row[2] == records.FAILED for row in rows):
            self.problems = True
        return records.MARK_COLUMNS, rows


class Audit(common.FindsProblems, lister.Lister):
    """Judge every backup the Cinder database knows, where it is stored.

    Reads each selected backup's metadata object through the configured
    sealed backup_driver (in each backup's project on per-user Swift) and
    judges it as a restore would: valid (with its key version), legacy,
    invalid, context-mismatch, missing or unreadable. A summary per
    class, project and key version goes to standard error. Exit status 0
    when every backup is sealed and valid, 1 when any is not, 2 when the
    audit cannot run. Never writes to the store or the database. With -f
    json, csv or value each row is written as it is judged, so memory stays
    flat however many backups the database holds (a table needs every row
    for its widths).
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
                            " the first parent a restore would refuse (any"
                            " class but valid and legacy; legacy too"
                            " under legacy_backups = reject).")
        parser.add_argument("--public-keys", metavar="FILE",
                            help="Judge envelopes with the public keys in FILE"
                            " (keyring export-public) alone: signature, header"
                            " and context, no key store.")
        parser.add_argument("--textfile", metavar="FILE",
                            help="Also write the audit's figures to FILE in"
                            " Prometheus text format (for node_exporter's"
                            " textfile collector), replacing it whole at the"
                            " end.")
        return parser

    def take_action(self, parsed_args):
        import datetime
        if parsed_args.workers < 1:
            raise common.CommandError("--workers must be at least 1")
        since = None
        if parsed_args.since:
            try:
                since = datetime.datetime.fromisoformat(parsed_args.since)
            except ValueError:
                raise common.CommandError("bad --since %r" % parsed_args.since) from None
            since = since.replace(tzinfo=None)
        if parsed_args.textfile:
            from sealedmeta.cinder import audit_metrics
            try:
                audit_metrics.check_writable(parsed_args.textfile)
            except audit_metrics.TextfileError as exc:
                raise common.CommandError(str(exc)) from None
        load_cinder(self.app, "audit")
        from sealedmeta.cinder import audit
        from sealedmeta.cinder import drivers as sm_drivers
        from sealedmeta import audit as sm_audit
        from sealedmeta import public
        try:
            shard = audit.parse_shard(parsed_args.shard) if parsed_args.shard else None
            auditor = None
            if parsed_args.public_keys is not None:
                auditor = sm_audit.PublicAuditor(
                    public.load(parsed_args.public_keys),
                    max_envelope_size=self.app.conf.sealedmeta.max_envelope_size)
            drivers = sm_drivers.project_drivers()
            state = audit.State(parsed_args.state, {
                "project": parsed_args.project, "status": parsed_args.status,
                "since": since and since.isoformat(), "shard": shard,
                "public_keys": auditor is not None, "chain": parsed_args.chain})
        except (exceptions.SetupError, public.PublicKeysError) as exc:
            raise common.CommandError(str(exc)) from None
        summary = audit.Summary()
        stderr = self.app.stderr
        tty = common.is_terminal(stderr)
        started = time.time()

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
            self._report(parsed_args, summary, started, time.time())

        return audit.COLUMNS, rows()

    def _report(self, parsed_args, summary, started, ended):
        """The finished audit's figures: to the message bus, and to
        --textfile."""
        from sealedmeta.cinder import audit
        from sealedmeta import events
        errors = summary.classes[audit.UNREADABLE]
        events.get(self.app.conf).audit_finished(
            summary.classes, summary.key_versions, len(summary.projects),
            started, ended, errors, {
                "project": parsed_args.project, "status": parsed_args.status,
                "since": parsed_args.since, "shard": parsed_args.shard,
                "chain": parsed_args.chain,
                "public_keys": parsed_args.public_keys is not None})
        if parsed_args.textfile:
            from sealedmeta.cinder import audit_metrics
            try:
                audit_metrics.write(parsed_args.textfile, summary, started,
                                    ended, errors)
            except audit_metrics.TextfileError as exc:
                raise common.CommandError(str(exc)) from None

    def _summarize(self, summary):
        from sealedmeta.cinder import audit
        if not summary.all_valid:
            self.problems = True
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
        _require_cinder(self)
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
