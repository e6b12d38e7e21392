package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/integrations/systemd"
	"github.com/stallmon/stallmon/internal/sink"
)

type systemdFlags struct {
	flags  *pflag.FlagSet
	on     bool
	socket string
}

func (o *systemdFlags) register(f *pflag.FlagSet) {
	o.flags = f
	f.BoolVar(&o.on, "systemd-notify", false,
		"send WATCHDOG=trigger for the service to systemd when a stall begins (see README, systemd)")
	f.StringVar(&o.socket, "notify-socket", "",
		"systemd notify socket, a path or @abstract-name (default $NOTIFY_SOCKET, else "+systemd.DefaultSocket+")")
}

func (o *systemdFlags) build(t sinkTarget, log *slog.Logger) (sink.Sink, error) {
	if !o.on {
		if o.flags != nil && o.flags.Changed("notify-socket") {
			return nil, errors.New("--notify-socket needs --systemd-notify")
		}
		return nil, nil
	}
	socket := o.socket
	if socket == "" {
		socket = os.Getenv("NOTIFY_SOCKET")
	}
	if socket == "" {
		socket = systemd.DefaultSocket
	}
	if err := systemd.CheckSocket(socket); err != nil {
		return nil, fmt.Errorf("--notify-socket: %w", err)
	}
	if socket[0] == '/' {
		// A path that is not there is a typo or a host without systemd;
		// say so now rather than at the first stall.
		st, err := os.Stat(socket)
		if err != nil {
			return nil, fmt.Errorf("--notify-socket: %w", err)
		}
		if st.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("--notify-socket: %s is not a socket", socket)
		}
	}
	if (t.PID != 0 || t.Cgroup != "") && !hasCapSysAdmin() {
		log.Warn("--systemd-notify sends as the service's pid, which needs CAP_SYS_ADMIN: the trigger will fail")
	}
	keep, err := systemd.KeepAliveFromEnv()
	if err != nil {
		return nil, fmt.Errorf("--systemd-notify: %w", err)
	}
	if keep != nil {
		log.Info("systemd expects watchdog pings from stallmon: sending WATCHDOG=1 while the target is seen", "every", keep.Every)
	}
	return systemd.New(systemd.Config{
		Socket:    socket,
		Target:    systemd.Target{PID: t.PID, Cgroup: t.Cgroup},
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
