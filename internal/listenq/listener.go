package listenq

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/stallmon/stallmon/internal/listenq/gen"
)

// Kind is a socket's protocol.
type Kind uint8

// The values are the BPF program's listen_kind. Listeners are TCP or Unix
// (stream); connected sockets TCP only.
const (
	TCP  Kind = 1
	Unix Kind = 2
)

func (k Kind) String() string {
	switch k {
	case TCP:
		return "tcp"
	case Unix:
		return "unix"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Mark changes whenever the service takes a connection off the queue (or,
// for a connected socket, reads); it is only compared, never interpreted.
type Mark [3]uint64

// Listener is one listening socket, as one scan saw it, or with Connected
// one connected TCP socket holding data the service can read and has not.
type Listener struct {
	// PID and FD are where it was found first; a socket shared by several
	// processes (pre-forked workers, a fd passed by fork or SCM_RIGHTS)
	// is reported once.
	PID, FD int
	// Holders are the processes found holding it, PID first, each once,
	// at most MaxHolders; MoreHolders says some were left out. Any of
	// them may be the one that reads it.
	Holders     []int
	MoreHolders bool
	// Ino is the socket's inode number: it names the socket across scans.
	Ino  uint64
	Kind Kind
	// Addr is "127.0.0.1:6379", "[::1]:80", "/run/x.sock" or "@abstract"
	// (a unix path truncated to 108 bytes; "" for an unbound one).
	Addr string
	// Port is the TCP port, 0 for unix.
	Port int
	// Queued is the connections in the accept queue; for a connected
	// socket the bytes a read would return (not an urgent byte read out
	// of line, nor the peer's FIN).
	Queued uint32
	// Limit is the queue's limit: listen's backlog capped by somaxconn;
	// for a connected socket its receive buffer in bytes.
	Limit     uint32
	Mark      Mark
	Connected bool
}

// MaxHolders bounds the processes kept per socket: a pre-forked server
// can share a listener among thousands.
const MaxHolders = 64

// held notes that pid holds l too.
func (l *Listener) held(pid int) {
	switch {
	case slices.Contains(l.Holders, pid):
	case len(l.Holders) == MaxHolders:
		l.MoreHolders = true
	default:
		l.Holders = append(l.Holders, pid)
	}
}

func decode(r *gen.ListenqListenRec) Listener {
	l := Listener{PID: int(r.Tgid), FD: int(r.Fd), Holders: []int{int(r.Tgid)}, Ino: r.Ino, Kind: Kind(r.Kind),
		Queued: r.Queued, Limit: r.Limit, Mark: r.Mark, Connected: r.Connected != 0}
	switch l.Kind {
	case TCP:
		// inet_sport is in network order; the record holds its bytes.
		l.Port = int(r.Port>>8 | (r.Port&0xff)<<8)
		var ip netip.Addr
		if r.Family == 2 {
			ip = netip.AddrFrom4([4]byte(r.Addr[:4]))
		} else {
			ip = netip.AddrFrom16(r.Addr)
		}
		l.Addr = netip.AddrPortFrom(ip, uint16(l.Port)).String()
	case Unix:
		n := min(int(r.PathLen), len(r.Path))
		p := r.Path[:n]
		switch {
		case n == 0:
		case p[0] == 0:
			// A program that binds with the whole sockaddr_un's length
			// pads its abstract name with NULs: they are no part of the
			// name an operator writes in skip or only.
			l.Addr = "@" + strings.TrimRight(string(p[1:]), "\x00")
		default:
			if i := indexZero(p); i >= 0 {
				p = p[:i]
			}
			l.Addr = string(p)
		}
	}
	return l
}

func indexZero(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return -1
}

// PortLabel is the label metrics use for the listener: the TCP port, or
// the unix address (never a pid: it changes with every restart).
func (l Listener) PortLabel() string {
	if l.Kind == TCP {
		return strconv.Itoa(l.Port)
	}
	return l.Addr
}
