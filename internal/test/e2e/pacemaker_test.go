package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/fusehang"
	"github.com/stallmon/stallmon/internal/testutil/pacemakertest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// TestPacemakerMovesTheResourceOffAHungService: stallmon attach
// --pacemaker on a service whose read hangs on a FUSE mount turns the
// node's health red, and Pacemaker (node-health-strategy=migrate-on-red,
// set by the snippet docs/integrations.md shows) stops the resource on the node.
// The handover time, from the read issued to the resource stopped, is
// logged for each trial.
func TestPacemakerMovesTheResourceOffAHungService(t *testing.T) {
	privtest.Require(t)
	fusehang.Require(t)
	c := pacemakertest.New(t, pacemakertest.Options{})
	c.Script(t, filepath.Join(root, "deploy/pacemaker/node-health.sh"))
	svc := fmt.Sprintf("stallmon-e2e-%d", os.Getpid())
	c.Cmd(t, "cibadmin", "--create", "--scope", "resources", "--xml-text",
		fmt.Sprintf(`<primitive id="%[1]s" class="ocf" provider="pacemaker" type="Dummy">`+
			`<operations><op id="%[1]s-monitor" name="monitor" interval="10s"/></operations></primitive>`, svc))
	// The cluster's end stops the resource with it.

	const budget, poll, killAfter = 500 * time.Millisecond, 100 * time.Millisecond, 2 * time.Second
	// From the read issued: the budget, one poll to see it, then
	// attrd_updater and one Pacemaker transition (0.1-0.4s idle) with
	// room for a loaded machine.
	const bound = budget + poll + 3*time.Second
	var times []time.Duration
	for i := range 3 {
		t.Run(fmt.Sprintf("trial%d", i+1), func(t *testing.T) {
			attr := fmt.Sprintf("#health-stallmon-e2e-%d-%d", os.Getpid(), i)
			c.WaitFor(t, svc+" running", 30*time.Second, func(st pacemakertest.Status) bool { return st.RunsOn(svc, c.Node) })
			w := startWorkload(t)
			fs := fusehang.Mount(t, fusehang.Options{HonourInterrupts: true})
			agent := startStallmon(t, "attach", "--pid", itoa(w.PID), "--no-heartbeat", "--log-format", "json",
				"--poll-interval", poll.String(), "--metrics-addr", "",
				"--budget", budget.String(), "--kill-after", killAfter.String(),
				"--pacemaker", "--pacemaker-attribute", attr)
			agent.Events.Next("attached", 10*time.Second)
			set := agent.Events.Next("pacemaker_attribute_set", 10*time.Second)
			wantFields(t, "first pacemaker_attribute_set", set, map[string]any{"attribute": attr, "value": "green", "state": "alive"})
			if got := attribute(t, c, attr); got != "green" {
				t.Fatalf("attribute %s is %q in attrd, want green", attr, got)
			}
			st, err := c.Status(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !st.RunsOn(svc, c.Node) {
				t.Fatalf("%s not running on a green node: %+v", svc, st.Resources)
			}

			if _, err := w.Do("read-file " + fs.File); err != nil {
				t.Fatal(err)
			}
			issued := time.Now()
			stopped := c.WaitFor(t, svc+" stopped", bound+5*time.Second, func(st pacemakertest.Status) bool { return !st.ActiveOn(svc, c.Node) })
			took := stopped.Sub(issued)
			stall := agent.Events.Next("stall", 10*time.Second)
			red := agent.Events.Next("pacemaker_attribute_set", 10*time.Second)
			wantFields(t, "pacemaker_attribute_set", red, map[string]any{"attribute": attr, "value": "red", "state": "stalled"})
			t.Logf("read issued to: stall %v, attribute red %v, %s stopped %v",
				eventTime(t, stall).Sub(issued).Round(time.Millisecond), eventTime(t, red).Sub(issued).Round(time.Millisecond),
				svc, took.Round(time.Millisecond))
			times = append(times, took)
			if took > bound {
				t.Errorf("%s stopped %v after the read hung, want within %v (budget %v + poll %v + 3s)", svc, took, bound, budget, poll)
			}
			if took < budget {
				t.Errorf("%s stopped %v after the read hung, before the %v budget: not stallmon's doing", svc, took, budget)
			}

			// The service is killed at kill_after; the node stays red
			// until someone clears it.
			if code := agent.Wait(t, 15*time.Second); code != exitKilled {
				t.Fatalf("stallmon exited %d, want %d (killed)", code, exitKilled)
			}
			if got := attribute(t, c, attr); got != "red" {
				t.Errorf("attribute %s is %q after stallmon exited, want red", attr, got)
			}
			// Clearing it, as an operator would, lets the resource back.
			c.Cmd(t, "attrd_updater", "--name="+attr, "--delete")
		})
	}
	t.Logf("read issued to %s stopped, per trial: %v", svc, times)
}

// A --pacemaker that cannot work is refused as bad usage, on one line,
// before anything is attached.
func TestPacemakerFlagErrors(t *testing.T) {
	missing := t.TempDir() + "/attrd_updater"
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--pacemaker", "--attrd-updater", missing}, "attrd_updater not found"},
		{[]string{"--pacemaker-attribute", "stallmon"}, "--pacemaker-attribute needs --pacemaker"},
	} {
		args := append([]string{"attach", "--pid", "1", "--no-heartbeat", "--metrics-addr", ""}, c.args...)
		code, stderr := runStallmon(t, nil, args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("stallmon %q: exit %d, stderr %q; want %d and one line with %q", args, code, stderr, exitUsage, c.want)
		}
	}
}

func attribute(t *testing.T, c *pacemakertest.Cluster, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := c.Attribute(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPacemakerAgentTurnsRedWhenStallmonDies: the OCF agent under
// deploy/pacemaker/ocf runs stallmon in a group after the service; a
// SIGKILL to stallmon (no Close, no red of its own) fails the agent's
// monitor, its stop sets the attribute red, and the service leaves.
func TestPacemakerAgentTurnsRedWhenStallmonDies(t *testing.T) {
	privtest.Require(t)
	c := pacemakertest.New(t, pacemakertest.Options{OCFProviders: map[string]string{"stallmon": filepath.Join(root, "deploy/pacemaker/ocf")}})
	c.Script(t, filepath.Join(root, "deploy/pacemaker/node-health.sh"))
	w := startWorkload(t)
	dir := t.TempDir()
	pidfile := dir + "/service.pid"
	if err := os.WriteFile(pidfile, []byte(itoa(w.PID)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("stallmon-agent-%d", os.Getpid())
	attr := "#health-" + id
	const monitor = time.Second
	c.Cmd(t, "cibadmin", "--create", "--scope", "resources", "--xml-text", fmt.Sprintf(`<group id="%[1]s">
  <primitive id="%[1]s-svc" class="ocf" provider="pacemaker" type="Dummy"/>
  <primitive id="%[1]s-watch" class="ocf" provider="stallmon" type="stallmon">
    <instance_attributes id="%[1]s-watch-params">
      <nvpair id="%[1]s-watch-binary" name="binary" value="%[2]s"/>
      <nvpair id="%[1]s-watch-pidfile" name="pidfile" value="%[3]s"/>
      <nvpair id="%[1]s-watch-attribute" name="attribute" value="%[4]s"/>
      <nvpair id="%[1]s-watch-options" name="options" value="--no-heartbeat --metrics-addr= --poll-interval 100ms --log-format json"/>
      <nvpair id="%[1]s-watch-logfile" name="logfile" value="%[5]s"/>
    </instance_attributes>
    <operations>
      <op id="%[1]s-watch-monitor" name="monitor" interval="%[6]s" timeout="10s"/>
    </operations>
  </primitive>
</group>`, id, stallmonBin, pidfile, attr, dir+"/stallmon.log", monitor))
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(dir + "/stallmon.log")
			t.Logf("stallmon's log:\n%s", b)
		}
	})
	svc, watch := id+"-svc", id+"-watch"
	c.WaitFor(t, "the group running", 30*time.Second, func(st pacemakertest.Status) bool {
		return st.RunsOn(svc, c.Node) && st.RunsOn(watch, c.Node)
	})
	// The agent's start returns once stallmon judged the service alive.
	if got := attribute(t, c, attr); got != "green" {
		t.Fatalf("attribute %s is %q once the agent started, want green", attr, got)
	}
	pids, err := c.Processes("stallmon")
	if err != nil || len(pids) != 1 {
		t.Fatalf("stallmon processes in the cluster: %v %v, want one", pids, err)
	}

	if err := syscall.Kill(pids[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	bound := monitor + 5*time.Second
	stopped := c.WaitFor(t, svc+" stopped", bound+5*time.Second, func(st pacemakertest.Status) bool { return !st.ActiveOn(svc, c.Node) })
	took := stopped.Sub(killed)
	t.Logf("stallmon SIGKILLed to %s stopped: %v (monitor interval %v)", svc, took.Round(time.Millisecond), monitor)
	if took > bound {
		t.Errorf("%s stopped %v after stallmon died, want within %v (monitor interval + 5s)", svc, took, bound)
	}
	if got := attribute(t, c, attr); got != "red" {
		t.Errorf("attribute %s is %q after the agent's stop, want red", attr, got)
	}
	if processExited(t, w.PID) {
		t.Errorf("the service process died: the agent must leave it to its own resource")
	}
}
