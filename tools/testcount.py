#!/usr/bin/env python3
"""Count test cases in a meson testlog.json: prints "LABEL PASSED FAILED".

Criterion suites run with --tap, so one meson test holds many cases; count
the TAP lines. A TAP test that crashed or ended early also counts as one
failure even if every line it printed said "ok". Tests with the exit-code
protocol count as one case each. Skipped tests count as neither.
"""
import json
import os
import re
import sys

TAP_LINE = re.compile(r"^(not ok|ok)\b(.*)$")


def count(entry):
    result = entry.get("result", "")
    if result in ("SKIP",):
        return 0, 0
    ok_run = result in ("OK", "EXPECTEDFAIL")
    stdout = entry.get("stdout") or ""
    # meson's log does not record the protocol; TAP output starts with its
    # version line or a plan.
    is_tap = stdout.startswith("TAP version") or re.search(r"^1\.\.\d+", stdout, re.M)
    if not is_tap:
        return (1, 0) if ok_run else (0, 1)
    passed = failed = 0
    for line in stdout.splitlines():
        m = TAP_LINE.match(line.strip())
        if not m:
            continue
        rest = m.group(2)
        if "# SKIP" in rest.upper():
            continue
        if m.group(1) == "ok":
            passed += 1
        else:
            failed += 1
    if not ok_run and failed == 0:
        failed = 1
    return passed, failed


def main():
    path, label = sys.argv[1], sys.argv[2]
    passed = failed = 0
    if not os.path.exists(path):  # no test of that suite ran
        print(label, 0, 0)
        return
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            p, q = count(json.loads(line))
            passed += p
            failed += q
    print(label, passed, failed)


if __name__ == "__main__":
    main()
