package heartbeat

import (
	"net"
	"strings"
	"testing"
)

func TestParseGroup(t *testing.T) {
	g, err := ParseGroup(DefaultGroup)
	if err != nil {
		t.Fatalf("ParseGroup(DefaultGroup): %v", err)
	}
	if g.String() != DefaultGroup {
		t.Fatalf("got %s, want %s", g, DefaultGroup)
	}
	bad := []struct{ in, want string }{
		{"127.0.0.1:7777", "not an IPv4 multicast"},
		{"239.255.1.1:0", "port 0 out of range"},
		{"[ff02::1]:7777", "only IPv4"},
		{"localhost:7777", "want IPv4ADDR:PORT"},
		{"239.255.1.1", "want IPv4ADDR:PORT"},
		{"239.255.1.1:70000", "want IPv4ADDR:PORT"},
		{"", "want IPv4ADDR:PORT"},
	}
	for _, c := range bad {
		g, err := ParseGroup(c.in)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseGroup(%q) = %v, %v; want error containing %q", c.in, g, err, c.want)
		}
	}
}

// Validation must fail before any socket is opened, so these need no privileges.
func TestTransportConfigRefused(t *testing.T) {
	group := &net.UDPAddr{IP: net.IPv4(239, 255, 77, 77), Port: 7777}
	senders := []struct {
		name string
		cfg  SenderConfig
		want string
	}{
		{"no group", SenderConfig{}, "not set"},
		{"unicast", SenderConfig{Group: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 7777}}, "not an IPv4 multicast"},
		{"port 0", SenderConfig{Group: &net.UDPAddr{IP: group.IP}}, "port 0"},
		{"port 65536", SenderConfig{Group: &net.UDPAddr{IP: group.IP, Port: 65536}}, "port 65536"},
		{"TTL -1", SenderConfig{Group: group, TTL: -1}, "TTL -1"},
		{"TTL 256", SenderConfig{Group: group, TTL: 256}, "TTL 256"},
		{"no such interface", SenderConfig{Group: group, Interface: "nosuchif0"}, `"nosuchif0"`},
	}
	for _, c := range senders {
		s, err := NewSender(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			if s != nil {
				s.Close()
			}
			t.Errorf("NewSender(%s) = %v; want error containing %q", c.name, err, c.want)
		}
	}
	receivers := []struct {
		name string
		cfg  ReceiverConfig
		want string
	}{
		{"no group", ReceiverConfig{}, "not set"},
		{"IPv6", ReceiverConfig{Group: &net.UDPAddr{IP: net.ParseIP("ff02::1"), Port: 7777}}, "only IPv4"},
		{"no such interface", ReceiverConfig{Group: group, Interface: "nosuchif0"}, `"nosuchif0"`},
	}
	for _, c := range receivers {
		r, err := Listen(c.cfg)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			if r != nil {
				r.Close()
			}
			t.Errorf("Listen(%s) = %v; want error containing %q", c.name, err, c.want)
		}
	}
}
