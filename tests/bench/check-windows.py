#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""iopf-bench's open-loop windows, which the latency targets stand on: an
open-loop run long enough reports the median of its windows' p99 over at
least five windows, a run too short for five and a closed-loop run report
none, the do-nothing handler's work per visit is recorded, and every
response is checked. The figures themselves are the machine's and are not
judged here."""
import json
import subprocess
import sys

BENCH = sys.argv[1]


def runs(*args):
    out = subprocess.run([BENCH, "--json", "--queues", "4", "--outstanding", "8", *args],
                         check=True, capture_output=True, text=True).stdout
    m = json.loads(out)
    assert m["runs"], "no runs"
    for r in m["runs"]:
        assert r["violations"] == 0, r
    return m["runs"]


# 20 k groups/s for 1 s: windows of 100 ms (1,000 groups would take 50 ms).
for r in runs("--rate", "20000", "--duration-ms", "1000", "--modes", "iopfd,echo"):
    assert 5 <= r.get("windows", 0) <= 10, r
    assert 0 < r["p99_window_us"] <= r["max_us"], r

# 2 k groups/s for 1 s: windows of 500 ms, two of them, too few.
for r in runs("--rate", "2000", "--duration-ms", "1000", "--modes", "echo"):
    assert "windows" not in r and "p99_window_us" not in r, r

# Closed loop: no schedule, no windows.
for r in runs("--duration-ms", "300", "--modes", "echo"):
    assert "windows" not in r, r

# The do-nothing handler with work per visit says so.
for r in runs("--rate", "20000", "--duration-ms", "600", "--modes", "echo", "--echo-visit-ns", "500"):
    assert r.get("echo_visit_ns") == 500, r

print("ok: open-loop windows, their absence, the work per visit")
