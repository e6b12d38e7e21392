package nettest_test

import (
	"context"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/testutil/nettest"
	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

// A multicast packet sent on one node of a LAN reaches the others through
// the bridge, and every namespace is gone once the test that made it ends.
func TestLANCarriesMulticastAndCleansUp(t *testing.T) {
	privtest.Require(t)
	privtest.RequireCommand(t, "ip")
	var names []string
	t.Run("lan", func(t *testing.T) {
		lan := nettest.NewLAN(t, 3)
		names = []string{lan.Switch}
		group := &net.UDPAddr{IP: net.IPv4(239, 255, 0, 9), Port: 7009}
		var recvs []*heartbeat.Receiver
		for _, n := range lan.Nodes[1:] {
			names = append(names, n.NS)
			err := nettest.InNetns(n.NS, func() error {
				r, err := heartbeat.Listen(heartbeat.ReceiverConfig{Group: group, Interface: n.If})
				recvs = append(recvs, r)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			defer recvs[len(recvs)-1].Close()
		}
		a := lan.Nodes[0]
		names = append(names, a.NS)
		var s *heartbeat.Sender
		if err := nettest.InNetns(a.NS, func() error {
			var err error
			s, err = heartbeat.NewSender(heartbeat.SenderConfig{Group: group, Interface: a.If, TTL: 1})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Send([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		for i, r := range recvs {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			b, err := r.Read(ctx)
			cancel()
			if err != nil || string(b) != "hello" {
				t.Fatalf("node %d read %q, %v; want the packet node 0 sent", i+1, b, err)
			}
		}
	})
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if strings.Contains(string(out), name) {
			t.Errorf("namespace %s still there after the test", name)
		}
	}
}
