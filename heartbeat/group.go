package heartbeat

import (
	"fmt"
	"net"
	"net/netip"
)

// DefaultGroup is the multicast group and port stallmon uses unless told
// otherwise. 239.255.0.0/16 is the IPv4 organization-local scope.
const DefaultGroup = "239.255.77.77:7777"

// DefaultTTL keeps heartbeats on the local link, which is where HA peers live.
const DefaultTTL = 1

// ParseGroup parses "ADDR:PORT" for an IPv4 multicast group. Host names are
// refused rather than resolved: a heartbeat group is configuration, not a
// lookup. IPv6 groups are not supported yet.
func ParseGroup(s string) (*net.UDPAddr, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, fmt.Errorf("parsing multicast group %q: want IPv4ADDR:PORT: %w", s, err)
	}
	g := net.UDPAddrFromAddrPort(ap)
	if err := validateGroup(g); err != nil {
		return nil, err
	}
	return g, nil
}

func validateGroup(g *net.UDPAddr) error {
	if g == nil {
		return fmt.Errorf("multicast group not set")
	}
	ip := g.IP.To4()
	if ip == nil {
		return fmt.Errorf("multicast group %s: only IPv4 groups are supported", g)
	}
	if !ip.IsMulticast() {
		return fmt.Errorf("group %s is not an IPv4 multicast address (224.0.0.0/4)", g)
	}
	if g.Port < 1 || g.Port > 65535 {
		return fmt.Errorf("multicast group %s: port %d out of range 1..65535", g, g.Port)
	}
	return nil
}

// lookupInterface returns nil for "" so the kernel picks its default. It
// does not insist on the MULTICAST flag: Linux joins and delivers on lo
// without it, and lo is what tests and single-host setups use.
func lookupInterface(name string) (*net.Interface, error) {
	if name == "" {
		return nil, nil
	}
	ifi, err := net.InterfaceByName(name)
	if err != nil {
		return nil, fmt.Errorf("multicast interface %q: %w", name, err)
	}
	return ifi, nil
}
