"""``sealedmeta rewrap`` and ``sealedmeta verify``."""

import logging
import re

from cliff import columns
from cliff import show

from sealedmeta import admin
from sealedmeta import audit
from sealedmeta import carriers as sm_carriers
from sealedmeta import exceptions
from sealedmeta import keyring as kr
from sealedmeta import public
from sealedmeta import cli_common as common
from sealedmeta import rewrap as sm_rewrap
from sealedmeta import sources as sm_sources
from sealedmeta.cmd import progress

LOG = logging.getLogger(__name__)


def _sorted(value):
    """*value* with the keys of its mappings in order, at every depth."""
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class _Report(columns.FormattableColumn):
    """A part of a report: as it is in JSON and YAML (keys in order, as
    the verify report has always been written), a line an item in
    tables."""

    escapes = True

    def machine_readable(self):
        return _sorted(self._value)


class Entries(_Report):
    """A list of {path, reason}: one 'path: reason' a line in tables."""

    def human_readable(self):
        return "\n".join("%s: %s" % (common.escaped(e["path"]),
                                      common.escaped(str(e["reason"])))
                         for e in self._value)


class Mapping(columns.FormattableColumn):
    escapes = True

    def human_readable(self):
        return ", ".join("%s=%s" % (common.escaped(str(k)), common.escaped(str(v)))
                         for k, v in sorted(self._value.items()))


def summary_fields(summary):
    """(names, values) of a rewrap Summary for a ShowOne."""
    data = summary.as_dict()
    names = ("rewrapped", "already_current", "skipped", "failed",
             "active_versions", "failures", "skipped_files", "removed_temp",
             "removed_temp_files")
    values = (data["rewrapped"], data["already_current"], data["skipped"],
              data["failed"], Mapping(data["active_versions"]),
              Entries(data["failures"]), Entries(data["skipped_files"]),
              data["removed_temp"], Entries(data["removed_temp_files"]))
    return names, values


_SECONDS = re.compile(r"[0-9]{1,10}\Z")


def parse_temp_age(text):
    """Seconds of ``--temp-age``; one clear error otherwise."""
    if not _SECONDS.match(text or "") or int(text) < sm_rewrap.MIN_TEMP_AGE:
        raise common.CommandError(
            "bad --temp-age %r: expected a number of seconds, at least %d"
            % (text, sm_rewrap.MIN_TEMP_AGE))
    return int(text)


def carriers_of(app):
    """The installed carriers, with the limits of *app*'s configuration."""
    conf = app.conf.sealedmeta
    return sm_carriers.load_carriers(conf.max_envelope_size,
                                     conf.max_metadata_object_size)


def run_rewrap(app, paths, keyring=None, temp_age=sm_rewrap.DEFAULT_TEMP_AGE):
    """Rewrap *paths* for a command of *app*, with a progress bar on a
    terminal; returns the Summary."""
    bar = progress.for_stream(app.stderr, "rewrap")
    try:
        return sm_rewrap.Rewrapper(
            app.store, keyring=keyring,
            max_envelope_size=app.conf.sealedmeta.max_envelope_size,
            carriers=carriers_of(app), progress=bar, temp_age=temp_age,
            user_write_timeout=app.conf.sealedmeta.user_write_timeout).run(paths)
    finally:
        bar.close()


def report_failures(summary):
    """Log the files a rewrap could not rewrap; whether there were any."""
    failed = summary.count(sm_rewrap.FAILED)
    if failed:
        first = summary.of(sm_rewrap.FAILED)[0]
        LOG.error("%d file%s could not be rewrapped (first: %s: %s)", failed,
                  "" if failed == 1 else "s", first.path, first.reason)
    return bool(failed)


def warn_settling(app, names, instead=""):
    """Warn of each decrypt-only version of the keyrings *names* still in
    the settle window: running agents may still seal under it, so a rewrap
    made now may need another after the window (*instead*: what else the
    user may do)."""
    settle = admin.settle_window(app.conf)
    for name in sorted(names):
        ring = app.store.get_keyring(name)
        for version in ring.versions:
            if version.state is not kr.KeyState.DECRYPT_ONLY:
                continue
            left = kr.settle_left(ring, version.number, settle)
            if left > 0:
                LOG.warning("keyring %s: version %d: %s: rewrap again after"
                            " that%s", name, version.number,
                            admin.settling(ring, version.number, settle, left),
                            instead)


class Rewrap(common.FindsProblems, show.ShowOne):
    """Re-seal the envelopes under PATHs that are not under the active version.

    Directories are walked. Each file is replaced atomically; an interrupted
    run leaves every envelope valid and is finished by running it again.
    Exit status 1 when any file failed.

    A killed run can leave temporary files (.tmp- and 8 characters) next to
    the files it was replacing. Those found last written at least
    --temp-age seconds ago are removed and listed in removed_temp_files;
    younger ones may belong to a write under way in another rewrap or
    reseal and are listed as skipped.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--keyring", metavar="NAME", default=None,
                            help="Only rewrap envelopes of this keyring (others"
                                 " are skipped). Default: every keyring.")
        parser.add_argument("--temp-age", metavar="SECONDS",
                            default=str(sm_rewrap.DEFAULT_TEMP_AGE),
                            help="Remove the temporary files of interrupted"
                                 " writes (.tmp- and 8 characters: regular"
                                 " files, never links or directories) last"
                                 " written at least SECONDS ago; younger ones"
                                 " are listed as skipped. Default: %d (one"
                                 " hour); at least %d."
                                 % (sm_rewrap.DEFAULT_TEMP_AGE,
                                    sm_rewrap.MIN_TEMP_AGE))
        parser.add_argument("paths", metavar="PATH", nargs="+",
                            help="Envelope file or directory of them.")
        return parser

    def take_action(self, parsed_args):
        temp_age = parse_temp_age(parsed_args.temp_age)
        summary = run_rewrap(self.app, parsed_args.paths, parsed_args.keyring,
                             temp_age)
        self.problems = report_failures(summary)
        warn_settling(self.app, {o.keyring for o in summary.outcomes
                                 if o.keyring})
        if not any(o.status not in (sm_rewrap.SKIPPED, sm_rewrap.REMOVED)
                   or o.keyring for o in summary.outcomes):
            LOG.warning("no envelope found under %s", ", ".join(parsed_args.paths))
        return summary_fields(summary)


# The sources verify offers besides PATHs (sealedmeta.sources plug-ins).
VERIFY_SOURCES = ("ceph-pool",)


class Findings(_Report):
    def human_readable(self):
        lines = []
        for f in self._value:
            line = "%s: %s" % (common.escaped(f["path"]), f["status"])
            if f["keyring"] is not None:
                line += " (%s version %s)" % (common.escaped(f["keyring"]),
                                              f["version"])
            if f["reason"]:
                line += ": " + common.escaped(str(f["reason"]))
            lines.append(line)
        return "\n".join(lines)


class Versions(_Report):
    def human_readable(self):
        return "\n".join(
            "%s version %s %s: %d envelopes, %d %s" % (
                common.escaped(v["keyring"]), v["version"], v["state"],
                v["envelopes"], v["counts"][audit.VALID], audit.VALID)
            for v in self._value)


class Summary(_Report):
    def human_readable(self):
        s = self._value
        return "%d envelopes, %d skipped: %s" % (
            s["envelopes"], s["skipped"],
            ", ".join("%s %d" % item for item in s["counts"].items() if item[1])
            or "none")


class Verify(common.FindsProblems, show.ShowOne):
    """Verify the envelopes under PATHs and report per envelope and version.

    Never writes. Exit status: 0 when every envelope found is valid, 1 when
    any is not (or none was found), 2 when the audit cannot run (key store
    unreachable, bad arguments, a PATH that does not exist, an unusable
    public keys file). ``-f json`` prints the JSON report (see the audit
    page); the table shows the same report, a line per envelope and per
    key version.

    With --public-keys FILE (from ``keyring export-public``) the signatures
    of suite-2 envelopes are verified with those public keys alone: no key
    store is read or even configured. Suite-1 envelopes are then
    ``unsigned``; the JSON report is format 2 (see sealedmeta.audit).
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("--expect", metavar="K=V", action="append",
                            default=[],
                            help="Context pair every envelope must carry"
                                 " (repeatable).")
        parser.add_argument("--public-keys", metavar="FILE", default=None,
                            help="Verify signatures with the public keys in"
                                 " FILE (keyring export-public), without any"
                                 " key store access.")
        self.sources = sm_sources.load(VERIFY_SOURCES)
        for source in self.sources:
            source.add_arguments(parser)
        parser.add_argument("paths", metavar="PATH", nargs="*",
                            help="Envelope file or directory of them (at"
                                 " least one PATH or %s)."
                                 % " or ".join(s.option for s in self.sources))
        return parser

    def _auditor(self, parsed_args, expect, bar):
        if parsed_args.public_keys is not None:
            # Nothing here may touch self.app.store: the public mode needs
            # no key store (and an auditor has none).
            return audit.PublicAuditor(
                public.load(parsed_args.public_keys),
                max_envelope_size=self.app.conf.sealedmeta.max_envelope_size,
                expect=expect, carriers=carriers_of(self.app), progress=bar)
        return audit.Auditor(
            self.app.store,
            max_envelope_size=self.app.conf.sealedmeta.max_envelope_size,
            expect=expect, carriers=carriers_of(self.app), progress=bar)

    def take_action(self, parsed_args):
        bar = progress.for_stream(self.app.stderr, "verify")
        try:
            expect = common.parse_pairs(parsed_args.expect, option="--expect")
            if not parsed_args.paths and not sm_sources.given(
                    self.sources, parsed_args):
                raise common.CommandError("no PATH and no %s given" % " and no ".join(
                    s.option for s in self.sources))
            auditor = self._auditor(parsed_args, expect, bar)
            sources, _ = sm_sources.build(self.sources, parsed_args,
                                          self.app.conf)
            report = auditor.run(parsed_args.paths, sources)
        except (common.CommandError, exceptions.InvalidMetadata,
                sm_carriers.PathError, exceptions.KeyStoreError,
                public.PublicKeysError, *sm_sources.errors(self.sources)) as exc:
            raise common.CommandError("verify cannot run: %s" % exc) from None
        finally:
            bar.close()
        self.problems = self._judge(parsed_args, report, sources)
        data = report.as_dict()
        kinds = {"envelopes": Findings, "versions": Versions,
                 "summary": Summary, "skipped": Entries}
        names = tuple(sorted(data))
        return names, tuple(kinds.get(n, _sorted)(data[n]) for n in names)

    @staticmethod
    def _judge(parsed_args, report, sources):
        """Log what is wrong with *report* (of *sources* and the PATHs);
        whether anything is."""
        if not report.findings:
            LOG.error("no envelope found under %s", ", ".join(
                parsed_args.paths + [str(source) for source in sources]))
            return True
        if not report.all_valid:
            counts = report.counts
            LOG.error("%d of %d envelopes are not valid (%s)",
                      len(report.findings) - counts[audit.VALID],
                      len(report.findings),
                      ", ".join("%s %d" % (s, n) for s, n in counts.items()
                                if n and s != audit.VALID))
            return True
        return False
