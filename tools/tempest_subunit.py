"""Read a subunit v2 stream on stdin and print, as JSON, each test's outcome:
``{test id: {"status": ..., "reason": ..., "seconds": ...}}``. ``reason`` is
a skip's message, or the last line of a failure's traceback.

Run by tools/dev-tempest with the Tempest venv's python, which has subunit
and testtools (the system python3 has neither).
"""

import json
import sys

import subunit
import testtools


def main():
    results = {}

    def on_test(test):
        if test["status"] == "exists":
            return
        details = test["details"]
        reason = ""
        if "reason" in details:
            reason = details["reason"].as_text().strip()
        elif "traceback" in details:
            lines = details["traceback"].as_text().strip().splitlines()
            reason = lines[-1] if lines else ""
        start, stop = test["timestamps"]
        seconds = (stop - start).total_seconds() if start and stop else None
        results[test["id"]] = {"status": test["status"], "reason": reason,
                               "seconds": seconds}

    result = testtools.StreamToDict(on_test)
    result.startTestRun()
    subunit.ByteStreamToStreamResult(
        sys.stdin.buffer, non_subunit_name="stdout").run(result)
    result.stopTestRun()
    json.dump(results, sys.stdout, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
