"""Read a subunit v2 stream on stdin and print, as JSON, each test's outcome:
``{test id: {"status", "reason", "traceback", "seconds"}}``. ``reason`` is a
skip's message, or the exception line of a failure's traceback.

Run by tools/dev-tempest with the Tempest venv's python, which has subunit
and testtools (the system python3 has neither).
"""

import json
import sys

import subunit
import testtools



def exception_line(traceback):
    """The line naming the exception: after the last frame, the first line
    indented as "Traceback (most recent call last):" is (a message may
    continue on more lines)."""
    lines = traceback.splitlines()
    heads = [i for i, line in enumerate(lines)
             if line.strip() == "Traceback (most recent call last):"]
    frames = [i for i, line in enumerate(lines)
              if line.lstrip().startswith('File "')]
    if heads and frames:
        indent = len(lines[heads[-1]]) - len(lines[heads[-1]].lstrip())
        for line in lines[frames[-1] + 1:]:
            if line.strip() and len(line) - len(line.lstrip()) == indent:
                return line.strip()
    return lines[-1].strip() if lines else ""


def main():
    results = {}

    def on_test(test):
        if test["status"] == "exists":
            return
        details = test["details"]
        reason = traceback = ""
        if "reason" in details:
            reason = details["reason"].as_text().strip()
        elif "traceback" in details:
            traceback = details["traceback"].as_text().strip()
            reason = exception_line(traceback)
        start, stop = test["timestamps"]
        seconds = (stop - start).total_seconds() if start and stop else None
        results[test["id"]] = {"status": test["status"], "reason": reason,
                               "traceback": traceback, "seconds": seconds}

    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    subunit.ByteStreamToStreamResult(
        sys.stdin.buffer, non_subunit_name="stdout").run(result)
    result.stopTestRun()
    json.dump(results, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
