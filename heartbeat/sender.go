package heartbeat

import (
	"fmt"
	"net"

	"golang.org/x/net/ipv4"
)

// SenderConfig says where heartbeats go.
type SenderConfig struct {
	Group *net.UDPAddr // IPv4 multicast group and port
	// Interface is the name of the outgoing interface; "" lets the kernel
	// choose from the routing table.
	Interface string
	// TTL is the multicast TTL, 0..255. 0 keeps packets on this host;
	// DefaultTTL (1) keeps them on the local link.
	TTL int
	// Loopback delivers copies to listeners on this host too.
	Loopback bool
}

// Sender writes heartbeat packets to a multicast group.
type Sender struct {
	conn  net.PacketConn
	pc    *ipv4.PacketConn
	group *net.UDPAddr
}

// NewSender opens a UDP socket set up for cfg.
func NewSender(cfg SenderConfig) (*Sender, error) {
	if err := validateGroup(cfg.Group); err != nil {
		return nil, fmt.Errorf("heartbeat sender: %w", err)
	}
	if cfg.TTL < 0 || cfg.TTL > 255 {
		return nil, fmt.Errorf("heartbeat sender: TTL %d out of range 0..255", cfg.TTL)
	}
	ifi, err := lookupInterface(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("heartbeat sender: %w", err)
	}
	conn, err := net.ListenPacket("udp4", "0.0.0.0:0")
	if err != nil {
		return nil, fmt.Errorf("heartbeat sender: opening socket: %w", err)
	}
	s := &Sender{conn: conn, pc: ipv4.NewPacketConn(conn), group: cfg.Group}
	if err := s.setup(ifi, cfg); err != nil {
		conn.Close()
		return nil, fmt.Errorf("heartbeat sender: %w", err)
	}
	return s, nil
}

func (s *Sender) setup(ifi *net.Interface, cfg SenderConfig) error {
	if ifi != nil {
		if err := s.pc.SetMulticastInterface(ifi); err != nil {
			return fmt.Errorf("setting multicast interface %s: %w", ifi.Name, err)
		}
	}
	if err := s.pc.SetMulticastTTL(cfg.TTL); err != nil {
		return fmt.Errorf("setting multicast TTL: %w", err)
	}
	if err := s.pc.SetMulticastLoopback(cfg.Loopback); err != nil {
		return fmt.Errorf("setting multicast loopback: %w", err)
	}
	return nil
}

// Send writes one packet. Packets a receiver would refuse as oversized are
// refused here instead of being sent.
func (s *Sender) Send(b []byte) error {
	if len(b) > MaxPacketSize {
		return fmt.Errorf("sending heartbeat: %d bytes: %w", len(b), ErrOversized)
	}
	if _, err := s.pc.WriteTo(b, nil, s.group); err != nil {
		return fmt.Errorf("sending heartbeat to %s: %w", s.group, err)
	}
	return nil
}

// Close releases the socket.
func (s *Sender) Close() error { return s.conn.Close() }
