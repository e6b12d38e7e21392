package etcd

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/stallmon/stallmon/internal/sink"
)

// hookLog is a file the hooks append a line to: "EVENT NODE STATE REASON PID".
type hookLog string

func newHookLog(t *testing.T) (hookLog, string) {
	path := filepath.Join(t.TempDir(), "hooks")
	cmd := fmt.Sprintf(`printf '%%s %%s %%s %%s %%s\n' "$STALLMON_EVENT" "$STALLMON_NODE" "$STALLMON_STATE" "$STALLMON_REASON" "$STALLMON_PID" >> '%s'`, path)
	return hookLog(path), cmd
}

func (h hookLog) lines() []string {
	b, _ := os.ReadFile(string(h))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// waitLine waits for line n (from 0) and returns it.
func (h hookLog) waitLine(t *testing.T, n int, timeout time.Duration) string {
	t.Helper()
	waitFor(t, fmt.Sprintf("hook line %d", n+1), timeout, func() bool { return len(h.lines()) > n && h.lines()[n] != "" })
	return h.lines()[n]
}

// The sink campaigns while the target is alive and leads; a peer waiting
// in the same election takes over at once when the target stalls (the
// sink resigns), and at once when it is fenced (the lease is revoked).
// The hooks run at each change, with the node and state in their
// environment.
func TestElectionHandover(t *testing.T) {
	const election = "/stallmon-test/election"
	hooks, cmd := newHookLog(t)
	s, srv := newSink(t, Config{Election: election, OnElected: cmd, OnDemoted: cmd})
	c := srv.Client
	node := s.cfg.NodeID
	d := drive(t, s, 777)

	d.set(sink.Alive)
	waitFor(t, "sink elected", 3*time.Second, s.IsLeader)
	if l := leader(t, c, election); l != node {
		t.Fatalf("etcd says %q leads, want %q", l, node)
	}
	if got, want := hooks.waitLine(t, 0, 3*time.Second), "elected "+node+" alive campaign_won 777"; got != want {
		t.Errorf("on-elected hook wrote %q, want %q", got, want)
	}

	// A peer waits while the sink leads, for longer than a TTL: the
	// keep-alives hold the office.
	peer := campaignAs(t, c, election, "peer-1")
	select {
	case <-peer.elected:
		t.Fatal("the peer was elected while the sink leads and the target is alive")
	case <-time.After(s.cfg.TTL + expirySlack):
	}

	stalled := d.set(sink.Stalled)
	var at time.Time
	select {
	case at = <-peer.elected:
	case <-time.After(s.cfg.TTL + expirySlack):
		t.Fatal("the peer was not elected after the stall")
	}
	t.Logf("stalled to peer elected: %v", at.Sub(stalled).Round(time.Millisecond))
	if at.Sub(stalled) > time.Second {
		t.Errorf("peer elected %v after the stall, want within a second (the sink resigns at once)", at.Sub(stalled))
	}
	if got, want := hooks.waitLine(t, 1, 3*time.Second), "demoted "+node+" stalled stalled 777"; got != want {
		t.Errorf("on-demoted hook wrote %q, want %q", got, want)
	}
	if s.IsLeader() {
		t.Error("the sink still leads after the stall")
	}

	// Alive again: the sink campaigns behind the peer, and leads once
	// the peer resigns.
	d.set(sink.Alive)
	waitFor(t, "sink campaigning again", 3*time.Second, func() bool {
		resp, err := c.Get(t.Context(), election+"/", clientv3.WithPrefix())
		return err == nil && len(resp.Kvs) == 2
	})
	if s.IsLeader() {
		t.Fatal("the sink leads while the peer holds the office")
	}
	peer.resign(t)
	waitFor(t, "sink elected again", 3*time.Second, s.IsLeader)
	if got, want := hooks.waitLine(t, 2, 3*time.Second), "elected "+node+" alive campaign_won 777"; got != want {
		t.Errorf("second on-elected hook wrote %q, want %q", got, want)
	}

	peer2 := campaignAs(t, c, election, "peer-2")
	waitFor(t, "peer-2 campaigning", 3*time.Second, func() bool {
		resp, err := c.Get(t.Context(), election+"/", clientv3.WithPrefix())
		return err == nil && len(resp.Kvs) == 2
	})
	fenced := d.set(sink.Fenced)
	select {
	case at = <-peer2.elected:
	case <-time.After(s.cfg.TTL + expirySlack):
		t.Fatal("peer-2 was not elected after fenced")
	}
	t.Logf("fenced to peer elected: %v", at.Sub(fenced).Round(time.Millisecond))
	if at.Sub(fenced) > time.Second {
		t.Errorf("peer elected %v after fenced, want within a second (the lease is revoked)", at.Sub(fenced))
	}
	if got, want := hooks.waitLine(t, 3, 3*time.Second), "demoted "+node+" fenced fenced 777"; got != want {
		t.Errorf("on-demoted hook wrote %q, want %q", got, want)
	}
}

// With etcd out of reach, the leader demotes itself (and runs
// --on-demoted) once its lease may have expired in etcd, though Apply
// keeps failing and no answer ever says so.
func TestLeaderDemotesItselfWhenEtcdIsGone(t *testing.T) {
	hooks, cmd := newHookLog(t)
	s, srv := newSink(t, Config{Election: "svc", OnElected: cmd, OnDemoted: cmd})
	d := drive(t, s, 5)
	d.set(sink.Alive)
	waitFor(t, "elected", 3*time.Second, s.IsLeader)
	hooks.waitLine(t, 0, 3*time.Second)

	srv.Stop()
	stopped := time.Now()
	demoted := waitFor(t, "demoted without etcd", s.cfg.TTL+time.Second, func() bool { return !s.IsLeader() })
	t.Logf("etcd killed to self-demotion: %v (TTL %v)", demoted.Sub(stopped).Round(time.Millisecond), s.cfg.TTL)
	if got, want := hooks.waitLine(t, 1, 3*time.Second), "demoted "+s.cfg.NodeID+" alive lease_lost 5"; got != want {
		t.Errorf("on-demoted hook wrote %q, want %q", got, want)
	}
}

// A lease revoked behind the sink's back (an operator, or etcd expiring
// it while stallmon could not reach it) ends the office at once: the
// sink sees its key go, runs --on-demoted, and the next Alive verdict
// starts afresh with a new lease and a new campaign.
func TestLeaseRevokedBehindItsBack(t *testing.T) {
	hooks, cmd := newHookLog(t)
	s, srv := newSink(t, Config{Election: "svc", OnElected: cmd, OnDemoted: cmd})
	d := drive(t, s, 9)
	d.set(sink.Alive)
	waitFor(t, "elected", 3*time.Second, s.IsLeader)
	hooks.waitLine(t, 0, 3*time.Second)
	old := getKey(t, srv.Client, s.Key()).Lease
	if _, err := srv.Client.Revoke(t.Context(), old); err != nil {
		t.Fatal(err)
	}
	if got, want := hooks.waitLine(t, 1, 3*time.Second), "demoted "+s.cfg.NodeID+" alive "; !strings.HasPrefix(got, want) {
		t.Errorf("on-demoted hook wrote %q, want it to start with %q", got, want)
	}
	waitFor(t, "elected on a new lease", 5*time.Second, func() bool {
		v := getKey(t, srv.Client, s.Key())
		return s.IsLeader() && v != nil && v.Lease != old && leader(t, srv.Client, "svc") == s.cfg.NodeID
	})
	if got, want := hooks.waitLine(t, 2, 3*time.Second), "elected "+s.cfg.NodeID+" alive campaign_won 9"; got != want {
		t.Errorf("on-elected hook wrote %q, want %q", got, want)
	}
}

// A stall whose lease has expired already is applied: there is nothing
// left to take away.
func TestStallAfterLeaseExpired(t *testing.T) {
	s, srv := newSink(t, Config{Election: "svc"})
	ctx := t.Context()
	now := time.Now()
	if err := s.Apply(ctx, sink.Verdict{State: sink.Alive, At: now, ValidUntil: now.Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Client.Revoke(ctx, getKey(t, srv.Client, s.Key()).Lease); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(ctx, sink.Verdict{State: sink.Stalled, At: time.Now()}); err != nil {
		t.Fatalf("stalled after the lease expired: %v", err)
	}
	if v := getKey(t, srv.Client, s.Key()); v != nil {
		t.Errorf("key %+v written again without a lease", v)
	}
}
