package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/nettest"
	"github.com/stallmon/stallmon/internal/privtest"
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

// A flood of garbage, unauthenticated, forged and replayed packets, 20,000
// in all, while a node is healthy: the listener keeps it alive, counts each
// rejection by reason, and spends bounded CPU.
func TestListenerUnderFlood(t *testing.T) {
	privtest.Require(t)
	// A group and key of the test's own: the shared cluster's tap would
	// take the flood for a fault of stallmon's.
	group := nettest.LoopbackGroup(t)
	secret := bytes.Repeat([]byte{0x42}, 32)
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("id=1\nsecret="+hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--group", group.String(), "--interface", "lo", "--key-file", keyFile}
	recv, err := heartbeat.Listen(heartbeat.ReceiverConfig{Group: group, Interface: "lo"})
	if err != nil {
		t.Fatal(err)
	}
	defer recv.Close()
	w := startWorkload(t)
	listener := startStallmonLogging(t, append([]string{"listen", "--json", "--log-format", "json", "--timeout", "1s",
		"--metrics-addr", "127.0.0.1:0"}, flags...)...)
	addr := listener.Events.Next("metrics_listening", 10*time.Second)["addr"].(string)
	agent := startStallmon(t, append([]string{"attach", "--pid", itoa(w.PID), "--log-format", "json",
		"--node-id", "flooded", "--interval", "100ms", "--metrics-addr", ""}, flags...)...)
	agent.Events.Next("attached", 20*time.Second)
	listener.Events.NextWhere("flooded alive", 10*time.Second, func(ev map[string]any) bool {
		return ev["msg"] == nil && ev["node"] == "flooded" && ev["state"] == "alive"
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recorded, err := recv.Read(ctx) // a real, signed ALIVE, to replay
	if err != nil {
		t.Fatal(err)
	}
	ring, err := heartbeat.NewKeyRing(&heartbeat.Key{ID: 1, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	real, err := heartbeat.Unmarshal(recorded, ring)
	if err != nil {
		t.Fatal(err)
	}
	forger := &heartbeat.Key{ID: 1, Secret: bytes.Repeat([]byte{0x99}, 32)}
	s, err := heartbeat.NewSender(heartbeat.SenderConfig{Group: group, Interface: "lo", TTL: 0, Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	encode := func(p heartbeat.Packet, k *heartbeat.Key) []byte {
		b, err := p.Marshal(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	stalled := heartbeat.Packet{State: heartbeat.StateStalled, NodeID: "flooded", Incarnation: real.Incarnation, Seq: real.Seq + 1_000_000,
		SendTime: time.Now().UnixNano(), Stall: heartbeat.Stall{TID: 1, Name: "read", Elapsed: time.Second}}
	kinds := [][]byte{
		encode(stalled, forger), // bad_mac: forged STALLED
		encode(stalled, nil),    // unauthenticated
		recorded,                // replay of a real ALIVE
	}
	const n = 20_000
	before, start := cpuSeconds(t, listener.Cmd.Process.Pid), time.Now()
	garbage := make([]byte, 64)
	for i := range n {
		b := garbage
		if k := i % 4; k < 3 {
			b = kinds[k]
		} else {
			for j := range garbage {
				garbage[j] = byte(rand.IntN(256))
			}
		}
		s.Send(b) // a full socket buffer drops some: counted below as what arrived
	}
	flood := time.Since(start)
	// A second of the node's own heartbeats after the flood, on top of it:
	// the timeout (1s) would have expired twice over if they were lost.
	for {
		b, err := recv.Read(ctx)
		if err != nil {
			t.Fatalf("no ALIVE a second after the flood: %v", err)
		}
		if p, err := heartbeat.Unmarshal(b, ring); err == nil && p.NodeID == "flooded" && p.State == heartbeat.StateAlive &&
			time.Unix(0, p.SendTime).Sub(start) > flood+time.Second {
			break
		}
	}
	cpu := cpuSeconds(t, listener.Cmd.Process.Pid) - before
	for _, ev := range listener.Events.Drain() {
		if ev["msg"] == nil && ev["node"] == "flooded" && ev["state"] != "alive" {
			t.Fatalf("the flood moved the node: %v", ev)
		}
	}
	metrics := scrape(t, addr)
	counts := map[string]float64{}
	total := 0.0
	for _, reason := range []string{"bad_mac", "unauthenticated", "replay", "bad_magic", "truncated", "oversized", "bad_version", "bad_state", "malformed", "unknown_key"} {
		m := regexp.MustCompile(`stallmon_listener_packets_rejected_total\{reason="` + reason + `"\} (\S+)`).FindStringSubmatch(metrics)
		if m != nil {
			counts[reason], _ = strconv.ParseFloat(m[1], 64)
			total += counts[reason]
		}
	}
	t.Logf("%d packets in %v: listener CPU %.2fs (%.1f µs a packet), rejected by reason %v",
		n, flood.Round(time.Millisecond), cpu, cpu/float64(n)*1e6, counts)
	for _, reason := range []string{"bad_mac", "unauthenticated", "replay"} {
		if counts[reason] == 0 {
			t.Errorf("no %s rejection counted", reason)
		}
	}
	// How many the socket buffer dropped before the listener read them
	// depends on the machine's load; what arrived is all counted.
	if total > n {
		t.Errorf("%.0f rejections counted for %d packets sent", total, n)
	}
	if cpu > 4 {
		t.Errorf("the listener spent %.2fs of CPU on %d packets", cpu, n)
	}
}
