"""``sealedmeta rekey`` and ``sealedmeta key retire|reinstate|destroy``
(``destroy`` at once, ``--after`` a delay, ``--due`` from a timer).

Thin: parse, call :mod:`sealedmeta.admin` under the configured coordination
backend, print.
"""

import logging
import re
import time

from cliff import show

from sealedmeta import admin
from sealedmeta import carriers as sm_carriers
from sealedmeta import cli_common as common
from sealedmeta import coordination
from sealedmeta import events
from sealedmeta import names
from sealedmeta import keyring as kr
from sealedmeta import conf as sm_conf
from sealedmeta import sources as sm_sources
from sealedmeta.cmd import keyring as keyring_cmd
from sealedmeta.cmd import scan as scan_cmd

LOG = logging.getLogger(__name__)

_NUMBER = re.compile(r"[0-9]{1,10}\Z")


def parse_version(text):
    """A key version number from the command line; one clear error otherwise."""
    if not _NUMBER.match(text or "") or not (
            1 <= int(text) <= names.MAX_KEY_VERSION):
        raise common.CommandError(
            "bad VERSION %r: expected a key version number (1-%d)"
            % (text, names.MAX_KEY_VERSION))
    return int(text)


def coordinator(app):
    common.check_references(app.conf, sm_conf.GROUP,
                            sm_conf.COORDINATION_GROUP)
    return coordination.Coordinator.from_config(app.conf)


def version_fields(name, version):
    return (("keyring", "version", "key_id", "state", "created"),
            (name, version.number, version.key_id.hex(), version.state.value,
             keyring_cmd.iso(version.created)))


class Rekey(common.FindsProblems, show.ShowOne):
    """Rotate a keyring: a new active version; the previous one decrypt-only.

    With --rewrap, then re-seal the envelopes of this keyring under PATHs
    with the new version (exit status 1 when any file failed).

    With --if-older-than DURATION, rotate only when the active version is
    older (safe from every host's timer at once: one of them rotates);
    the ``rotated`` field says whether it did, and not rotating exits 0.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="Keyring.")
        parser.add_argument("--rewrap", metavar="PATH", nargs="+",
                            action="extend", default=[],
                            help="After rotating, rewrap the envelopes of this"
                                 " keyring under these files / directories.")
        parser.add_argument("--signing", action="store_true",
                            help="Give the new version an Ed25519 key pair:"
                                 " a keyring without signing keys becomes a"
                                 " signing keyring (its older versions keep"
                                 " opening as before).")
        parser.add_argument("--wait", action="store_true",
                            help="With --rewrap: wait the settle window"
                                 " (cache_ttl + stale_grace) before"
                                 " rewrapping, so that envelopes running"
                                 " agents still seal under the old version"
                                 " are rewrapped too.")
        parser.add_argument("--if-older-than", metavar="DURATION",
                            help="Rotate only when the active version is"
                                 " older than DURATION (90d, 12h, 30m, 45s);"
                                 " otherwise change nothing and exit 0.")
        return parser

    def take_action(self, parsed_args):
        name = parsed_args.name
        older_than = (None if parsed_args.if_older_than is None else
                      common.parse_duration(parsed_args.if_older_than,
                                            "--if-older-than"))
        if parsed_args.rewrap:
            # Refuse bad paths before the keyring changes.
            sm_carriers.check_paths(parsed_args.rewrap)
        with coordinator(self.app) as coord:
            result = admin.rekey(self.app.store, name, coord,
                                 signing=parsed_args.signing,
                                 events=events.get(self.app.conf),
                                 older_than=older_than)
        fields = ("keyring", "rotated", "version", "key_id")
        values = (name, result.rotated, result.version.number,
                  result.version.key_id.hex())
        if not result.rotated:
            # Nothing changed: nothing new to rewrap to either.
            return fields, values
        fields += ("previous_version",)
        values += (result.previous.number,)
        if parsed_args.rewrap:
            settle = admin.settle_window(self.app.conf)
            ring = self.app.store.get_keyring(name)
            left = kr.settle_left(ring, result.previous.number, settle)
            if parsed_args.wait:
                LOG.info("waiting %ds for running agents to stop sealing under"
                         " version %d: %s", left, result.previous.number,
                         admin.settling(ring, result.previous.number, settle,
                                        left))
                time.sleep(left)
            else:
                scan_cmd.warn_settling(self.app, [name], ", or use --wait")
            summary = scan_cmd.run_rewrap(self.app, parsed_args.rewrap, name)
            self.problems = scan_cmd.report_failures(summary)
            more_fields, more_values = scan_cmd.summary_fields(summary)
            fields += more_fields
            values += more_values
        return fields, values


class _SetState(show.ShowOne):
    action = None

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="Keyring.")
        parser.add_argument("version", metavar="VERSION", help="Key version number.")
        return parser

    def take_action(self, parsed_args):
        version = parse_version(parsed_args.version)
        with coordinator(self.app) as coord:
            updated = self.action(self.app.store, parsed_args.name, version,
                                  coord, events=events.get(self.app.conf))
        return version_fields(parsed_args.name, updated)


# The sources the key commands scan besides --scan PATHs
# (sealedmeta.sources plug-ins).
SCAN_SOURCES = ("ceph-pool", "cinder-database")


def add_scan_options(parser, what):
    """--scan and the options of the scan sources: the backup stores to
    audit before *what*; returns the sources' plug-ins."""
    parser.add_argument("--scan", metavar="PATH", nargs="+", action="extend",
                        default=[],
                        help="Files / directories holding the envelopes"
                             " (backup stores) to audit before %s." % what)
    plugins = sm_sources.load(SCAN_SOURCES)
    for plugin in plugins:
        plugin.add_arguments(parser)
    return plugins


def _scan_options(plugins, metavars, last):
    """The scan options in one phrase: ``--scan, --ceph-pool and
    --scan-cinder`` (*last* "and"), with their metavars if *metavars*."""
    words = ["--scan PATH ..." if metavars else "--scan"] + [
        "%s %s" % (p.option, p.metavar) if metavars else p.option
        for p in plugins]
    return "%s %s %s" % (", ".join(words[:-1]), last, words[-1])


def settle(app, agents):
    """The settle window to wait: *app*'s configuration's, or the agents'
    when cinder.conf was read and gives a longer one."""
    window = admin.settle_window(app.conf)
    if agents is not None and agents > window:
        LOG.warning("the agents' cache_ttl + stale_grace in cinder.conf"
                    " (%ds) is longer than this configuration's (%ds):"
                    " waiting %ds; give both the same values", agents,
                    window, agents)
        return agents
    return window


def _numbers(found):
    return ", ".join("%d" % n for n in sorted(found))


def _versions_row(keyring, scanned, **numbers):
    """The row of a run over a keyring's versions (``key retire --unused``,
    ``key destroy --due``); ``scanned_envelopes`` only when a scan was made
    (none is when nothing was to be done)."""
    fields = ("keyring",) + tuple(numbers)
    values = (keyring,) + tuple(_numbers(v) for v in numbers.values())
    if scanned is None:
        return fields, values
    return fields + ("scanned_envelopes",), values + (scanned,)


class KeyRetire(show.ShowOne):
    """Retire a decrypt-only version: envelopes under it are refused (reversible).

    With --unused instead of VERSION, retire every decrypt-only version
    that a scan of the backup stores (--scan PATH ..., --ceph-pool POOL,
    --scan-cinder CINDER_CONF) finds no envelope under; versions still in
    the settle window or in use are left and named. Exit status 0 also
    when there was nothing to retire.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="Keyring.")
        parser.add_argument("version", metavar="VERSION", nargs="?",
                            help="Key version number (not with --unused).")
        parser.add_argument("--unused", action="store_true",
                            help="Retire every decrypt-only version no"
                                 " scanned backup uses.")
        self.sources = add_scan_options(parser, "retiring (with --unused)")
        return parser

    def take_action(self, parsed_args):
        scans = parsed_args.scan or sm_sources.given(self.sources, parsed_args)
        if parsed_args.unused == (parsed_args.version is not None):
            raise common.CommandError(
                "give either VERSION or --unused (with the backup stores to"
                " scan)")
        if not parsed_args.unused:
            if scans:
                raise common.CommandError("%s go with --unused" % _scan_options(
                    self.sources, False, "and"))
            version = parse_version(parsed_args.version)
            with coordinator(self.app) as coord:
                updated = admin.retire(
                    self.app.store, parsed_args.name, version, coord,
                    settle=admin.settle_window(self.app.conf),
                    events=events.get(self.app.conf))
            return version_fields(parsed_args.name, updated)
        if not scans:
            raise common.CommandError(
                "--unused needs the backup stores to scan: %s"
                % _scan_options(self.sources, True, "or"))
        sources, agents = sm_sources.build(self.sources, parsed_args,
                                           self.app.conf)
        try:
            with coordinator(self.app) as coord:
                result = admin.retire_unused(
                    self.app.store, parsed_args.name, coord,
                    scan=parsed_args.scan,
                    max_envelope_size=self.app.conf.sealedmeta.max_envelope_size,
                    carriers=scan_cmd.carriers_of(self.app),
                    sources=sources,
                    settle=settle(self.app, agents),
                    events=events.get(self.app.conf))
        except sm_sources.errors(self.sources) as exc:
            raise common.CommandError(str(exc)) from None
        return _versions_row(parsed_args.name, result.scanned,
                             retired=result.retired, in_use=result.in_use,
                             settling=result.settling)


class KeyReinstate(_SetState):
    """Reinstate a retired version, or cancel the destruction of a version
    pending destruction: it opens envelopes again (decrypt-only)."""

    action = staticmethod(admin.reinstate)


class KeyDestroy(common.FindsProblems, show.ShowOne):
    """Destroy a retired version's key material, at once or after a delay.

    At once: refused while a scan of the backup stores (--scan PATH ...,
    --ceph-pool POOL for a Ceph backup pool, --scan-cinder CINDER_CONF for
    every backup of a Cinder database) finds envelopes under the version
    (or files it cannot read), and refused without a scan, unless --force.
    The active version is never destroyed.

    With --after DURATION (checked by the same scan, never forced): the
    version becomes pending destruction (refused as a retired one is, key
    kept) and is destroyed DURATION later by 'key destroy KEYRING --due';
    'key reinstate' cancels it until then.

    With --due instead of VERSION (from a timer): destroy every version
    pending destruction whose time has come, scanning the backup stores
    again first; a due version still in use is kept pending and named, and
    the exit status is 1.
    """

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument("name", metavar="NAME", help="Keyring.")
        parser.add_argument("version", metavar="VERSION", nargs="?",
                            help="Key version number (not with --due).")
        self.sources = add_scan_options(parser, "destroying")
        parser.add_argument("--force", action="store_true",
                            help="Destroy at once even without --scan, or"
                                 " although the scan found envelopes under"
                                 " the version.")
        parser.add_argument("--after", metavar="DURATION",
                            help="Do not destroy now: put the version into"
                                 " pending destruction, destroyed by"
                                 " --due once DURATION (90d, 12h, 30m,"
                                 " 45s) has passed.")
        parser.add_argument("--due", action="store_true",
                            help="Destroy the versions pending destruction"
                                 " whose time has come.")
        return parser

    def take_action(self, parsed_args):
        scans = parsed_args.scan or sm_sources.given(self.sources, parsed_args)
        if parsed_args.due == (parsed_args.version is not None):
            raise common.CommandError(
                "give either VERSION or --due (with the backup stores to"
                " scan)")
        if parsed_args.force and (parsed_args.due or parsed_args.after):
            raise common.CommandError(
                "--force goes with an immediate destroy only: --after and"
                " --due always check the backup stores")
        if parsed_args.due and parsed_args.after is not None:
            raise common.CommandError("give either --after or --due")
        after = (None if parsed_args.after is None else
                 common.parse_duration(parsed_args.after, "--after"))
        if (parsed_args.due or after) and not scans:
            raise common.CommandError(
                "%s needs the backup stores to scan: %s"
                % ("--due" if parsed_args.due else "--after",
                   _scan_options(self.sources, True, "or")))
        version = (None if parsed_args.due
                   else parse_version(parsed_args.version))
        sources, agents = sm_sources.build(self.sources, parsed_args,
                                           self.app.conf)
        common_args = dict(
            scan=parsed_args.scan,
            max_envelope_size=self.app.conf.sealedmeta.max_envelope_size,
            carriers=scan_cmd.carriers_of(self.app),
            sources=sources,
            events=events.get(self.app.conf))
        try:
            with coordinator(self.app) as coord:
                if parsed_args.due:
                    return self._due(admin.destroy_due(
                        self.app.store, parsed_args.name, coord,
                        **common_args))
                if after is not None:
                    result = admin.schedule_destroy(
                        self.app.store, parsed_args.name, version, coord,
                        after, settle=settle(self.app, agents), **common_args)
                else:
                    result = admin.destroy(
                        self.app.store, parsed_args.name, version, coord,
                        force=parsed_args.force,
                        settle=settle(self.app, agents), **common_args)
        except sm_sources.errors(self.sources) as exc:
            # a pool that cannot be read is a scan that cannot run: exit 2
            raise common.CommandError(str(exc)) from None
        except admin.DestroyRefused:
            raise common.CommandError(
                "refusing to destroy version %d of keyring %r without --scan"
                " PATH ... (the backup stores, audited first); --force destroys"
                " it unchecked" % (version, parsed_args.name)) from None
        fields, values = version_fields(parsed_args.name, result.version)
        if after is not None:
            fields += ("destroy_after",)
            values += (keyring_cmd.iso(result.version.destroy_after),)
        if result.scanned is not None:
            # No scan (forced, or finishing an earlier destroy): no figures.
            fields += ("scanned_envelopes", "envelopes_under_version")
            values += (result.scanned, result.in_use)
        if after is not None:
            return fields, values
        return fields + ("forced",), values + (result.forced,)

    def _due(self, result):
        # A due version still in use is a problem for someone to look at:
        # its backups cannot be restored while it stays pending.
        self.problems = bool(result.in_use)
        return _versions_row(result.keyring, result.scanned,
                             destroyed=result.destroyed, in_use=result.in_use,
                             not_due=result.not_due)
