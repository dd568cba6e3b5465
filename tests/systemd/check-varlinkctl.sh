#!/bin/bash
# systemd's own tools against the daemon: socket activation (two listening
# sockets passed as "varlink", as iopfd.socket does: iopfd's own and the
# one systemd-report reads), then varlinkctl's introspect, calls of list
# methods, and io.systemd.Metrics as systemd-report calls it.
#   check-varlinkctl.sh IOPFD_BINARY
set -euo pipefail
bin=$1
dir=$(mktemp -d)
sock=$dir/io.iopfd
report=$dir/report/io.iopfd
mkdir "$dir/report"
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

systemd-socket-activate -l "$sock" -l "$report" --fdname=varlink:varlink "$bin" --workers 1 2>"$dir/log" &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done

# The first connection starts iopfd on the passed socket.
varlinkctl introspect "$sock" io.iopfd >"$dir/idl"
grep -q '^interface io.iopfd$' "$dir/idl" || { echo "introspect did not print the interface"; exit 1; }
grep -q '^method RegisterQueue(' "$dir/idl" || { echo "introspect lacks RegisterQueue"; exit 1; }
out=$(varlinkctl call "$sock" io.iopfd.ListQueues '{}')
[ "$(echo "$out" | tr -d ' \n')" = '{"queues":[]}' ] || { echo "ListQueues: $out"; exit 1; }
varlinkctl call "$sock" io.iopfd.CreateSpace '{"backend":"none","quota":1048576,"name":"probe"}' >/dev/null
out=$(varlinkctl call "$sock" io.iopfd.ListSpaces '{}')
# Objects go with their connection: varlinkctl's call above has ended.
echo "$out" | grep -q '"spaces"' || { echo "ListSpaces: $out"; exit 1; }
grep -q "listening on the socket passed by systemd" "$dir/log" || { echo "not socket-activated:"; cat "$dir/log"; exit 1; }

# io.systemd.Metrics on the report socket: systemd-report's calls (both
# with more), families named after the socket, every one described.
varlinkctl call --more "$report" io.systemd.Metrics.List '{}' >"$dir/list"
varlinkctl call --more "$report" io.systemd.Metrics.Describe '{}' >"$dir/describe"
python3 - "$dir/list" "$dir/describe" <<'PY' || exit 1
import json, re, sys
def records(path):  # varlinkctl --more writes JSON-SEQ (RFC 7464) to a file
    return [json.loads(r) for r in open(path).read().split('\x1e') if r.strip()]
listed = records(sys.argv[1])
described = {d['name']: d for d in records(sys.argv[2])}
bad = [m for m in listed if not re.fullmatch(r'io\.iopfd\.[A-Za-z][A-Za-z0-9_]*', m['name'])
       or m['name'] not in described or 'value' not in m
       or any(not isinstance(v, str) for v in m.get('fields', {}).values())]
kinds = {d['type'] for d in described.values()}
if bad or not kinds <= {'counter', 'gauge', 'string', 'object'} or 'io.iopfd.GroupsAnswered' not in described:
    sys.exit(f'io.systemd.Metrics: {bad[:3]} {kinds}')
print(f'io.systemd.Metrics: {len(listed)} metrics in {len(described)} families')
PY
if varlinkctl call "$report" io.systemd.Metrics.List '{}' >/dev/null 2>&1; then
	echo "List without more was answered"
	exit 1
fi
echo "socket activation, introspect and calls: ok"
