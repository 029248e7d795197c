"""Run every target of fuzz_sealedmeta.py for a bounded number of inputs.

::

    python tests/fuzz/run_fuzz.py [--runs N] [--max-total-time S] [--seed N]
                                  [--targets a,b] [--artifacts DIR]

Each target starts from a fresh seed corpus of genuine envelopes (raw,
armoured, in a Cinder metadata object) and runs ``-runs=N`` inputs, with
``-max_total_time`` as a safety bound and ``-timeout=10`` (an input slower
than 10 s is a failure). The run fails when a target crashes (an exception
other than the library's own escaped, or a harness assertion failed), times
out, or executes fewer than ``--min-runs`` inputs -- and, first, unless the
harness's ``selftest`` target (which raises a non-library exception on
purpose) is reported as a crash. Prints, per target,
inputs executed, wall time, inputs/s, coverage and corpus growth, and a total
line; ``--json FILE`` writes the same as JSON.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
HARNESS = os.path.join(HERE, "fuzz_sealedmeta.py")
TARGETS = ("dearmor", "parse", "open", "payload", "audit")


def run_target(target, args, workdir):
    corpus = os.path.join(workdir, "corpus-" + target)
    artifacts = os.path.join(args.artifacts, target) + os.sep
    os.makedirs(corpus)
    os.makedirs(artifacts, exist_ok=True)
    seeds = subprocess.run([sys.executable, HARNESS, "--seed-corpus", target,
                            corpus], check=True, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True,
                           env=dict(os.environ, SEALEDMETA_FUZZ_DIR=workdir)
                           ).stdout.strip()
    argv = [sys.executable, HARNESS, target,
            "-runs=%d" % args.runs, "-max_total_time=%d" % args.max_total_time,
            "-timeout=10", "-max_len=%d" % args.max_len, "-rss_limit_mb=2048",
            "-print_final_stats=1", "-seed=%d" % args.seed,
            "-artifact_prefix=%s" % artifacts, corpus]
    scratch = os.path.join(workdir, "world-" + target)
    os.makedirs(scratch)
    env = dict(os.environ, SEALEDMETA_FUZZ_DIR=scratch)
    t0 = time.monotonic()
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, errors="replace", env=env,
                          timeout=args.max_total_time + 120)
    wall = time.monotonic() - t0
    out = proc.stdout
    log = os.path.join(args.artifacts, "%s.log" % target)
    with open(log, "w") as handle:
        handle.write(out)

    def stat(name):
        m = re.search(r"^stat::%s:\s+(\d+)" % name, out, re.MULTILINE)
        return int(m.group(1)) if m else None

    runs = stat("number_of_executed_units")
    if runs is None:  # crashed before the final stats: count the last status line
        found = re.findall(r"^#(\d+)\s", out, re.MULTILINE)
        runs = int(found[-1]) if found else 0
    cov = re.findall(r"\bcov: (\d+) ft: (\d+) corp: (\d+)/", out)
    inited = re.search(r"INITED cov: (\d+) ft: (\d+) corp: (\d+)/", out)
    crashes = sorted(f for f in os.listdir(artifacts)
                     if not f.endswith(".log"))
    return {
        "target": target, "exit_status": proc.returncode, "runs": runs,
        "wall_s": round(wall, 2), "inputs_per_s": round(runs / wall) if wall else 0,
        "seed_inputs": int(seeds), "coverage": int(cov[-1][0]) if cov else None,
        "features": int(cov[-1][1]) if cov else None,
        "corpus_start": int(inited.group(3)) if inited else None,
        "corpus_end": int(cov[-1][2]) if cov else None,
        "crash_files": [os.path.join(artifacts, f) for f in crashes],
        "log": log,
        "tail": "" if proc.returncode == 0 else "\n".join(
            line for line in out.splitlines()[-60:]
            if not line.startswith("INFO: Instrumenting")),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=250000,
                        help="inputs per target (default 250000)")
    parser.add_argument("--min-runs", type=int, default=100000,
                        help="fail when a target executed fewer inputs")
    parser.add_argument("--max-total-time", type=int, default=120,
                        help="seconds per target at most (default 120)")
    parser.add_argument("--max-len", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=1,
                        help="libFuzzer seed (default 1: reproducible; 0: random)")
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--artifacts", default=None,
                        help="where crash inputs and logs go (default: a new"
                             " temporary directory, printed)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    if args.seed == 0:
        args.seed = int.from_bytes(os.urandom(4), "big") or 1
    args.artifacts = os.path.abspath(
        args.artifacts or tempfile.mkdtemp(prefix="sealedmeta-fuzz-artifacts-"))
    os.makedirs(args.artifacts, exist_ok=True)
    targets = [t for t in args.targets.split(",") if t]
    unknown = set(targets) - set(TARGETS)
    if unknown:
        parser.error("unknown targets: %s" % ", ".join(sorted(unknown)))
    # corpus and the harness's scratch files; tmpfs when there is one
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    workdir = tempfile.mkdtemp(prefix="sealedmeta-fuzz-work-", dir=shm)
    results = []
    t0 = time.monotonic()
    try:
        # The harness must be able to fail: its self-test target raises a
        # non-library exception as soon as an input starts with the magic.
        selftest = argparse.Namespace(**dict(vars(args), runs=100000,
                                             max_total_time=60, seed=1))
        check = run_target("selftest", selftest, workdir)
        if check["exit_status"] == 0 or not check["crash_files"]:
            print("FAILED: the self-test target did not crash: a crash would"
                  " not be reported (%s)" % check["log"])
            return 1
        print("fuzz selftest: crash detected after %d inputs, as it must be"
              % check["runs"], flush=True)
        t0 = time.monotonic()
        for target in targets:
            result = run_target(target, args, workdir)
            results.append(result)
            print("fuzz %-8s runs=%d wall=%.1fs inputs/s=%d coverage=%s"
                  " features=%s corpus=%s->%s exit=%d%s" % (
                      target, result["runs"], result["wall_s"],
                      result["inputs_per_s"], result["coverage"],
                      result["features"], result["corpus_start"],
                      result["corpus_end"], result["exit_status"],
                      " CRASH %s" % result["crash_files"]
                      if result["crash_files"] else ""), flush=True)
            if result["tail"]:
                print(result["tail"])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    total = sum(r["runs"] for r in results)
    wall = time.monotonic() - t0
    print("fuzz total: %d inputs in %.1fs (%d inputs/s overall), seed %d,"
          " artifacts and logs in %s" % (total, wall, total / wall, args.seed,
                                         args.artifacts))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump({"seed": args.seed, "total_runs": total,
                       "wall_s": round(wall, 1), "targets": results}, handle,
                      indent=2, sort_keys=True)
    failed = [r["target"] for r in results
              if r["exit_status"] != 0 or r["crash_files"]
              or r["runs"] < args.min_runs]
    if failed:
        print("FAILED: %s (a crash, a timeout, or fewer than %d inputs)"
              % (", ".join(failed), args.min_runs))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
