package etcd

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
)

// expirySlack is what etcd adds to a TTL before a lease is gone: its
// leader looks for expired leases every 500 ms.
const expirySlack = time.Second

// The key lives while the verdict is Alive, for longer than its TTL (so
// Apply's keep-alives refresh it), says "stalled" at once when the
// verdict turns, and is gone within the TTL after; back to Alive, a fresh
// lease writes it again; Fenced revokes it at once.
func TestKeyFollowsVerdict(t *testing.T) {
	s, srv := newSink(t, Config{})
	c := srv.Client
	key := s.Key()
	if key != "/stallmon/nodes/"+s.cfg.NodeID {
		t.Fatalf("key %q, want the default prefix's", key)
	}
	d := drive(t, s, 4242)

	d.set(sink.Alive)
	waitFor(t, "key written", 3*time.Second, func() bool { return getKey(t, c, key) != nil })
	first := getKey(t, c, key)
	if first.State != "alive" || first.PID != 4242 || first.Node != s.cfg.NodeID || first.Lease == 0 {
		t.Fatalf("key holds %+v, want alive, pid 4242, node %s, on a lease", first, s.cfg.NodeID)
	}
	// Outlive the TTL: only the keep-alives can keep the key.
	outlive := time.Now().Add(s.cfg.TTL + expirySlack)
	for time.Now().Before(outlive) {
		if getKey(t, c, key) == nil {
			t.Fatal("key gone while the verdict is alive")
		}
		time.Sleep(100 * time.Millisecond)
	}

	stalled := d.set(sink.Stalled)
	waitFor(t, "key marked stalled", time.Second, func() bool {
		v := getKey(t, c, key)
		return v != nil && v.State == "stalled"
	})
	gone := waitFor(t, "key gone after the stall", s.cfg.TTL+expirySlack, func() bool { return getKey(t, c, key) == nil })
	t.Logf("stalled to key gone: %v (TTL %v)", gone.Sub(stalled).Round(time.Millisecond), s.cfg.TTL)
	if gone.Sub(stalled) < s.cfg.TTL/2 {
		t.Errorf("key gone %v after the stall: a stall must leave it to expire, not delete it", gone.Sub(stalled))
	}

	d.set(sink.Alive)
	waitFor(t, "key back", 3*time.Second, func() bool {
		v := getKey(t, c, key)
		return v != nil && v.State == "alive"
	})
	if again := getKey(t, c, key); again.Lease == first.Lease {
		t.Errorf("key back on lease %x, the abandoned one: want a fresh lease", again.Lease)
	}

	fenced := d.set(sink.Fenced)
	gone = waitFor(t, "key gone after fenced", time.Second, func() bool { return getKey(t, c, key) == nil })
	t.Logf("fenced to key gone: %v", gone.Sub(fenced).Round(time.Millisecond))
}

// An agent that stops publishing while the verdict is Alive (its loop
// hangs, or it dies) stops the keep-alives with it: nothing else keeps
// the lease alive, and the key expires within the TTL.
func TestKeyExpiresWhenVerdictsStop(t *testing.T) {
	s, srv := newSink(t, Config{Election: "svc"})
	d := drive(t, s, 1)
	d.set(sink.Alive)
	waitFor(t, "elected", 3*time.Second, s.IsLeader)
	before := getKey(t, srv.Client, s.Key())

	d.pause()
	paused := time.Now()
	gone := waitFor(t, "key gone once verdicts stopped", s.cfg.TTL+expirySlack+tick, func() bool {
		return getKey(t, srv.Client, s.Key()) == nil
	})
	t.Logf("last verdict to key gone: %v", gone.Sub(paused).Round(time.Millisecond))
	if l := leader(t, srv.Client, "svc"); l != "" {
		t.Errorf("election still led by %q after the lease expired", l)
	}
	// The sink demoted itself no later than etcd dropped its key.
	if s.IsLeader() {
		t.Error("the sink still thinks it leads after its lease expired")
	}
	if recs := records(s.log, event.EtcdLeaseLost); len(recs) == 0 {
		t.Error("no etcd_lease_lost logged")
	}

	// Verdicts again: the lease was lost, a fresh one takes over.
	d.set(sink.Alive)
	waitFor(t, "key back", 3*time.Second, func() bool { return getKey(t, srv.Client, s.Key()) != nil })
	if after := getKey(t, srv.Client, s.Key()); after.Lease == before.Lease {
		t.Errorf("key back on the expired lease %x", after.Lease)
	}
	waitFor(t, "elected again", 3*time.Second, s.IsLeader)
}

// With etcd down, Apply fails within its context instead of blocking, and
// succeeds again once etcd is back.
func TestApplyFailsWithinContextWhenEtcdIsDown(t *testing.T) {
	s, srv := newSink(t, Config{})
	ctx := context.Background()
	alive := func() sink.Verdict {
		return sink.Verdict{State: sink.Alive, At: time.Now(), ValidUntil: time.Now().Add(time.Second), PID: 1}
	}
	if err := s.Apply(ctx, alive()); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	for _, v := range []sink.Verdict{alive(), {State: sink.Stalled, At: time.Now()}, {State: sink.Fenced, At: time.Now(), Final: true}} {
		const bound = 300 * time.Millisecond
		actx, cancel := context.WithTimeout(ctx, bound)
		start := time.Now()
		err := s.Apply(actx, v)
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Errorf("%v with etcd down: Apply succeeded", v.State)
		}
		if took > bound+200*time.Millisecond {
			t.Errorf("%v with etcd down: Apply took %v, context allowed %v", v.State, took, bound)
		}
		t.Logf("%v with etcd down: %v after %v", v.State, err, took.Round(time.Millisecond))
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Logf("(not a deadline error: %v)", err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Endpoints: []string{"127.0.0.1:2379"}, NodeID: "n1"}
	if err := good.Validate(); err != nil {
		t.Fatalf("%+v: %v", good, err)
	}
	for name, mod := range map[string]func(*Config){
		"no endpoints":       func(c *Config) { c.Endpoints = nil },
		"empty endpoint":     func(c *Config) { c.Endpoints = []string{""} },
		"prefix without /":   func(c *Config) { c.Prefix = "/stallmon" },
		"no node":            func(c *Config) { c.NodeID = "" },
		"ttl under etcd's":   func(c *Config) { c.TTL = time.Second },
		"ttl not whole":      func(c *Config) { c.TTL = 2500 * time.Millisecond },
		"hook, no election":  func(c *Config) { c.OnElected = "true" },
		"negative hook time": func(c *Config) { c.Election, c.HookTimeout = "e", -time.Second },
	} {
		c := good
		mod(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: %+v validated", name, c)
		} else if _, nerr := New(c); nerr == nil {
			t.Errorf("%s: New accepted %+v", name, c)
		}
	}
}

// Alive verdicts that come more than half a TTL apart are warned about
// once: the next late one would let the lease expire under a healthy
// service. The gap here stands for a publishing interval over TTL/2.
func TestWarnsWhenVerdictsComeTooRarely(t *testing.T) {
	s, _ := newSink(t, Config{})
	alive := func() sink.Verdict {
		return sink.Verdict{State: sink.Alive, At: time.Now(), ValidUntil: time.Now().Add(time.Second)}
	}
	for i := range 3 {
		if err := s.Apply(t.Context(), alive()); err != nil {
			t.Fatal(err)
		}
		if i < 2 {
			time.Sleep(s.cfg.TTL/2 + 100*time.Millisecond)
		}
	}
	if n := len(records(s.log, event.EtcdTTLTooShort)); n != 1 {
		t.Errorf("%d %s records, want 1", n, event.EtcdTTLTooShort)
	}
}
