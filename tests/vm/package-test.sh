#!/bin/sh
# Run by systemd in the test VM (systemd.run=) on a throwaway copy of the
# build root (tools/dev package): the Debian packages as an operator meets
# them. Install them with apt; the socket is enabled and listening, the
# service not started; the first iopfctl starts it; a service account in
# the group iopfd connects and one outside it cannot; faults are served,
# on a relay queue (iopf-bench) and on the kernel's mock device by the
# example built from libiopfd-dev against the installed library; then
# apt remove stops it all and apt purge leaves nothing behind. Prints TAP
# lines and ends with "VM-EXIT-STATUS=N".
#   package-test.sh DEBDIR KERNEL_HEADERS
D=$1 K=$2
n=0 failed=0
export DEBIAN_FRONTEND=noninteractive PATH=/usr/sbin:/usr/bin:/sbin:/bin
cd /tmp || exit 1

pass() { n=$((n + 1)); echo "ok $n - $1"; }
fail() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $1"; }
# check DESCRIPTION COMMAND...: the command's status decides; its output
# is shown when it fails.
check() {
	d=$1
	shift
	if out=$("$@" 2>&1); then pass "$d"; else fail "$d"; echo "$out" | sed 's/^/#   /'; fi
}
# is EXPECTED DESCRIPTION COMMAND...: the command prints EXPECTED.
is() {
	want=$1 d=$2
	shift 2
	got=$("$@" 2>&1)
	if [ "$got" = "$want" ]; then pass "$d"; else fail "$d: '$got', expected '$want'"; fi
}
no_file() { ! ls -d "$@" >/dev/null 2>&1; }

cp "$D"/iopfd_*.deb "$D"/libiopfd0_*.deb "$D"/libiopfd-dev_*.deb /tmp/
check "apt install ./iopfd_*.deb ./libiopfd0_*.deb ./libiopfd-dev_*.deb" \
	apt-get install -y ./iopfd_*.deb ./libiopfd0_*.deb ./libiopfd-dev_*.deb
check "the group iopfd exists (sysusers.d)" getent group iopfd
is enabled "iopfd.socket is enabled" systemctl is-enabled iopfd.socket
is active "iopfd.socket is listening" systemctl is-active iopfd.socket
is inactive "iopfd.service waits for its first client" systemctl is-active iopfd.service
is "iopfd 660" "the socket is the group's, mode 0660" stat -c '%G %a' /run/iopfd/io.iopfd
check "the systemd-report socket is there" test -S /run/systemd/report/io.iopfd
check "iopfd.conf is a conffile" grep -qx /etc/iopfd/iopfd.conf /var/lib/dpkg/info/iopfd.conffiles
check "man iopfd finds the page" man -w iopfd

echo "# iopfctl status (the first client)"
iopfctl status | sed 's/^/#   /'
is active "the first iopfctl started iopfd.service" systemctl is-active iopfd.service

# A service account is let in by the group; nobody is not.
useradd --system --no-create-home --groups iopfd vmm-svc
check "a member of the group iopfd connects" runuser -u vmm-svc -- iopfctl users
if runuser -u nobody -- iopfctl status >/dev/null 2>&1; then
	fail "nobody, outside the group, is refused"
else
	pass "nobody, outside the group, is refused"
fi

# Faults on relay queues, as an emulated device sends them.
out=$(iopf-bench --modes daemon --socket /run/iopfd/io.iopfd --queues 4 --duration-ms 1000 2>&1)
echo "$out" | grep '^SUMMARY' | sed 's/^/#   /'
if echo "$out" | grep -q '^SUMMARY groups_per_s=[1-9]'; then
	pass "iopf-bench: relay queues served, no violation"
else
	fail "iopf-bench: relay queues served, no violation"
	echo "$out" | tail -5 | sed 's/^/#   /'
fi

# The example from libiopfd-dev, built against the installed library.
rm -rf /tmp/example
cp -r /usr/share/doc/libiopfd-dev/examples /tmp/example
check "pkg-config finds iopfd" pkg-config --exact-version=0.1.0 iopfd
check "the example builds against the installed package" make -C /tmp/example KERNEL_HEADERS="$K"
check "it links the installed libiopfd.so.0" sh -c "ldd /tmp/example/iopfd-example | grep -q 'libiopfd.so.0 => /.*lib/'"
out=$(/tmp/example/iopfd-example --mock --faults 64 2>&1)
echo "$out" | sed 's/^/#   /'
if echo "$out" | grep -q '64 of 64 faults answered by iopfd, 64 pages mapped'; then
	pass "the example: the mock device's faults served through iopfd"
else
	fail "the example: the mock device's faults served through iopfd"
fi
metrics=$(iopfctl metrics)
if echo "$metrics" | grep -q '^iopfd_groups_answered_total [1-9]' && echo "$metrics" | tail -n 1 | grep -qx '# EOF'; then
	pass "iopfctl metrics counts the groups"
else
	fail "iopfctl metrics counts the groups"
fi

# The journal and state memfds sit in the fd store from the first start
# (FileDescriptorStorePreserve=yes keeps them across stops): removal must
# empty it.
nfd=$(systemctl show -P NFileDescriptorStore iopfd.service)
if [ "${nfd:-0}" -gt 0 ]; then pass "the fd store holds $nfd fds"; else fail "the fd store holds no fd"; fi
check "apt remove iopfd" apt-get remove -y iopfd
is inactive "iopfd.service stopped" systemctl is-active iopfd.service
is inactive "iopfd.socket stopped" systemctl is-active iopfd.socket
check "no /run/iopfd" no_file /run/iopfd
check "no report socket" no_file /run/systemd/report/io.iopfd
nfd=$(systemctl show -P NFileDescriptorStore iopfd.service 2>/dev/null)
is 0 "the fd store is empty after the removal" echo "${nfd:-0}"
check "apt purge iopfd libiopfd0 libiopfd-dev" apt-get purge -y iopfd libiopfd0 libiopfd-dev
for p in iopfd libiopfd0 libiopfd-dev; do
	if dpkg -L "$p" >/dev/null 2>&1; then fail "dpkg -L $p: still installed"; else pass "dpkg -L $p: not installed"; fi
done
left=$(find /etc /usr /var/lib /run -name '*iopfd*' 2>/dev/null)
is "" "no file named *iopfd* left in /etc, /usr, /var/lib or /run" echo "$left"
check "no enablement left" no_file /etc/systemd/system/sockets.target.wants/iopfd.socket

if [ "$failed" != 0 ]; then
	echo "# the units' journal:"
	journalctl -u iopfd.service -u iopfd.socket --no-pager | tail -n 30 | sed 's/^/#   /'
fi
echo "# the group iopfd stays after the purge, as Debian leaves system groups"
echo "pkg: $((n - failed)) passed, $failed failed"
printf '\nVM-EXIT-STATUS=%s\n' "$([ "$failed" = 0 ] && echo 0 || echo 1)"
[ "$failed" = 0 ]
