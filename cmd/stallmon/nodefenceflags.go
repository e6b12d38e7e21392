package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/nodefence"
)

type nodeFenceOptions struct {
	onUnkillable    string
	watchdogDevice  string
	watchdogTimeout time.Duration
}

func (o *nodeFenceOptions) register(f *pflag.FlagSet) {
	f.StringVar(&o.onUnkillable, "on-unkillable", "none",
		"none, reboot (restart the node at once, no sync) or watchdog (stop feeding --watchdog-device); DANGEROUS, see README")
	f.StringVar(&o.watchdogDevice, "watchdog-device", "/dev/watchdog", "watchdog fed while stallmon works (with --on-unkillable=watchdog)")
	f.DurationVar(&o.watchdogTimeout, "watchdog-timeout", 10*time.Second, "watchdog timeout to set (with --on-unkillable=watchdog)")
}

// build arms the node fencer, or returns nil for "none". Arming is never
// implicit: only an explicit --on-unkillable value does it.
func (o *nodeFenceOptions) build(kill bool, log *slog.Logger) (nodefence.Fencer, error) {
	var nf nodefence.Fencer
	switch o.onUnkillable {
	case "none":
		return nil, nil
	case "reboot":
		nf = nodefence.Reboot{}
	case "watchdog":
		wd, err := nodefence.OpenWatchdog(o.watchdogDevice, o.watchdogTimeout)
		if err != nil {
			return nil, fmt.Errorf("--on-unkillable=watchdog: %w", err)
		}
		nf = wd
	default:
		return nil, fmt.Errorf("--on-unkillable %q: want none, reboot or watchdog", o.onUnkillable)
	}
	if !kill {
		nf.Close()
		return nil, fmt.Errorf("--on-unkillable=%s needs the kill: it acts only when a killed target does not die (drop --no-kill)", o.onUnkillable)
	}
	log.Warn("node fencing armed: if the target cannot be killed, this node goes down",
		"method", nf.String(), "watchdog_device", o.watchdogDevice)
	return nf, nil
}
