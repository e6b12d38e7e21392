package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/harness"
	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// cpuSeconds is the user and system time process pid has used.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// Flood bounds: whichever comes first ends it.
const (
	floodPackets = 24_000
	floodTime    = 500 * time.Millisecond
)

// Three nodes on a LAN: A runs stallmon attach on a healthy service, B
// runs stallmon listen, and C floods the group with garbage,
// unauthenticated, forged and replayed packets (A's own signed heartbeat,
// captured on C), bounded in count and time. B keeps A alive throughout,
// counts each rejection by its reason (never more than were sent, and
// every one that reached its socket), and spends bounded CPU.
func TestListenerUnderFlood(t *testing.T) {
	privtest.Require(t)
	privtest.RequireCommand(t, "ip")
	lan := nettest.NewLAN(t, 3)
	a, b, c := lan.Nodes[0], lan.Nodes[1], lan.Nodes[2]
	group := nettest.LoopbackGroup(t)
	dir := t.TempDir()
	secret := bytes.Repeat([]byte{0x42}, 32)
	keyFile, hookFile := filepath.Join(dir, "key"), filepath.Join(dir, "hook")
	if err := os.WriteFile(keyFile, []byte("id=1\nsecret="+hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	listener := harness.StartLogging(t, "ip", "netns", "exec", b.NS, stallmonBin, "listen", "--json", "--log-format", "json",
		"--interface", b.If, "--group", group.String(), "--key-file", keyFile, "--timeout", "1s", "--metrics-addr", "127.0.0.1:0",
		"--on-failover", `echo "$STALLMON_NODE $STALLMON_REASON" >> `+hookFile)
	metricsAddr := listener.Events.Next("metrics_listening", 10*time.Second)["addr"].(string)
	// ip netns exec execs: the process is the listener itself.
	if comm, _ := os.ReadFile("/proc/" + itoa(listener.Cmd.Process.Pid) + "/comm"); string(comm) != "stallmon\n" {
		t.Fatalf("process %d is %q, not the listener", listener.Cmd.Process.Pid, comm)
	}
	w := startWorkload(t)
	agent := harness.Start(t, "ip", "netns", "exec", a.NS, stallmonBin, "attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "flooded", "--interface", a.If, "--group", group.String(), "--multicast-loopback=false",
		"--key-file", keyFile, "--interval", "100ms", "--metrics-addr", "")
	agent.Events.Next("attached", 20*time.Second)
	listener.Events.NextWhere("flooded alive", 10*time.Second, func(ev map[string]any) bool {
		return ev["msg"] == nil && ev["node"] == "flooded" && ev["state"] == "alive"
	})

	// Node C: a receiver that hears A, and the flooder.
	var (
		recv *heartbeat.Receiver
		s    *heartbeat.Sender
	)
	if err := nettest.InNetns(c.NS, func() error {
		var err error
		if recv, err = heartbeat.Listen(heartbeat.ReceiverConfig{Group: group, Interface: c.If}); err != nil {
			return err
		}
		s, err = heartbeat.NewSender(heartbeat.SenderConfig{Group: group, Interface: c.If, TTL: 1})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	defer s.Close()
	ring, err := heartbeat.NewKeyRing(&heartbeat.Key{ID: 1, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A's next signed ALIVE, as C hears it: what C replays.
	recorded, real := readAlive(t, ctx, recv, ring, time.Now())
	floodPlan := floodKinds(t, real, recorded)
	before := floodCounters(t, b, listener.Cmd.Process.Pid)
	sent := map[string]int{}
	start := time.Now()
	for i := 0; i < floodPackets && time.Since(start) < floodTime; i++ {
		k := floodPlan[i%len(floodPlan)]
		if s.Send(k.packet()) == nil {
			sent[k.reason]++
		}
	}
	flood := time.Since(start)
	// A timeout's worth of A's heartbeats after the flood: had B lost
	// them all, it would have declared A dead by now. By then the flood
	// has left the kernel's queues too: every drop is in the counters,
	// and every packet B read in its CPU time.
	readAlive(t, ctx, recv, ring, start.Add(flood+time.Second))
	after := floodCounters(t, b, listener.Cmd.Process.Pid)

	metrics := scrapeWith(t, nettest.HTTPClient(b.NS), metricsAddr)
	counted := map[string]float64{}
	for _, m := range regexp.MustCompile(`stallmon_listener_packets_rejected_total\{reason="(\w+)"\} (\S+)`).FindAllStringSubmatch(metrics, -1) {
		counted[m[1]], _ = strconv.ParseFloat(m[2], 64)
	}
	total, totalSent := 0.0, 0
	for _, n := range counted {
		total += n
	}
	for _, n := range sent {
		totalSent += n
	}
	cpu := after.cpu - before.cpu
	drops := (after.udpInErrors - before.udpInErrors) + (after.softnetDropped - before.softnetDropped)
	t.Logf("C sent %d packets in %v, by reason %v; B counted %.0f, by reason %v; B's socket and the kernel's backlogs dropped %d; "+
		"listener CPU %.2fs (%.1f µs a packet counted)",
		totalSent, flood.Round(time.Millisecond), sent, total, nonZero(counted), drops, cpu, cpu/total*1e6)

	if !regexp.MustCompile(`stallmon_listener_node_state\{node="flooded",state="alive"\} 1\n`).MatchString(metrics) ||
		strings.Contains(metrics, `stallmon_listener_failovers_total{node="flooded"`) {
		t.Errorf("B does not hold A alive, or failed it over, after the flood:\n%s", grepLines(metrics, "flooded"))
	}
	if h, err := os.ReadFile(hookFile); err == nil {
		t.Errorf("B's failover hook ran during the flood: %s", h)
	}
	for _, ev := range listener.Events.Drain() {
		if ev["msg"] == nil && ev["node"] == "flooded" && ev["state"] != "alive" {
			t.Errorf("the flood moved node A: %v", ev)
		}
	}
	// A replay is refused by its sequence number while its send time is
	// within B's --timeout, by its send time after.
	counted["replay"] += counted["outside_window"]
	delete(counted, "outside_window")
	for reason, n := range counted {
		switch {
		case n > float64(sent[reason]):
			t.Errorf("%s: %.0f rejections counted, %d sent", reason, n, sent[reason])
		case sent[reason] > 0 && n == 0:
			t.Errorf("%s: none of %d counted", reason, sent[reason])
		}
	}
	// Every packet sent is counted, unless the kernel dropped it first.
	if missing := float64(totalSent) - total; missing > float64(drops) {
		t.Errorf("%.0f packets neither counted nor dropped by the kernel (%d dropped)", missing, drops)
	}
	if bound := 100e-6 * float64(totalSent); cpu > bound {
		t.Errorf("the listener spent %.2fs of CPU on %d packets, over 100 µs a packet (%.2fs)", cpu, totalSent, bound)
	}
}

// readAlive reads from recv until A's valid ALIVE sent at or after since.
func readAlive(t *testing.T, ctx context.Context, recv *heartbeat.Receiver, ring heartbeat.KeyRing, since time.Time) ([]byte, heartbeat.Packet) {
	t.Helper()
	for {
		b, err := recv.Read(ctx)
		if err != nil {
			t.Fatalf("no ALIVE from A sent after %v: %v", since.Format(time.StampMilli), err)
		}
		p, err := heartbeat.Unmarshal(b, ring)
		if err == nil && p.NodeID == "flooded" && p.State == heartbeat.StateAlive && !time.Unix(0, p.SendTime).Before(since) {
			return b, p
		}
	}
}

// floodKind is one kind of bad packet and the reason B should give.
type floodKind struct {
	reason string
	packet func() []byte
}

func floodKinds(t *testing.T, real heartbeat.Packet, recorded []byte) []floodKind {
	t.Helper()
	stalled := heartbeat.Packet{State: heartbeat.StateStalled, NodeID: "flooded", Incarnation: real.Incarnation, Seq: real.Seq + 1_000_000,
		SendTime: time.Now().UnixNano(), Stall: heartbeat.Stall{TID: 1, Name: "read", Elapsed: time.Second}}
	encode := func(k *heartbeat.Key) []byte {
		b, err := stalled.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fixed := func(b []byte) func() []byte { return func() []byte { return b } }
	garbage := func(n int) func() []byte {
		b := make([]byte, n)
		return func() []byte {
			for i := range b {
				b[i] = byte(rand.IntN(256))
			}
			b[0] = 'X' // never the magic's first byte
			return b
		}
	}
	return []floodKind{
		{"bad_mac", fixed(encode(&heartbeat.Key{ID: 1, Secret: bytes.Repeat([]byte{0x99}, 32)}))}, // forged STALLED
		{"unknown_key", fixed(encode(&heartbeat.Key{ID: 7, Secret: bytes.Repeat([]byte{0x99}, 32)}))},
		{"unauthenticated", fixed(encode(nil))},
		{"replay", fixed(recorded)},
		{"bad_magic", garbage(64)},
		{"truncated", garbage(3)},
	}
}

// floodSample is what the flood is measured by on node B.
type floodSample struct {
	cpu            float64 // the listener's CPU seconds
	udpInErrors    int     // datagrams B's UDP dropped (a full socket buffer)
	softnetDropped int     // packets the host's per-CPU backlogs dropped (veth, bridge)
}

func floodCounters(t *testing.T, b nettest.Node, pid int) floodSample {
	t.Helper()
	s := floodSample{cpu: cpuSeconds(t, pid)}
	if err := nettest.InNetns(b.NS, func() error {
		snmp, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		s.udpInErrors, err = snmpField(string(snmp), "Udp:", "InErrors")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	stat, err := os.ReadFile("/proc/net/softnet_stat")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(stat)) {
		if f := strings.Fields(line); len(f) > 1 {
			n, _ := strconv.ParseUint(f[1], 16, 32)
			s.softnetDropped += int(n)
		}
	}
	return s
}

// snmpField reads one counter of /proc/net/snmp, where each protocol has
// a line of names and a line of values.
func snmpField(snmp, proto, name string) (int, error) {
	var names []string
	for line := range strings.Lines(snmp) {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != proto {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if n == name && i < len(f) {
				return strconv.Atoi(f[i])
			}
		}
	}
	return 0, io.ErrUnexpectedEOF
}

// grepLines is the lines of text that contain s.
func grepLines(text, s string) string {
	var out []string
	for line := range strings.Lines(text) {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "")
}

// nonZero is counts without its zeros, for the log.
func nonZero(counts map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range counts {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
