package systemd

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
)

// Options are what a user chooses (--systemd-notify, --notify-socket);
// the zero value leaves systemd out.
type Options struct {
	On     bool
	Socket string
	// SocketSet says the socket was chosen, even as "".
	SocketSet bool
}

// Validate refuses a socket named without --systemd-notify, and a socket
// that cannot be one. A path that is not there is a typo or a host
// without systemd: it is refused now rather than at the first stall.
func (o Options) Validate() error {
	if !o.On {
		if o.Socket != "" || o.SocketSet {
			return errors.New("--notify-socket needs --systemd-notify")
		}
		return nil
	}
	socket := o.socket()
	if err := CheckSocket(socket); err != nil {
		return fmt.Errorf("--notify-socket: %w", err)
	}
	if socket[0] == '/' {
		st, err := os.Stat(socket)
		if err != nil {
			return fmt.Errorf("--notify-socket: %w", err)
		}
		if st.Mode().Type() != os.ModeSocket {
			return fmt.Errorf("--notify-socket: %s is not a socket", socket)
		}
	}
	if _, err := KeepAliveFromEnv(); err != nil {
		return fmt.Errorf("--systemd-notify: %w", err)
	}
	return nil
}

// socket is the notify socket: Socket, else $NOTIFY_SOCKET, else
// DefaultSocket, as sd_notify(3) finds it.
func (o Options) socket() string {
	if o.Socket != "" {
		return o.Socket
	}
	if s := os.Getenv("NOTIFY_SOCKET"); s != "" {
		return s
	}
	return DefaultSocket
}

// Sink returns the sink for t, nil when o leaves systemd out.
func (o Options) Sink(t sink.Target, log *slog.Logger) (sink.Sink, error) {
	if err := o.Validate(); err != nil || !o.On {
		return nil, err
	}
	if (t.PID != 0 || t.Cgroup != "") && !hasCapSysAdmin() {
		log.Warn(event.CapabilityMissing, "capability", "CAP_SYS_ADMIN",
			"detail", "--systemd-notify sends as the service's pid, which needs CAP_SYS_ADMIN: the trigger will fail")
	}
	keep, err := KeepAliveFromEnv()
	if err != nil {
		return nil, fmt.Errorf("--systemd-notify: %w", err)
	}
	if keep != nil {
		log.Info(event.SystemdKeepAlive, "every", keep.Every,
			"detail", "systemd expects watchdog pings from stallmon: sending WATCHDOG=1 while the target is seen")
	}
	return New(Config{
		Socket:    o.socket(),
		Target:    Target{PID: t.PID, Cgroup: t.Cgroup},
		KeepAlive: keep,
		Logger:    log,
	})
}

// hasCapSysAdmin reports whether CAP_SYS_ADMIN is effective, which the
// kernel requires to send another process's pid in SCM_CREDENTIALS.
func hasCapSysAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[unix.CAP_SYS_ADMIN/32].Effective&(1<<(unix.CAP_SYS_ADMIN%32)) != 0
}
