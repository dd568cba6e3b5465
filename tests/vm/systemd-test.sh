#!/bin/sh
# Run by systemd in the test VM (systemd.run= on the kernel command line):
# install iopfd's units as runtime units, let systemd listen on the socket,
# and run the service scenarios against it. The last line says how it went.
#   systemd-test.sh [--pri] BUILDDIR [SCENARIO...]
# --pri: the real-IOMMU suite's service scenarios (iopfd-vmtest-pri).
T=iopfd-vmtest
if [ "$1" = --pri ]; then
	T=iopfd-vmtest-pri
	shift
fi
B=$1
shift
SRC=$(dirname "$0")/../..
U=/run/systemd/system
mkdir -p "$U/iopfd.service.d"
# The service runs as a dynamic user, who may not be able to enter the
# checkout (a fresh clone under mktemp -d is 0700): install the binary.
install -D -m 0755 "$B/iopfd" /run/iopfd-test/bin/iopfd
sed "s|@IOPFD@|/run/iopfd-test/bin/iopfd|" "$SRC/units/iopfd.service.in" >"$U/iopfd.service"
cp "$SRC/units/iopfd.socket" "$U/"
# Test settings: a short watchdog, the hook that hangs a worker on SIGUSR2
# so that the watchdog has something to catch, the one that kills iopfd
# between marking a kernel batch ANSWERING and writing its answers, and the
# one that kills the next iopfd (once) before it has answered that batch.
cat >"$U/iopfd.service.d/test.conf" <<CONF
[Service]
WatchdogSec=4s
Environment=IOPFD_TEST_HANG_ON_SIGUSR2=1
Environment=IOPFD_TEST_DIE_ANSWERING_ON_SIGUSR1=1
Environment=IOPFD_TEST_DIE_IN_RECOVERY=1
CONF
# The real-IOMMU suite kills iopfd three times within seconds, and the
# hooks above may add a restart: no start rate limit to trip on a slow
# machine (the scenario counts the restarts itself).
if [ "$T" = iopfd-vmtest-pri ]; then
	printf '[Unit]\nStartLimitIntervalSec=0\n' >"$U/iopfd.service.d/test-pri.conf"
fi
# The group sysusers.d/iopfd.conf makes, with "daemon" (uid 1) in it. The
# root is read-only here: the group file is a copy bind-mounted over it.
cp /etc/group /run/iopfd-test/group
grep -q '^iopfd:' /run/iopfd-test/group || echo "iopfd:x:990:daemon" >>/run/iopfd-test/group
mount --bind /run/iopfd-test/group /etc/group
# A pin budget for that member, in a drop-in where iopfd.conf's are found.
mkdir -p /run/iopfd/iopfd.conf.d
printf '[PinBudget]\nUser=daemon 16M\n' >/run/iopfd/iopfd.conf.d/50-test.conf
systemctl daemon-reload
systemctl start iopfd.socket
"$B/$T" --systemd "$@"
rc=$?
echo "--- iopfd.service journal (last lines)"
journalctl -u iopfd.service -o short-monotonic --no-pager | tail -n 30
printf '\nVM-EXIT-STATUS=%s\n' "$rc"
exit "$rc"
