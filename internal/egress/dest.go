package egress

import (
	"fmt"
	"net/netip"
	"strings"
)

// Dest is one gated destination: what --gate-egress names.
type Dest struct {
	Proto string // "udp" or "tcp"
	Addr  netip.Addr
	Port  uint16
}

// ParseDest reads PROTO:ADDR:PORT: udp:239.1.2.3:5000, udp:[ff02::1]:5000,
// tcp:192.0.2.2:7000.
func ParseDest(s string) (Dest, error) {
	proto, hostport, ok := strings.Cut(s, ":")
	if !ok {
		return Dest{}, fmt.Errorf("--gate-egress %q: want PROTO:ADDR:PORT (udp:239.1.2.3:5000, udp:[ff02::1]:5000, tcp:192.0.2.2:7000)", s)
	}
	proto = strings.ToLower(proto)
	if proto != "udp" && proto != "tcp" {
		return Dest{}, fmt.Errorf("--gate-egress %q: protocol %q: want udp or tcp", s, proto)
	}
	if strings.Count(hostport, ":") > 1 && !strings.HasPrefix(hostport, "[") {
		return Dest{}, fmt.Errorf("--gate-egress %q: an IPv6 address goes in brackets: udp:[ff02::1]:5000", s)
	}
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		return Dest{}, fmt.Errorf("--gate-egress %q: want ADDR:PORT with a numeric address: %w", s, err)
	}
	if ap.Port() == 0 {
		return Dest{}, fmt.Errorf("--gate-egress %q: port 0 names no destination", s)
	}
	a := ap.Addr()
	if a.Zone() != "" {
		return Dest{}, fmt.Errorf("--gate-egress %q: a zone (%%%s) is not matched: give the address alone", s, a.Zone())
	}
	if a.IsUnspecified() {
		return Dest{}, fmt.Errorf("--gate-egress %q: %s names no destination", s, a)
	}
	if proto == "tcp" && a.IsMulticast() {
		return Dest{}, fmt.Errorf("--gate-egress %q: tcp has no multicast destination", s)
	}
	return Dest{Proto: proto, Addr: a.Unmap(), Port: ap.Port()}, nil
}

// String is the destination as ParseDest reads it, and as the metrics
// and events label it.
func (d Dest) String() string {
	return d.Proto + ":" + netip.AddrPortFrom(d.Addr, d.Port).String()
}

// ParseDests reads every --gate-egress, refusing duplicates.
func ParseDests(ss []string) ([]Dest, error) {
	var out []Dest
	seen := map[Dest]bool{}
	for _, s := range ss {
		d, err := ParseDest(s)
		if err != nil {
			return nil, err
		}
		if seen[d] {
			return nil, fmt.Errorf("--gate-egress %s given twice", d)
		}
		seen[d] = true
		out = append(out, d)
	}
	if len(out) > maxDests {
		return nil, fmt.Errorf("--gate-egress: %d destinations, at most %d", len(out), maxDests)
	}
	return out, nil
}

func protoNumber(p string) uint8 {
	if p == "tcp" {
		return 6
	}
	return 17
}
