package heartbeat

import (
	"context"
	"fmt"
	"net"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

// ReceiverConfig says which group to listen to.
type ReceiverConfig struct {
	Group *net.UDPAddr // IPv4 multicast group and port
	// Interface is the name of the interface to join the group on; "" lets
	// the kernel choose from the routing table.
	Interface string
}

// Receiver reads datagrams sent to a multicast group. Read is not safe for
// concurrent use.
type Receiver struct {
	conn net.PacketConn
	pc   *ipv4.PacketConn
	// One byte more than MaxPacketSize so an oversized datagram is seen as
	// oversized rather than silently cut to a size that might decode.
	buf []byte
}

// Listen binds the group's port and joins the group.
func Listen(cfg ReceiverConfig) (*Receiver, error) {
	if err := validateGroup(cfg.Group); err != nil {
		return nil, fmt.Errorf("heartbeat receiver: %w", err)
	}
	ifi, err := lookupInterface(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("heartbeat receiver: %w", err)
	}
	// Binding the group address, not 0.0.0.0, keeps out unicast and other
	// groups' traffic on the same port. SO_REUSEADDR lets several listeners
	// (an agent's own peer detector and a CLI listener, say) share the port.
	lc := net.ListenConfig{Control: reuseAddr}
	bind := &net.UDPAddr{IP: cfg.Group.IP, Port: cfg.Group.Port}
	conn, err := lc.ListenPacket(context.Background(), "udp4", bind.String())
	if err != nil {
		return nil, fmt.Errorf("heartbeat receiver: binding %s: %w", bind, err)
	}
	pc := ipv4.NewPacketConn(conn)
	if err := pc.JoinGroup(ifi, &net.UDPAddr{IP: cfg.Group.IP}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("heartbeat receiver: joining %s on %s: %w", cfg.Group.IP, ifaceName(cfg.Interface), err)
	}
	return &Receiver{conn: conn, pc: pc, buf: make([]byte, MaxPacketSize+1)}, nil
}

func reuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

func ifaceName(name string) string {
	if name == "" {
		return "the default interface"
	}
	return name
}

// Read returns the next datagram, or ctx's error once ctx is done.
func (r *Receiver) Read(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := r.pc.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("reading heartbeat: %w", err)
	}
	// Cancellation interrupts the blocked read by moving the deadline into
	// the past. done makes sure a late-firing callback cannot poison the
	// deadline of the next Read.
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		r.pc.SetReadDeadline(time.Unix(1, 0))
	})
	defer func() {
		if !stop() {
			<-done
		}
	}()
	n, _, _, err := r.pc.ReadFrom(r.buf)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fmt.Errorf("reading heartbeat: %w", err)
	}
	return append([]byte(nil), r.buf[:n]...), nil
}

// Close leaves the group and releases the socket.
func (r *Receiver) Close() error { return r.conn.Close() }
