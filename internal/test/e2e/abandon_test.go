package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/cgroup"
	"github.com/stallmon/stallmon/internal/testutil/cgrouptest"
	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// exitAbandoned is stallmon run's status when its service outlived the
// stop and was left behind.
const exitAbandoned = 5

// stallmon run whose service SIGKILL cannot end, for real: cat reads a
// FUSE file whose server never answers and ignores the interrupt. stallmon
// kills it (kill_after), reports it unkillable and, --restart=always
// notwithstanding, starts nothing beside it. SIGTERM must then be
// honoured: after --stop-timeout and --kill-grace stallmon exits 5, with
// service_abandoned naming the cgroup and the stuck thread, and without
// LEAVING or FENCED (peers hear silence). A second stallmon run in the
// same parent (systemd restarting the unit) waits for that cgroup to
// empty, saying so in its log, /readyz and metrics, and starts its
// service only once the answer lets the old one die.
func TestRunAbandonsUnkillableOnStop(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	const stopTimeout, grace = time.Second, time.Second
	parent := cgrouptest.New(t)
	// Mounted after the cgroup: its cleanup (which answers the read, so
	// the reader dies) runs before the cgroup's removal.
	fs := fusehang.Mount(t, fusehang.Options{})
	c := newCluster(t)
	first := startStallmon(t, append(append([]string{"run", "--log-format", "json", "--metrics-addr", "",
		"--node-id", "abandon", "--interval", "100ms", "--cgroup-parent", parent.Path,
		"--budget", "300ms", "--kill-after", "1s", "--kill-grace", grace.String(),
		"--stop-timeout", stopTimeout.String(), "--restart=always", "--restart-delay", "100ms"}, c.GroupFlags()...),
		// Not on stallmon's stdout: the harness reads it to its end, which
		// a process that outlives stallmon would hold open.
		"--", "sh", "-c", "exec cat "+fs.File+" >/dev/null 2>&1")...)
	started := first.Events.Next("service_started", 10*time.Second)
	cg, _ := started["cgroup"].(string)
	first.Events.Next("kill", 10*time.Second)
	// The agent's unkillable report, and the supervisor saying that the
	// next start waits for the cgroup, in either order.
	var unk, waiting map[string]any
	for unk == nil || waiting == nil {
		ev := first.Events.NextWhere("unkillable and service_waiting_old", grace+10*time.Second, func(ev map[string]any) bool {
			return ev["msg"] == "unkillable" || ev["msg"] == "service_waiting_old"
		})
		if ev["msg"] == "unkillable" {
			unk = ev
		} else {
			waiting = ev
		}
	}
	tid := int(unk["tid"].(float64))
	if waiting["cgroup"] != cg || waiting["incarnation"] != float64(1) || !strings.Contains(fmt.Sprint(waiting["threads"]), itoa(tid)+" cat D") {
		t.Errorf("service_waiting_old %v: want cgroup %s, incarnation 1, thread %d (cat, D)", waiting, cg, tid)
	}
	stalled := c.WaitPacket("STALLED", 5*time.Second, func(p heartbeat.Packet) bool { return p.State == heartbeat.StateStalled })

	stopAt := time.Now()
	if err := first.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := first.Wait(t, stopTimeout+grace+10*time.Second)
	took := time.Since(stopAt)
	if code != exitAbandoned {
		t.Fatalf("stallmon run exited %d after SIGTERM, want %d (abandoned)", code, exitAbandoned)
	}
	var ab map[string]any
	for _, ev := range first.Events.Rest() {
		switch ev["msg"] {
		case "service_abandoned":
			ab = ev
		case "service_started":
			if ev["incarnation"] == float64(1) {
				continue // the first, read above
			}
			t.Errorf("a second start beside the unkillable one: %v", ev)
		}
	}
	if ab == nil {
		t.Fatal("no service_abandoned event")
	}
	threads := fmt.Sprint(ab["threads"])
	if ab["cgroup"] != cg || !strings.Contains(threads, itoa(tid)+" cat D") {
		t.Errorf("service_abandoned %v: want cgroup %s and thread %d (cat, D)", ab, cg, tid)
	}
	if took < stopTimeout+grace {
		t.Errorf("exited %v after SIGTERM, before --stop-timeout + --kill-grace", took)
	}
	for _, tp := range c.Seen() {
		if tp.P.Incarnation == stalled.Incarnation && tp.P.Seq > stalled.Seq &&
			(tp.P.State == heartbeat.StateLeaving || tp.P.State == heartbeat.StateFenced || tp.P.State == heartbeat.StateAlive) {
			t.Errorf("%v after STALLED of a service left behind alive: %+v", tp.P.State, tp.P)
		}
	}
	if populated, err := (cgroup.Dir{Path: cg}).Populated(); err != nil || !populated {
		t.Fatalf("the abandoned cgroup %s: populated=%v, %v; want the stuck cat still there", cg, populated, err)
	}

	// The unit restarted: a new stallmon in the same parent.
	dir := t.TempDir()
	mark := dir + "/started"
	second := startStallmon(t, "run", "--log-format", "json", "--metrics-addr", "127.0.0.1:0", "--no-heartbeat",
		"--cgroup-parent", parent.Path, "--", "sh", "-c", `: > "$1"; exec sleep 300 >/dev/null 2>&1`, "sh", mark)
	// In either order: the metrics server and the run's first scan of
	// the parent start side by side.
	var addr string
	var wait map[string]any
	for addr == "" || wait == nil {
		ev := second.Events.NextWhere("metrics_listening and service_waiting_old", 10*time.Second, func(ev map[string]any) bool {
			return ev["msg"] == "metrics_listening" || ev["msg"] == "service_waiting_old"
		})
		if ev["msg"] == "metrics_listening" {
			addr = ev["addr"].(string)
		} else if wait == nil {
			wait = ev
		}
	}
	if wait["cgroup"] != cg || !strings.Contains(fmt.Sprint(wait["threads"]), itoa(tid)) {
		t.Errorf("service_waiting_old %v: want cgroup %s, thread %d", wait, cg, tid)
	}
	code, body := httpGet(t, addr, "/readyz")
	if code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "waiting: cgroup "+cg) {
		t.Errorf("/readyz while waiting: %d %q, want 503 waiting: cgroup %s ...", code, body, cg)
	}
	if _, m := httpGet(t, addr, "/metrics"); !strings.Contains(m, "\nstallmon_service_waiting 1\n") {
		t.Errorf("/metrics while waiting lacks stallmon_service_waiting 1")
	}
	if _, err := os.Stat(mark); err == nil {
		t.Fatal("the new service started beside the old one")
	}
	fs.Release()
	released := time.Now()
	second.Events.Next("service_started", 10*time.Second)
	waitFile(t, mark, "the new service's start")
	t.Logf("SIGTERM to exit 5: %v (stop-timeout %v, kill-grace %v); old service released to new start: %v",
		took.Round(time.Millisecond), stopTimeout, grace, time.Since(released).Round(time.Millisecond))
	if err := second.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	second.Wait(t, 15*time.Second)
}

// httpGet returns the status and body of GET http://addr/path.
func httpGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// --on-unkillable applies to run as to attach: checked as strictly, and
// armed for each start of the service (here one that exits at once, so
// that the node is never at risk).
func TestRunOnUnkillableIsArmed(t *testing.T) {
	privtest.Require(t)
	code, stderr := runStallmon(t, nil, "run", "--no-heartbeat", "--metrics-addr", "", "--no-kill", "--on-unkillable", "reboot", "--", "true")
	if code != exitUsage || !strings.Contains(stderr, "needs the kill") {
		t.Errorf("run --no-kill --on-unkillable reboot: exit %d, %q; want %d, needs the kill", code, stderr, exitUsage)
	}
	agent := startStallmon(t, "run", "--no-heartbeat", "--metrics-addr", "", "--log-format", "json",
		"--cgroup-parent", cgrouptest.New(t).Path, "--on-unkillable", "reboot", "--", "true")
	armed := agent.Events.Next("node_fence_armed", 10*time.Second)
	wantFields(t, "node_fence_armed", armed, map[string]any{"method": "reboot"})
	if code := agent.Wait(t, 10*time.Second); code != exitOK {
		t.Errorf("run --on-unkillable reboot -- true exited %d", code)
	}
}
