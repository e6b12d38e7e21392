package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/pflag"

	"github.com/stallmon/stallmon/internal/nodefence"
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

// validate checks the flags before anything is attached.
func (o *nodeFenceOptions) validate(kill bool) error {
	switch o.onUnkillable {
	case "none", "reboot", "watchdog":
	default:
		return fmt.Errorf("--on-unkillable %q: want none, reboot or watchdog", o.onUnkillable)
	}
	if o.onUnkillable != "none" && !kill {
		return fmt.Errorf("--on-unkillable=%s needs the kill: it acts only when a killed target does not die (drop --no-kill)", o.onUnkillable)
	}
	if o.onUnkillable == "watchdog" && o.watchdogTimeout < time.Second {
		return fmt.Errorf("--watchdog-timeout %v: the watchdog counts whole seconds, want at least 1s", o.watchdogTimeout)
	}
	if o.onUnkillable == "watchdog" {
		// Opened (armed) only after attach; a path that is no watchdog
		// fails here, before anything is loaded.
		if err := nodefence.CheckWatchdog(o.watchdogDevice); err != nil {
			return fmt.Errorf("--watchdog-device %w", err)
		}
	}
	return nil
}

// build arms the node fencer, or returns nil for "none". Arming is never
// implicit: only an explicit --on-unkillable value does it. It is called
// once the tracker is attached, right before the agent starts feeding, so
// that a slow attach (the verifier on a loaded machine) cannot outlast the
// watchdog's timeout and reset a healthy node.
func (o *nodeFenceOptions) build(kill bool, log *slog.Logger) (nodefence.Fencer, error) {
	if err := o.validate(kill); err != nil {
		return nil, err
	}
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
	}
	log.Warn("node fencing armed: if the target cannot be killed, this node goes down",
		"method", nf.String(), "watchdog_device", o.watchdogDevice)
	return nf, nil
}
