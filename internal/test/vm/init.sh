#!/bin/busybox sh
# /init of a guest of internal/test/vm. Everything goes to the serial
# console, where the harness (kernels_test.go) follows the "stallmon-vm:"
# marker lines; on x86 the guest's verdict also leaves through the
# isa-debug-exit port as QEMU's exit code (arm64's virt machine has none:
# the harness takes the "done" line's after a clean power-off).
# vmtest_timeout, vmtest_run and vmtest_skip come from the kernel command line, which
# hands unknown name=value words to init as environment variables.

/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin TMPDIR=/tmp HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
[ -d /sys/kernel/tracing ] && mount -t tracefs tracefs /sys/kernel/tracing
[ -d /sys/kernel/debug ] && mount -t debugfs debugfs /sys/kernel/debug
[ -d /sys/fs/bpf ] && mount -t bpf bpf /sys/fs/bpf
# The freezer tests use cgroup v2 (cgroup.freeze).
[ -d /sys/fs/cgroup ] && mount -t cgroup2 cgroup2 /sys/fs/cgroup
ip link set lo up
# The guest suites run stallmon as a user does (internal/testutil/harness).
[ -x /bin/stallmon ] && export STALLMON_BIN=/bin/stallmon
[ -x /bin/ia32wait ] && export STALLMON_IA32WAIT=/bin/ia32wait
[ -x /bin/x32wait ] && export STALLMON_X32WAIT=/bin/x32wait
# internal/testutil/ctarget's programs, built on the host (ctarget.PrebuiltEnv).
[ -d /ctargets ] && export STALLMON_CTARGETS=/ctargets

echo "stallmon-vm: boot kernel=$(uname -r) uptime=$(cut -d' ' -f1 /proc/uptime)"

failed=0
for ko in /lib/modules/*.ko; do
	[ -e "$ko" ] || continue
	if insmod "$ko"; then
		echo "stallmon-vm: insmod ${ko##*/} ok"
	else
		echo "stallmon-vm: insmod ${ko##*/} failed"
		failed=$((failed + 1))
	fi
done

# /tests/NAME/ holds NAME.test and the package's testdata, and is the
# working directory, as under go test.
for dir in /tests/*/; do
	name=${dir%/}
	name=${name##*/}
	echo "stallmon-vm: run $name"
	(cd "$dir" && STALLMON_REQUIRE_PRIVILEGED=1 STALLMON_IN_VM=1 \
		"./$name.test" -test.v -test.count=1 -test.timeout="${vmtest_timeout:-5m}" \
		${vmtest_run:+-test.run="$vmtest_run"} ${vmtest_skip:+-test.skip="$vmtest_skip"} 2>&1)
	rc=$?
	echo
	echo "stallmon-vm: exit $name rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
	[ "$rc" -eq 0 ] || failed=$((failed + 1))
done

if [ "$failed" -ne 0 ]; then
	echo "stallmon-vm: dmesg"
	dmesg | tail -n 80
fi
[ "$failed" -gt 127 ] && failed=127
echo "stallmon-vm: done status=$failed uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
# QEMU exits with (byte << 1) | 1 when a byte is written to port 0xf4.
printf "\\$(printf %03o "$failed")" | dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null
# Only reached without isa-debug-exit: QEMU then exits 0, which the
# harness reads as "no verdict" on x86 and as the done line's on arm64.
poweroff -f
