#!/bin/bash
# systemd's own tools against the daemon: socket activation (the listening
# socket passed as "varlink", as iopfd.socket does), then varlinkctl's
# introspect and calls of list methods.
#   check-varlinkctl.sh IOPFD_BINARY
set -euo pipefail
bin=$1
dir=$(mktemp -d)
sock=$dir/io.iopfd
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

systemd-socket-activate -l "$sock" --fdname=varlink "$bin" --workers 1 2>"$dir/log" &
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
echo "socket activation, introspect and calls: ok"
