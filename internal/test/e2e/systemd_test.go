package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/integrations/systemd"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
	"github.com/stallmon/stallmon/internal/testutil/sdnotifytest"
)

// The unit files docs/integrations.md shows; the tests below run what they say.
const (
	notifyUnit    = "stallmon-notify@.service"
	watchedDropIn = "watched-service.conf"
	// mainPIDArg is how the unit names the watched service's main pid.
	mainPIDArg = `"$(systemctl show -P MainPID %i.service)"`
)

func readDeploy(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "deploy", "systemd", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// unitValue is the value of key in a unit file ("" if absent), with
// continuation lines joined.
func unitValue(t *testing.T, unit, key string) string {
	t.Helper()
	text := strings.ReplaceAll(unit, "\\\n", " ")
	for line := range strings.Lines(text) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), key+"="); ok {
			return v
		}
	}
	return ""
}

// notifyUnitArgs is the stallmon command line of stallmon-notify@.service
// for the service whose main pid is pid.
func notifyUnitArgs(t *testing.T, pid int) []string {
	t.Helper()
	exe := unitValue(t, readDeploy(t, notifyUnit), "ExecStart")
	script, ok := strings.CutPrefix(exe, "/bin/sh -c '")
	if !ok || !strings.HasSuffix(script, "'") || !strings.Contains(script, mainPIDArg) {
		t.Fatalf("%s: ExecStart=%s: want /bin/sh -c '... %s ...'", notifyUnit, exe, mainPIDArg)
	}
	script = strings.ReplaceAll(strings.TrimSuffix(script, "'"), mainPIDArg, itoa(pid))
	f := strings.Fields(script)
	if len(f) < 3 || f[0] != "exec" || f[1] != "/usr/bin/stallmon" {
		t.Fatalf("%s: ExecStart runs %q, want exec /usr/bin/stallmon ...", notifyUnit, script)
	}
	return f[2:]
}

// A typo in a systemd flag reaches the user as bad usage, on one line,
// before attaching.
func TestSystemdNotifyTypoIsUsage(t *testing.T) {
	code, stderr := runStallmon(t, nil, "attach", "--pid", "1", "--systemd-notify", "--notify-socket", "/nonexistent/notify")
	if code != exitUsage || !strings.Contains(stderr, "/nonexistent/notify") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("stallmon attach with a missing notify socket: exit %d, stderr %q; want %d, one line", code, stderr, exitUsage)
	}
}

// The shipped units pass systemd-analyze verify: stallmon-notify@ with
// the binary under test, and a service carrying the drop-in.
func TestSystemdDeployVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		privtest.Unavailable(t, "needs systemd-analyze (Debian's systemd package): "+err.Error())
		return
	}
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unit := readDeploy(t, notifyUnit)
	dropIn := readDeploy(t, watchedDropIn)
	for text, want := range map[string][]string{
		unit:   {"--systemd-notify", "CAP_SYS_ADMIN", "BindsTo=%i.service", "WantedBy=%i.service"},
		dropIn: {"NotifyAccess=main", "Restart=on-watchdog"},
	} {
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("a unit lacks %q", w)
			}
		}
	}
	// A service the drop-in is for: systemd-analyze loads drop-ins from
	// NAME.service.d beside the unit it verifies.
	service := write("myservice.service", "[Unit]\nDescription=a service stallmon watches\n\n[Service]\nExecStart=/bin/sleep infinity\n")
	write("myservice.service.d/stallmon.conf", dropIn)
	attach := write("stallmon-notify@myservice.service", strings.ReplaceAll(unit, "/usr/bin/stallmon", stallmonBin))
	for _, path := range []string{service, attach} {
		verifyUnit(t, analyze, path)
	}
}

// stallmon-notify@'s command, run on a service whose read(2) hangs on a
// FUSE mount: the notify socket gets WATCHDOG=trigger with the service's
// pid in its credentials, once, soon after the budget; stallmon pings its
// own watchdog as itself meanwhile, as the unit's WatchdogSec= asks.
func TestSystemdNotifyOnHungFS(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	const budget, killAfter = 500 * time.Millisecond, 3 * time.Second
	wdog, err := time.ParseDuration(unitValue(t, readDeploy(t, notifyUnit), "WatchdogSec"))
	if err != nil {
		t.Fatalf("%s: WatchdogSec: %v", notifyUnit, err)
	}
	var took []time.Duration
	for trial := range 3 {
		// One service, mount and stallmon per trial, cleaned up with it.
		t.Run(fmt.Sprintf("trial%d", trial), func(t *testing.T) {
			took = append(took, notifyTrial(t, trial, budget, killAfter, wdog))
		})
	}
	t.Logf("read hung to WATCHDOG=trigger received, %d trials: %v (budget %v, poll 100ms)", len(took), took, budget)
}

func notifyTrial(t *testing.T, trial int, budget, killAfter, wdog time.Duration) time.Duration {
	t.Helper()
	svc := sdnotifytest.Temp(t)
	own := sdnotifytest.Temp(t)
	// What systemd sets for stallmon's own unit (WatchdogSec=, NotifyAccess=main).
	t.Setenv("NOTIFY_SOCKET", own.Addr)
	t.Setenv("WATCHDOG_USEC", fmt.Sprint(wdog.Microseconds()))
	t.Setenv("WATCHDOG_PID", "")
	w := startWorkload(t)
	fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
	args := append(notifyUnitArgs(t, w.PID), "--notify-socket", svc.Addr,
		"--poll-interval", "100ms", "--metrics-addr", "", "--budget", budget.String(), "--kill-after", killAfter.String())
	agent := startStallmon(t, args...)
	agent.Events.Next("attached", 10*time.Second)
	ping := own.Next(t, 5*time.Second)
	if ping.Msg != "WATCHDOG=1" || int(ping.Cred.Pid) != agent.Cmd.Process.Pid {
		t.Fatalf("trial %d: keep-alive %q as pid %d, want WATCHDOG=1 as stallmon (%d)", trial, ping.Msg, ping.Cred.Pid, agent.Cmd.Process.Pid)
	}
	svc.None(t, "attaching to a healthy service")

	tid, issued := readHung(t, w, fs.File)
	d := svc.Next(t, budget+5*time.Second)
	took := d.At.Sub(issued)
	if int(d.Cred.Pid) != w.PID || int(d.Cred.Uid) != os.Getuid() || int(d.Cred.Gid) != os.Getgid() {
		t.Errorf("trial %d: trigger sent as pid %d uid %d gid %d, want the service's pid %d and stallmon's uid %d gid %d",
			trial, d.Cred.Pid, d.Cred.Uid, d.Cred.Gid, w.PID, os.Getuid(), os.Getgid())
	}
	status, trigger, _ := strings.Cut(d.Msg, "\n")
	if trigger != "WATCHDOG=trigger" || !strings.HasPrefix(status, fmt.Sprintf("STATUS=stallmon: thread %d (", tid)) ||
		!strings.Contains(status, fmt.Sprintf("of pid %d stuck in read for", w.PID)) || !strings.HasSuffix(status, "(over_budget)") {
		t.Errorf("trial %d: datagram %q: want the STATUS of thread %d stuck in read, then WATCHDOG=trigger", trial, d.Msg, tid)
	}
	// Within a poll and a publish of the budget; never before it.
	if took < budget-100*time.Millisecond || took > budget+time.Second {
		t.Errorf("trial %d: trigger %v after the read, want within [%v, %v]", trial, took, budget-100*time.Millisecond, budget+time.Second)
	}
	t.Logf("trial %d: read issued to trigger received %v: %s", trial, took.Round(time.Millisecond), status)

	// stallmon's own kill is the backstop here (nothing acts on the
	// trigger); once it is done, nothing more was sent for this stall.
	if code := agent.Wait(t, killAfter+10*time.Second); code != exitKilled {
		t.Fatalf("trial %d: stallmon exited %d, want %d (killed)", trial, code, exitKilled)
	}
	svc.None(t, "the stall, the kill and the exit")
	return took.Round(time.Millisecond)
}

// The whole handover with the real manager: Debian's systemd, booted as
// a container's init, runs a service with the shipped drop-in; the
// service's read(2) hangs on FUSE; stallmon-notify@'s command line sends
// the trigger, and systemd itself kills the service (WatchdogSignal=) and
// starts it again (Restart=on-watchdog), logging our STATUS= line.
// stallmon's own kill is pushed out of the way to show that systemd acts.
func TestSystemdManagerRestartsHungService(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	const budget = 500 * time.Millisecond
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	// Mounted before the manager starts, so that its namespace sees it.
	fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
	dir := t.TempDir()
	fifo := filepath.Join(dir, "go")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	units := filepath.Join(dir, "units")
	if err := os.MkdirAll(filepath.Join(units, "victim.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The service waits on a pipe (a legitimate wait) until the test
	// writes to it, then becomes cat, whose read of the FUSE file hangs.
	victim := fmt.Sprintf(`[Unit]
Description=a service whose read(2) hangs once told to
DefaultDependencies=no

[Service]
ExecStart=/bin/sh -c 'exec 3<>%s; read x <&3; exec cat %s'
`, fifo, fs.File)
	if err := os.WriteFile(filepath.Join(units, "victim.service"), []byte(victim), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(units, "victim.service.d", "stallmon.conf"), []byte(readDeploy(t, watchedDropIn)), 0o644); err != nil {
		t.Fatal(err)
	}
	m := sdnotifytest.StartManager(t, units, "victim.service")
	nsMain, err := strconv.Atoi(m.Show(t, "victim.service", "MainPID"))
	if err != nil {
		t.Fatal(err)
	}
	main := m.HostPID(t, nsMain)
	t.Logf("systemd is PID 1 of its namespace (%d here); victim.service (NotifyAccess=%s) main pid %d there, %d here",
		m.Init,
		m.Show(t, "victim.service", "NotifyAccess"), nsMain, main)

	args := append(notifyUnitArgs(t, main), "--notify-socket", m.Socket,
		"--poll-interval", "100ms", "--metrics-addr", "", "--budget", budget.String(), "--kill-after", "1m")
	agent := startStallmon(t, args...)
	agent.Events.Next("attached", 10*time.Second)

	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("go\n"); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := fs.WaitFor("the service's read", 10*time.Second, func(s fusehang.Stats) bool { return s.Pending > 0 }); err != nil {
		t.Fatal(err)
	}
	hung := time.Now()
	trig := agent.Events.Next("systemd_watchdog_triggered", budget+5*time.Second)
	triggered := eventTime(t, trig)
	if trig["as_pid"] != float64(main) {
		t.Errorf("trigger sent as pid %v, want the main pid %d", trig["as_pid"], main)
	}
	// systemd kills the service: stallmon sees it exit (on its own, as
	// far as stallmon is concerned) and stops.
	if code := agent.Wait(t, 10*time.Second); code != exitOK {
		t.Fatalf("stallmon exited %d, want %d (the target exited: systemd killed it)", code, exitOK)
	}
	gone := time.Now()
	deadline := time.Now().Add(10 * time.Second)
	for m.Show(t, "victim.service", "NRestarts") != "1" || m.Show(t, "victim.service", "SubState") != "running" {
		if time.Now().After(deadline) {
			t.Fatalf("victim.service not restarted: NRestarts=%s SubState=%s", m.Show(t, "victim.service", "NRestarts"),
				m.Show(t, "victim.service", "SubState"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	restarted := time.Now()
	log := m.Log()
	for _, want := range []string{
		"victim.service: Watchdog request (last status: stallmon: thread " + itoa(main) + " (cat) of pid " + itoa(main) + " stuck in read for",
		"victim.service: Failed with result 'watchdog'.",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("systemd's log lacks %q", want)
		}
	}
	for line := range strings.Lines(log) {
		if strings.Contains(line, "victim.service") {
			t.Logf("systemd: %s", strings.TrimSpace(line))
		}
	}
	t.Logf("read hung to: trigger sent %v, service killed by systemd (stallmon saw it exit) %v, service running again %v (RestartSec=1s)",
		triggered.Sub(hung).Round(time.Millisecond), gone.Sub(hung).Round(time.Millisecond), restarted.Sub(hung).Round(time.Millisecond))
}

// The drop-in's FailureAction= advice, checked with the manager itself:
// uncommented, it fires on the trigger although Restart= restarts the
// unit. exit-force stands in for reboot-force (the same emergency action
// path; in a container it ends the manager instead of the machine).
func TestSystemdFailureActionOnTrigger(t *testing.T) {
	privtest.Require(t)
	const status = 42
	dropIn := readDeploy(t, watchedDropIn)
	const commented = "#FailureAction=reboot-force\n"
	if !strings.Contains(dropIn, commented) {
		t.Fatalf("%s lacks %q", watchedDropIn, commented)
	}
	dropIn = strings.Replace(dropIn, commented, fmt.Sprintf("FailureAction=exit-force\nFailureActionExitStatus=%d\n", status), 1)
	units := filepath.Join(t.TempDir(), "units")
	if err := os.MkdirAll(filepath.Join(units, "victim.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	victim := "[Unit]\nDescription=a service\nDefaultDependencies=no\n\n[Service]\nExecStart=/bin/sleep infinity\n"
	if err := os.WriteFile(filepath.Join(units, "victim.service"), []byte(victim), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(units, "victim.service.d", "stallmon.conf"), []byte(dropIn), 0o644); err != nil {
		t.Fatal(err)
	}
	m := sdnotifytest.StartManager(t, units, "victim.service")
	if got := m.Show(t, "victim.service", "FailureAction"); got != "exit-force" {
		t.Fatalf("FailureAction=%q: the uncommented line did not take (wrong section?)", got)
	}
	nsMain, err := strconv.Atoi(m.Show(t, "victim.service", "MainPID"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := systemd.Send(ctx, m.Socket, m.HostPID(t, nsMain), "STATUS=test\nWATCHDOG=trigger"); err != nil {
		t.Fatal(err)
	}
	code, exited := m.Exited(10 * time.Second)
	if !exited || code != status {
		t.Fatalf("manager exited=%v with %d after the trigger, want FailureAction's %d:\n%s", exited, code, status, m.Log())
	}
	t.Logf("the trigger ran FailureAction= despite Restart=on-watchdog: manager exited %d", code)
}

// WATCHDOG=trigger only for a stall whose rule kills. A SIGSTOPped
// service (gdb, gcore, CRIU, docker pause) breaks the stopped rule,
// which never kills: with the drop-in's Restart=on-watchdog and
// WatchdogSignal=SIGKILL a trigger would have systemd kill it all the
// same. So stallmon sends nothing for it; after SIGCONT, a read that
// hangs (a rule that kills) is the first datagram the socket gets.
func TestSystemdNoTriggerForStoppedService(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	const budget = 500 * time.Millisecond
	t.Setenv("NOTIFY_SOCKET", "")
	t.Setenv("WATCHDOG_USEC", "")
	svc := sdnotifytest.Temp(t)
	w := startWorkload(t)
	fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
	args := append(notifyUnitArgs(t, w.PID), "--notify-socket", svc.Addr,
		"--poll-interval", "100ms", "--metrics-addr", "", "--budget", budget.String(), "--kill-after", "30s")
	agent := startStallmon(t, args...)
	agent.Events.Next("attached", 10*time.Second)

	if err := syscall.Kill(w.PID, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(w.PID, syscall.SIGCONT) })
	stall := agent.Events.Next("stall", 10*time.Second)
	wantFields(t, "stall", stall, map[string]any{"reason": "stopped"})
	if err := syscall.Kill(w.PID, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	agent.Events.Next("stall_cleared", 10*time.Second)
	// The stopped stall was declared: under --late-return=fence the
	// target is never reported alive again, and the rule it broke never
	// kills, so it is not killed either. A new stall of a killing rule
	// still reaches systemd.
	tid, issued := readHung(t, w, fs.File)
	d := svc.Next(t, budget+10*time.Second)
	// The stopped stall, longer, must not hide the read's: a rule that
	// kills comes first.
	if took := d.At.Sub(issued); took > budget+time.Second {
		t.Errorf("trigger %v after the read, want within %v", took, budget+time.Second)
	}
	if !strings.Contains(d.Msg, fmt.Sprintf("thread %d (", tid)) || !strings.Contains(d.Msg, "stuck in read") ||
		!strings.HasSuffix(d.Msg, "\nWATCHDOG=trigger") {
		t.Fatalf("first datagram %q: want the trigger for the hung read of thread %d, nothing for the stopped service", d.Msg, tid)
	}
	t.Logf("first datagram, for the read: %q", d.Msg)
}
