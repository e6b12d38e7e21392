package pacemaker

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/repo"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/testutil/pacemakertest"
)

// The snippets docs/integrations.md shows.
const (
	nodeHealthSnippet   = "deploy/pacemaker/node-health.sh"
	locationRuleSnippet = "deploy/pacemaker/location-rule.sh"
)

// stopBound is how long Pacemaker may take from the red to the resource
// stopped on an idle one-node cluster (0.1-0.4s measured): a transition
// on a loaded machine, with room.
const stopBound = 10 * time.Second

// TestNodeHealthStopsTheResource runs the node-health snippet: green
// keeps a resource on the node, the red of a stall stops it.
func TestNodeHealthStopsTheResource(t *testing.T) {
	c := pacemakertest.Shared(t)
	c.Script(t, repo.Path(t, nodeHealthSnippet))
	t.Cleanup(func() {
		c.Cmd(t, "crm_attribute", "--type", "crm_config", "--name", "node-health-strategy", "--delete")
	})
	svc := addDummy(t, c, "svc")
	s := newSink(t, c, fmt.Sprintf("#health-stallmon-%d", os.Getpid()))

	apply(t, s, alive())
	wantAttribute(t, c, s, Green)
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := st.Node(c.Node); n.Health != "green" || !st.RunsOn(svc, c.Node) {
		t.Fatalf("after green: node health %q, %s running here %v; want green and running", n.Health, svc, st.RunsOn(svc, c.Node))
	}

	t0 := time.Now()
	apply(t, s, sink.Verdict{State: sink.Stalled, At: t0})
	applied := time.Since(t0)
	stopped := c.WaitFor(t, svc+" stopped", stopBound, func(st pacemakertest.Status) bool { return !st.ActiveOn(svc, c.Node) })
	t.Logf("Apply(Stalled) to %s stopped: %v (attrd_updater returned after %v)",
		svc, stopped.Sub(t0).Round(time.Millisecond), applied.Round(time.Millisecond))
	wantAttribute(t, c, s, Red)
	st, err = c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Primitives() {
		if r.ID == svc && r.Failed {
			t.Errorf("%s should be stopped, not failed: %+v", svc, r)
		}
	}
}

// TestLocationRuleMovesOnlyItsResource runs the location-rule snippet: a
// red moves the resource it names and nothing else, and a green lets it
// come back.
func TestLocationRuleMovesOnlyItsResource(t *testing.T) {
	c := pacemakertest.Shared(t)
	watched := addDummy(t, c, "watched")
	other := addDummy(t, c, "other")
	attr := fmt.Sprintf("stallmon-%d", os.Getpid())
	c.Script(t, repo.Path(t, locationRuleSnippet), "RESOURCE="+watched, "ATTRIBUTE="+attr)
	t.Cleanup(func() {
		c.Cmd(t, "cibadmin", "--delete", "--scope", "constraints", "--xml-text", fmt.Sprintf("<rsc_location id='stallmon-%s'/>", watched))
	})
	s := newSink(t, c, attr)

	apply(t, s, alive())
	wantAttribute(t, c, s, Green)
	c.WaitFor(t, "both resources running", stopBound, func(st pacemakertest.Status) bool {
		return st.RunsOn(watched, c.Node) && st.RunsOn(other, c.Node)
	})

	t0 := time.Now()
	apply(t, s, sink.Verdict{State: sink.Blind, At: t0})
	stopped := c.WaitFor(t, watched+" stopped", stopBound, func(st pacemakertest.Status) bool { return !st.ActiveOn(watched, c.Node) })
	t.Logf("Apply(Blind) to %s stopped: %v", watched, stopped.Sub(t0).Round(time.Millisecond))
	settle(t, c)
	st, err := c.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !st.RunsOn(other, c.Node) {
		t.Errorf("%s, which the rule does not name, left the node too: %+v", other, st.Resources)
	}
	if n, _ := st.Node(c.Node); n.Health == "red" {
		t.Errorf("a normal attribute made the node's health red")
	}

	apply(t, s, alive())
	c.WaitFor(t, watched+" back after green", stopBound, func(st pacemakertest.Status) bool { return st.RunsOn(watched, c.Node) })
}

// TestSinkWritesOnlyChanges proves against attrd itself when the sink
// writes: between the sink's calls the test sets the attribute to yellow,
// a value the sink never writes, and sees whether it survives.
func TestSinkWritesOnlyChanges(t *testing.T) {
	c := pacemakertest.Shared(t)
	attr := fmt.Sprintf("stallmon-writes-%d", os.Getpid())
	s := newSink(t, c, attr)
	yellow := func() {
		t.Helper()
		c.Cmd(t, "attrd_updater", "--name="+attr, "--update=yellow")
		wantAttribute(t, c, s, "yellow")
	}

	apply(t, s, alive())
	wantAttribute(t, c, s, Green)
	yellow()
	apply(t, s, alive())
	wantAttribute(t, c, s, "yellow") // no change, no write

	apply(t, s, sink.Verdict{State: sink.Stalled})
	wantAttribute(t, c, s, Red)
	yellow()
	apply(t, s, sink.Verdict{State: sink.Blind})
	wantAttribute(t, c, s, "yellow") // red to red: no write

	// A failed write leaves the value unknown: the retry writes even
	// though red is what the sink last wrote with success.
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Apply(dead, alive()); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("Apply with a cancelled context: %v, want a context error", err)
	}
	wantAttribute(t, c, s, "yellow")
	apply(t, s, sink.Verdict{State: sink.Stalled})
	wantAttribute(t, c, s, Red)

	// Close after red writes nothing.
	yellow()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantAttribute(t, c, s, "yellow")
}

// TestCloseFailsClosed: a sink that last wrote green, or never wrote
// anything, writes red as it closes.
func TestCloseFailsClosed(t *testing.T) {
	c := pacemakertest.Shared(t)
	attr := fmt.Sprintf("stallmon-close-%d", os.Getpid())

	s := newSink(t, c, attr)
	apply(t, s, alive())
	wantAttribute(t, c, s, Green)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantAttribute(t, c, s, Red)

	// A green left by a stallmon that died without closing.
	c.Cmd(t, "attrd_updater", "--name="+attr, "--update=green")
	wantAttribute(t, c, s, Green)
	s = newSink(t, c, attr)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantAttribute(t, c, s, Red)
}

// TestApplyCarriesAttrdUpdatersMessage: with no attrd to reach (the call
// runs in a network namespace of its own, where attrd's abstract socket
// does not exist), the error says why in attrd_updater's words, and the
// next Apply writes the value again.
func TestApplyCarriesAttrdUpdatersMessage(t *testing.T) {
	c := pacemakertest.Shared(t)
	attr := fmt.Sprintf("stallmon-fail-%d", os.Getpid())
	s := newSink(t, c, attr)
	apply(t, s, sink.Verdict{State: sink.Stalled})
	wantAttribute(t, c, s, Red)

	err := inOwnNetns(t, func() error { return s.Apply(context.Background(), alive()) })
	if err == nil || !strings.Contains(err.Error(), "attrd_updater --name="+attr+" --update=green") ||
		!strings.Contains(err.Error(), "Could not update") {
		t.Fatalf("Apply with attrd out of reach: %v, want attrd_updater's command line and message", err)
	}
	t.Logf("the error: %v", err)
	wantAttribute(t, c, s, Red)
	apply(t, s, alive())
	wantAttribute(t, c, s, Green)
}

// inOwnNetns runs f on a thread moved to a new network namespace, so the
// processes f starts are there too.
func inOwnNetns(t *testing.T, f func() error) error {
	t.Helper()
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		orig, oerr := os.Open("/proc/thread-self/ns/net")
		if oerr != nil {
			err = oerr
			runtime.UnlockOSThread()
			return
		}
		defer orig.Close()
		if err = unix.Unshare(unix.CLONE_NEWNET); err != nil {
			err = fmt.Errorf("unshare: %w", err)
			runtime.UnlockOSThread()
			return
		}
		err = f()
		// Back home, or the thread stays locked and ends with this
		// goroutine.
		if serr := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); serr == nil {
			runtime.UnlockOSThread()
		}
	}()
	<-done
	return err
}

func alive() sink.Verdict {
	now := time.Now()
	return sink.Verdict{State: sink.Alive, At: now, ValidUntil: now.Add(time.Minute)}
}

func newSink(t *testing.T, c *pacemakertest.Cluster, attr string) *Sink {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	s, err := New(Config{Attribute: attr, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Empties the attribute: attrd has no way to remove one.
		c.Cmd(t, "attrd_updater", "--name="+attr, "--delete")
	})
	return s
}

func apply(t *testing.T, s *Sink, v sink.Verdict) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Apply(ctx, v); err != nil {
		t.Fatalf("Apply(%v): %v", v.State, err)
	}
}

// wantAttribute checks attrd's value of the sink's attribute. attrd
// answers attrd_updater's update before its query, so no wait is needed.
func wantAttribute(t *testing.T, c *pacemakertest.Cluster, s *Sink, want string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got, err := c.Attribute(ctx, s.Attribute())
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("attribute %s is %q, want %q", s.Attribute(), got, want)
	}
}

// addDummy adds an ocf:pacemaker:Dummy named after the test process and
// waits until it runs; the test's end deletes it.
func addDummy(t *testing.T, c *pacemakertest.Cluster, name string) string {
	t.Helper()
	id := fmt.Sprintf("stallmon-%s-%d", name, os.Getpid())
	c.Cmd(t, "cibadmin", "--create", "--scope", "resources", "--xml-text",
		fmt.Sprintf(`<primitive id="%[1]s" class="ocf" provider="pacemaker" type="Dummy">`+
			`<operations><op id="%[1]s-monitor" name="monitor" interval="10s"/></operations></primitive>`, id))
	t.Cleanup(func() {
		c.Cmd(t, "cibadmin", "--delete", "--scope", "resources", "--xml-text", fmt.Sprintf("<primitive id='%s'/>", id))
		settle(t, c)
	})
	c.WaitFor(t, id+" running", stopBound, func(st pacemakertest.Status) bool { return st.RunsOn(id, c.Node) })
	return id
}

// settle waits until the cluster has no transition left to run.
func settle(t *testing.T, c *pacemakertest.Cluster) {
	t.Helper()
	c.Cmd(t, "crm_resource", "--wait", "--timeout=30s")
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
