#!/bin/bash
# systemd-report (systemd 260 and later) reading iopfd as it finds every
# source: a socket in /run/systemd/report/ named after the metric families'
# prefix. iopfd is socket-activated on both of iopfd.socket's sockets;
# systemd-report must list it as a source, describe its families and list
# their metrics with nothing refused (it fails on any metric it finds
# invalid). Run as root in a root whose systemd has systemd-report
# (tools/dev report: a Debian forky root). With iopf-bench, the figures of
# address spaces under emulated load are read too.
#   check-report.sh IOPFD_BINARY [IOPF_BENCH]
set -euo pipefail
bin=$1 bench=${2:-}
report=/usr/lib/systemd/systemd-report
[ -x "$report" ] || { echo "no $report: skipped"; exit 77; }
echo "# $("$report" --version | head -n 1)"
mkdir -p /run/iopfd /run/systemd/report
systemd-socket-activate -l /run/iopfd/io.iopfd -l /run/systemd/report/io.iopfd --fdname=varlink:varlink \
	"$bin" --workers 1 --config /dev/null 2>/tmp/iopfd.log &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null' EXIT
for _ in $(seq 100); do [ -S /run/systemd/report/io.iopfd ] && break; sleep 0.05; done

fail() { echo "check-report: $*"; exit 1; }
"$report" list-sources --no-pager | tee /tmp/sources
grep -q 'io\.iopfd' /tmp/sources || fail "io.iopfd is not among the sources"
"$report" describe --no-pager io.iopfd | tee /tmp/describe || fail "describe failed"
"$report" metrics --no-pager io.iopfd | tee /tmp/metrics || fail "metrics failed (invalid metrics?)"
"$report" metrics --json=short io.iopfd >/tmp/metrics.json || fail "metrics --json failed"
python3 - /tmp/metrics.json <<'PY' || exit 1
import json, sys
text = open(sys.argv[1]).read()
metrics = [json.loads(r) for r in text.replace('\x1e', '\n').splitlines() if r.strip()]
names = {m['name'] for m in metrics}
want = {'io.iopfd.GroupsAnswered', 'io.iopfd.GroupsInvalid', 'io.iopfd.ServiceTime', 'io.iopfd.Clients',
        'io.iopfd.UserPinBudgetBytes', 'io.iopfd.Version'}
if not want <= names:
    sys.exit(f'missing: {sorted(want - names)}')
print(f'# systemd-report: {len(metrics)} metrics of io.iopfd in {len(names)} families')
PY
if [ -n "$bench" ]; then
	"$bench" --modes daemon --socket /run/iopfd/io.iopfd --queues 2 --duration-ms 300 --backend mlock \
		--quota 1048576 --pages 1024 --then "$report metrics --no-pager io.iopfd.SpaceMapCalls io.iopfd.SpacePinnedBytes io.iopfd.GroupsAnswered >/tmp/load" >/dev/null
	cat /tmp/load
	grep -q 'io.iopfd.SpaceMapCalls *space-[0-9]' /tmp/load || fail "no address space under load"
fi
grep -q "listening on the socket passed by systemd" /tmp/iopfd.log || fail "iopfd was not socket-activated"
echo "systemd-report reads io.iopfd: ok"
