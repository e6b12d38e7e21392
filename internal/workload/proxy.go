package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// proxyServer forwards each client's bytes to an upstream and back, as a
// TCP proxy does. It reads a client only as fast as the upstream takes
// what it forwards: when the upstream stops reading, the proxy's write
// blocks and its client's data waits unread in its socket. That is
// back-pressure, the legitimate wait the work_waiting rule must spare by
// default.
type proxyServer struct {
	ln        net.Listener
	port      int
	upstream  string
	forwarded atomic.Int64 // client bytes written to the upstream
}

// proxyBuf is the proxy's copy buffer and its upstream socket's send
// buffer: small, so that an upstream that stops reading stops the proxy
// after little data, on every kernel.
const proxyBuf = 16 << 10

func (w *workload) proxyServerStart(args []string) ([]any, error) {
	if w.proxy != nil {
		return nil, errors.New("a proxy already runs")
	}
	// Plain TCP (no MPTCP), as a C proxy would listen.
	var lc net.ListenConfig
	lc.SetMultipathTCP(false)
	ln, err := lc.Listen(context.Background(), "tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening: %w", err)
	}
	p := &proxyServer{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, upstream: args[0]}
	go p.serve()
	w.proxy = p
	return []any{"port", p.port}, nil
}

func (p *proxyServer) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.forward(c)
	}
}

func (p *proxyServer) forward(client net.Conn) {
	defer client.Close()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, proxyBuf)
		})
		return errors.Join(err, serr)
	}}
	up, err := d.Dial("tcp4", p.upstream)
	if err != nil {
		return
	}
	defer up.Close()
	go io.Copy(client, up)
	buf := make([]byte, proxyBuf)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
			p.forwarded.Add(int64(n))
		}
		if err != nil {
			return
		}
	}
}
