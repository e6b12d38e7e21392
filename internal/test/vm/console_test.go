package vm

import (
	"io"
	"strings"
	"testing"
	"time"
)

// A console as /init writes it, with the noise a real one has: firmware
// escape sequences, carriage returns, and kernel messages in between.
const sampleConsole = "\x1bc\x1b[?7l\x1b[2JSeaBIOS (version 1.16.2)\r\n" +
	"\x1bc\x1b[?7l\x1b[2Jstallmon-vm: boot kernel=6.1.0-56-amd64 uptime=2.46\r\n" +
	"stallmon-vm: insmod faultmod.ko ok\r\n" +
	"stallmon-vm: run guest\r\n" +
	"=== RUN   TestIoctlsExist\r\n" +
	"--- PASS: TestIoctlsExist (0.01s)\r\n" +
	"PASS\r\n" +
	"\r\n" +
	"stallmon-vm: exit guest rc=0 uptime=3.1\r\n" +
	"stallmon-vm: run monitor\r\n" +
	"--- FAIL: TestX (0.1s)\r\n" +
	"[   26.3] watchdog: BUG: soft lockup\r\n" +
	"FAIL\r\n" +
	"stallmon-vm: exit monitor rc=1 uptime=9.0\r\n" +
	"stallmon-vm: dmesg\r\n" +
	"stallmon-vm: done status=1 uptime=9.1\r\n"

func TestFollowConsole(t *testing.T) {
	r := &vmResult{qemuExit: -1, status: -1, done: -1}
	if err := r.follow(strings.NewReader(sampleConsole), io.Discard, time.Now()); err != nil {
		t.Fatal(err)
	}
	if r.kernel != "6.1.0-56-amd64" || r.boot <= 0 || r.done != 1 || len(r.insmodErr) != 0 {
		t.Fatalf("kernel=%q boot=%v done=%d insmodErr=%q", r.kernel, r.boot, r.done, r.insmodErr)
	}
	if len(r.packages) != 2 || r.packages[0].name != "guest" || r.packages[0].rc != 0 ||
		r.packages[1].name != "monitor" || r.packages[1].rc != 1 {
		t.Fatalf("packages = %+v", r.packages)
	}
	if out := strings.Join(r.packages[1].output, "\n"); !strings.Contains(out, "--- FAIL: TestX") || strings.Contains(out, "\r") {
		t.Fatalf("monitor output = %q", out)
	}
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		r    vmResult
		ok   bool
		want string
	}{
		{vmResult{boot: 1, qemuExit: 1, status: 0, done: 0}, true, "ok"},
		{vmResult{boot: 1, qemuExit: 3, status: 1, done: 1}, false, "test binaries failed: 1"},
		{vmResult{boot: 1, qemuExit: -1, status: -1, done: -1, timedOut: true}, false, "timed out"},
		{vmResult{qemuExit: 1, status: 0, done: -1}, false, "never reached /init"},
		// QEMU's own failure exit (1) reads as guest status 0: only the
		// console's done line tells them apart.
		{vmResult{boot: 1, qemuExit: 1, status: 0, done: -1}, false, "stopped before /init finished"},
		{vmResult{boot: 1, qemuExit: 0, status: -1, done: 0}, false, "no status through isa-debug-exit"},
		{vmResult{boot: 1, qemuExit: 1, status: 0, done: 0, insmodErr: []string{"faultmod.ko failed"}}, false, "insmod failed"},
	} {
		if got := tc.r.verdict(); !strings.Contains(got, tc.want) || tc.r.ok() != tc.ok {
			t.Errorf("%+v: verdict %q ok=%v, want %q ok=%v", tc.r, got, tc.r.ok(), tc.want, tc.ok)
		}
	}
}

func TestKillTimeLessLag(t *testing.T) {
	r := &vmResult{
		lines: []string{"boot", "stallmon-vm: killed, fencing armed method=reboot lag_ms=250", "reboot: Restarting system"},
		times: []time.Duration{time.Second, 5 * time.Second, 6 * time.Second},
	}
	at, ok := r.killTime("stallmon-vm: killed, fencing armed method=reboot")
	if !ok || at != 5*time.Second-250*time.Millisecond {
		t.Fatalf("killTime = %v, %v; want 4.75s", at, ok)
	}
	if _, ok := r.killTime("method=watchdog"); ok {
		t.Fatal("killTime found a marker that is not there")
	}
}
