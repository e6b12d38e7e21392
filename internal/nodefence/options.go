package nodefence

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/stallmon/stallmon/internal/event"
)

// Options are what a user chooses (--on-unkillable, --watchdog-device,
// --watchdog-timeout). Mode "none" arms nothing: node fencing is never
// implicit. Any other mode, "" included, is refused: an empty
// --on-unkillable=$FENCE must not silently drop the fence asked for.
type Options struct {
	Mode            string // none, reboot or watchdog
	WatchdogDevice  string
	WatchdogTimeout time.Duration
}

// Validate checks o before anything is attached; kill says whether the
// agent kills at all (node fencing acts only after a kill).
func (o Options) Validate(kill bool) error {
	switch o.Mode {
	case "none", "reboot", "watchdog":
	default:
		return fmt.Errorf("--on-unkillable %q: want none, reboot or watchdog", o.Mode)
	}
	if o.armed() && !kill {
		return fmt.Errorf("--on-unkillable=%s needs the kill: it acts only when a killed target does not die (drop --no-kill)", o.Mode)
	}
	if o.Mode == "watchdog" && o.WatchdogTimeout < time.Second {
		return fmt.Errorf("--watchdog-timeout %v: the watchdog counts whole seconds, want at least 1s", o.WatchdogTimeout)
	}
	if o.Mode == "watchdog" {
		// Opened (armed) only after attach; a path that is no watchdog
		// fails here, before anything is loaded.
		if err := CheckWatchdog(o.WatchdogDevice); err != nil {
			return fmt.Errorf("--watchdog-device %w", err)
		}
	}
	return nil
}

func (o Options) armed() bool { return o.Mode != "none" }

// Arm returns the node fencer, nil when o arms none. Call it once the
// tracker is attached, right before the agent starts feeding, so that a
// slow attach (the verifier on a loaded machine) cannot outlast the
// watchdog's timeout and reset a healthy node.
func (o Options) Arm(kill bool, log *slog.Logger) (Fencer, error) {
	if err := o.Validate(kill); err != nil {
		return nil, err
	}
	var nf Fencer
	switch o.Mode {
	case "none":
		return nil, nil
	case "reboot":
		nf = Reboot{}
	case "watchdog":
		wd, err := OpenWatchdog(o.WatchdogDevice, o.WatchdogTimeout)
		if err != nil {
			return nil, fmt.Errorf("--on-unkillable=watchdog: %w", err)
		}
		nf = wd
	}
	log.Warn(event.NodeFenceArmed, "method", nf.String(), "watchdog_device", o.WatchdogDevice,
		"detail", "if the target cannot be killed, this node goes down")
	return nf, nil
}
