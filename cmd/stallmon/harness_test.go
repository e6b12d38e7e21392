package main

import (
	"context"
	"encoding/hex"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/nettest"
)

// cluster is one node's view of a test: a multicast group on loopback, a
// shared key, and a tap that records every heartbeat on the group.
type cluster struct {
	t       *testing.T
	group   *net.UDPAddr
	keyFile string
	keys    heartbeat.KeyRing

	mu      sync.Mutex
	packets []tapped
	arrived chan struct{}
}

type tapped struct {
	p  heartbeat.Packet
	at time.Time
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	secret := make([]byte, 32)
	for i := range secret {
		secret[i] = byte(i*7 + 1)
	}
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("id=1\nsecret="+hex.EncodeToString(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := heartbeat.LoadKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := heartbeat.NewKeyRing(key)
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, group: nettest.LoopbackGroup(t), keyFile: keyFile, keys: ring, arrived: make(chan struct{}, 1)}
	c.tap()
	return c
}

func (c *cluster) groupFlags() []string {
	return []string{"--group", c.group.String(), "--interface", "lo", "--key-file", c.keyFile}
}

// tap joins the group and records every valid packet with its arrival time.
func (c *cluster) tap() {
	r, err := heartbeat.Listen(heartbeat.ReceiverConfig{Group: c.group, Interface: "lo"})
	if err != nil {
		c.t.Fatalf("joining %v: %v", c.group, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.t.Cleanup(func() { cancel(); <-done; r.Close() })
	go func() {
		defer close(done)
		for {
			b, err := r.Read(ctx)
			if err != nil {
				return
			}
			p, err := heartbeat.Unmarshal(b, c.keys)
			if err != nil {
				c.t.Errorf("tap: invalid heartbeat on the group: %v", err)
				continue
			}
			c.mu.Lock()
			c.packets = append(c.packets, tapped{p, time.Now()})
			c.mu.Unlock()
			select {
			case c.arrived <- struct{}{}:
			default:
			}
		}
	}()
}

func (c *cluster) seen() []tapped {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]tapped(nil), c.packets...)
}

// waitPacket waits for a packet matching ok.
func (c *cluster) waitPacket(what string, timeout time.Duration, ok func(heartbeat.Packet) bool) heartbeat.Packet {
	c.t.Helper()
	deadline := time.After(timeout)
	for {
		for _, tp := range c.seen() {
			if ok(tp.p) {
				return tp.p
			}
		}
		select {
		case <-c.arrived:
		case <-deadline:
			c.t.Fatalf("no %s heartbeat within %v (saw %d packets)", what, timeout, len(c.seen()))
		}
	}
}

// stallmonProc is a running stallmon subcommand whose stdout is JSON.
type stallmonProc struct {
	cmd    *exec.Cmd
	events *eventStream
	done   chan struct{}
	code   int
}

func startStallmon(t *testing.T, args ...string) *stallmonProc {
	t.Helper()
	cmd := exec.Command(stallmonBin, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sp := &stallmonProc{cmd: cmd, events: newEventStream(t, out), done: make(chan struct{})}
	go func() {
		cmd.Wait()
		sp.code = cmd.ProcessState.ExitCode()
		close(sp.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-sp.done
		if t.Failed() {
			t.Logf("stallmon %s stderr:\n%s", args[0], stderr.String())
		}
	})
	return sp
}

// wait returns the exit status, failing the test after timeout.
func (sp *stallmonProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-sp.done:
		return sp.code
	case <-time.After(timeout):
		t.Fatalf("stallmon still running after %v", timeout)
		return 0
	}
}

func itoa(i int) string { return strconv.Itoa(i) }
