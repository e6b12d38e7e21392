package etcd

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/testutil/etcdtest"
)

// tick is how often the driver publishes, as the agent's heartbeat does.
const tick = 200 * time.Millisecond

// driver feeds a sink through a real sink.Hub the way the agent does: the
// current verdict at every tick, and at once on a change.
type driver struct {
	hub  *sink.Hub
	mu   sync.Mutex
	st   sink.State
	pid  int
	on   bool
	stop chan struct{}
	done chan struct{}
}

func drive(t *testing.T, s sink.Sink, pid int) *driver {
	t.Helper()
	d := &driver{
		hub: sink.Start([]sink.Sink{s}, sink.Options{ApplyTimeout: time.Second, Logger: testLogger(t)}),
		pid: pid, stop: make(chan struct{}), done: make(chan struct{}),
	}
	go d.loop()
	t.Cleanup(func() {
		close(d.stop)
		d.hub.Stop(3 * time.Second)
	})
	return d
}

func (d *driver) verdict() sink.Verdict {
	now := time.Now()
	v := sink.Verdict{State: d.st, At: now, PID: d.pid}
	if d.st == sink.Alive {
		v.ValidUntil = now.Add(2 * tick)
	}
	v.Final = d.st == sink.Fenced || d.st == sink.Leaving
	return v
}

// set publishes st now and at every tick after, and returns when it was
// published.
func (d *driver) set(st sink.State) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.st, d.on = st, true
	d.hub.Publish(d.verdict())
	return time.Now()
}

// pause stops publishing, as an agent whose loop hangs would.
func (d *driver) pause() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.on = false
}

func (d *driver) loop() {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-d.stop:
			return
		case <-t.C:
		}
		d.mu.Lock()
		if d.on {
			d.hub.Publish(d.verdict())
		}
		d.mu.Unlock()
	}
}

// newSink starts etcd and a sink on it; the sink is closed at cleanup.
func newSink(t *testing.T, cfg Config) (*Sink, *etcdtest.Server) {
	t.Helper()
	srv := etcdtest.Start(t)
	cfg.Endpoints = []string{srv.Endpoint}
	if cfg.NodeID == "" {
		cfg.NodeID = fmt.Sprintf("node-%d", os.Getpid())
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// With etcd stopped by the test, Close fails to revoke.
		if err := s.Close(); err != nil && !srv.Stopped() {
			t.Errorf("closing the sink: %v", err)
		}
	})
	return s, srv
}

// waitFor polls cond until it holds, failing the test after timeout, and
// returns when it first held.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getKey reads key; nil when absent.
func getKey(t *testing.T, c *clientv3.Client, key string) *NodeValueAt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	v, err := ParseNodeValue(resp.Kvs[0].Value)
	if err != nil {
		t.Fatalf("%s holds %q: %v", key, resp.Kvs[0].Value, err)
	}
	return &NodeValueAt{NodeValue: v, Lease: clientv3.LeaseID(resp.Kvs[0].Lease)}
}

// NodeValueAt is a node key's value and the lease it is bound to.
type NodeValueAt struct {
	NodeValue
	Lease clientv3.LeaseID
}

// candidate is a peer in the election: a plain concurrency.Election on a
// session of its own, as another node's program would run it.
type candidate struct {
	name    string
	e       *concurrency.Election
	sess    *concurrency.Session
	elected chan time.Time
	cancel  context.CancelFunc
}

func campaignAs(t *testing.T, c *clientv3.Client, election, name string) *candidate {
	t.Helper()
	sess, err := concurrency.NewSession(c, concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cd := &candidate{name: name, e: concurrency.NewElection(sess, election), sess: sess,
		elected: make(chan time.Time, 1), cancel: cancel}
	go func() {
		if err := cd.e.Campaign(ctx, name); err == nil {
			cd.elected <- time.Now()
		}
	}()
	t.Cleanup(func() {
		cancel()
		sess.Close()
	})
	return cd
}

// resign gives up the office, and ends the session.
func (cd *candidate) resign(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := cd.e.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	cd.cancel()
	cd.sess.Close()
}

// leader is the value of the election's current leader, "" for none.
func leader(t *testing.T, c *clientv3.Client, election string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := c.Get(ctx, election+"/", clientv3.WithFirstCreate()...)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) == 0 {
		return ""
	}
	return string(resp.Kvs[0].Value)
}

// logRecorder is a slog handler that keeps every record for the test to
// look at, and logs it through t.
type logRecorder struct {
	t     testing.TB
	mu    *sync.Mutex
	recs  *[]map[string]any
	ended *bool // t.Logf panics once the test is over
	attrs []slog.Attr
}

func testLogger(t testing.TB) *slog.Logger {
	h := &logRecorder{t: t, mu: &sync.Mutex{}, recs: &[]map[string]any{}, ended: new(bool)}
	t.Cleanup(func() {
		h.mu.Lock()
		*h.ended = true
		h.mu.Unlock()
	})
	return slog.New(h)
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message, "level": r.Level.String()}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.Any()
	}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, m)
	if *h.ended {
		return nil
	}
	var b strings.Builder
	for k, v := range m {
		if k != "msg" && k != "level" {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
	}
	h.t.Logf("%s %s %s%s", r.Time.Format("15:04:05.000"), r.Level, r.Message, b.String())
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), as...)
	return &c
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// records returns the records logged so far with message msg.
func records(l *slog.Logger, msg string) []map[string]any {
	h := l.Handler().(*logRecorder)
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]any
	for _, r := range *h.recs {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}
