// Package nettest gives tests a multicast group of their own on loopback.
package nettest

import (
	"math/rand/v2"
	"net"
	"testing"
)

// LoopbackGroup picks an organization-local group and a port that is free
// right now, so parallel test binaries do not hear each other.
func LoopbackGroup(t testing.TB) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	port := c.LocalAddr().(*net.UDPAddr).Port
	c.Close()
	return &net.UDPAddr{IP: net.IPv4(239, 255, byte(1+rand.IntN(254)), byte(1+rand.IntN(254))), Port: port}
}
