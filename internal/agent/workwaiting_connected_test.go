package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/listenq"
)

// The scan asks for connected sockets only when the rule says by_socket:
// all.
func TestScanAsksConnectedOnlyForAll(t *testing.T) {
	for _, c := range []struct {
		rule string
		want bool
	}{
		{"{budget: 1s, kill_after: 3s}", false},
		{"{budget: 1s, kill_after: 3s, by_socket: listeners}", false},
		{"{budget: 1s, kill_after: 3s, by_socket: all}", true},
	} {
		table, err := budget.Parse([]byte("default: {budget: 5s, kill_after: 60s}\nstates:\n  work_waiting: "+c.rule+"\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		src := &fakeListeners{}
		a := &Agent{cfg: Config{Table: table, PollInterval: 100 * time.Millisecond, Listeners: src}}
		if _, err := a.scanListeners(waitSnap(time.Unix(1000, 0))); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(src.connected, []bool{c.want}) {
			t.Errorf("%s: scans asked connected=%v, want [%v]", c.rule, src.connected, c.want)
		}
	}
}

func unread(n uint32, mark uint64) listenq.Listener {
	return listenq.Listener{PID: 7, FD: 9, Ino: 500, Kind: listenq.TCP, Addr: "127.0.0.1:4000", Port: 4000,
		Queued: n, Limit: 131072, Mark: listenq.Mark{mark}, Connected: true}
}

// A connected socket whose unread data stays unread is stalled past the
// budget, and the event says it is a connected socket; one read (the mark
// moves) starts the wait anew. Connected sockets stay out of the
// per-listener metrics.
func TestConnectedUnreadStalls(t *testing.T) {
	var w queueWatch
	t0 := time.Unix(1000, 0)
	w.over([]listenq.Listener{unread(10, 1)}, waitSnap(t0), waitRule)
	got := w.over([]listenq.Listener{unread(10, 1)}, waitSnap(t0.Add(2500*time.Millisecond)), waitRule)
	if len(got) != 1 || got[0].span != 2500*time.Millisecond || got[0].fd.Num != 9 {
		t.Fatalf("unread 2.5s under a 2s budget: %+v, want one stall on fd 9", got)
	}
	if len(w.latest) != 0 {
		t.Errorf("connected socket in the listener metrics: %+v", w.latest)
	}
	var attrs []string
	for _, a := range queueAttrs(got[0].queue, got[0].span) {
		attrs = append(attrs, a.String())
	}
	if s := strings.Join(attrs, " "); !strings.Contains(s, "socket=connected") || !strings.Contains(s, "local_addr=127.0.0.1:4000") || !strings.Contains(s, "queued=10") {
		t.Errorf("attrs %s, want the connected socket named", s)
	}
	// A reader that reads slowly but steadily: never stalled.
	for i := range 20 {
		at := t0.Add(time.Duration(3+i) * time.Second)
		if got := w.over([]listenq.Listener{unread(10, uint64(2+i))}, waitSnap(at), waitRule); len(got) != 0 {
			t.Fatalf("reading socket stalled at %v: %+v", at, got[0])
		}
	}
}

// twoListeners returns a TCP listener on port 80 and a unix one, both
// never accepted from.
type twoListeners struct{}

func (twoListeners) Scan(pids []int, connected bool) ([]listenq.Listener, error) {
	tcp := queued(2, 1)
	unixl := queued(2, 1)
	unixl.Ino, unixl.FD, unixl.Kind, unixl.Addr, unixl.Port = 100, 4, listenq.Unix, "/run/app.sock", 0
	return []listenq.Listener{tcp, unixl}, nil
}

// only and skip choose the sockets judged; the others are neither
// judged nor in the metrics.
func TestSocketFilterChoosesJudged(t *testing.T) {
	for _, c := range []struct {
		keys string
		want []string
	}{
		{"", []string{"127.0.0.1:80", "/run/app.sock"}},
		{", only: [80]", []string{"127.0.0.1:80"}},
		{", only: [/run/app.sock]", []string{"/run/app.sock"}},
		{", skip: [80]", []string{"/run/app.sock"}},
		{", skip: [81]", []string{"127.0.0.1:80", "/run/app.sock"}},
	} {
		table, err := budget.Parse([]byte("default: {budget: 5s, kill_after: 60s}\nstates:\n  work_waiting: {budget: 1s, kill_after: 3s"+c.keys+"}\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		a := &Agent{cfg: Config{Table: table, PollInterval: 100 * time.Millisecond, Listeners: twoListeners{}}}
		t0 := time.Unix(1000, 0)
		if _, err := a.scanListeners(waitSnap(t0)); err != nil {
			t.Fatal(err)
		}
		got, err := a.scanListeners(waitSnap(t0.Add(1500 * time.Millisecond)))
		if err != nil {
			t.Fatal(err)
		}
		var addrs []string
		for _, j := range got {
			addrs = append(addrs, j.queue.listener.Addr)
		}
		if !slices.Equal(addrs, c.want) || len(a.queues.latest) != len(c.want) {
			t.Errorf("rule%s: stalled %v (%d in the metrics), want %v", c.keys, addrs, len(a.queues.latest), c.want)
		}
	}
}
