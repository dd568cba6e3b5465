#!/bin/sh
# The units as systemd reads them: `verify` must be clean, and the offline
# security assessment must score the service at 1.0 or lower. Given the
# built man pages, verify also checks that every man: page the units'
# Documentation= names is among them.
#   check-units.sh verify|security SRCDIR IOPFD_BINARY [MAN_PAGE...]
set -eu
what=$1 src=$2 bin=$3
shift 3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
sed "s|@IOPFD@|$bin|" "$src/units/iopfd.service.in" >"$dir/iopfd.service"
cp "$src/units/iopfd.socket" "$dir/"
man=no
if [ $# -gt 0 ] && command -v man >/dev/null; then
	# A man tree of the pages alone: man(1) finds nothing else.
	for page in "$@"; do
		mkdir -p "$dir/man/man${page##*.}"
		ln -s "$(realpath "$page")" "$dir/man/man${page##*.}/"
	done
	MANPATH=$dir/man
	export MANPATH
	man=yes
fi
cd "$dir"
case $what in
verify)
	out=$(systemd-analyze verify --man=$man ./iopfd.service ./iopfd.socket 2>&1) || { echo "$out"; exit 1; }
	# verify exits 0 on some warnings; any output is a finding.
	if [ -n "$out" ]; then echo "$out"; exit 1; fi
	echo "systemd-analyze verify: clean"
	;;
security)
	out=$(systemd-analyze security --offline=true --threshold=10 ./iopfd.service 2>&1) || true
	score=$(echo "$out" | sed -n 's/.*Overall exposure level for iopfd.service: \([0-9.]*\).*/\1/p')
	echo "exposure: ${score:-unknown}"
	[ -n "$score" ] || { echo "$out"; exit 1; }
	awk -v s="$score" 'BEGIN { exit !(s <= 1.0) }' || { echo "$out" | grep -v '✓'; exit 1; }
	;;
esac
