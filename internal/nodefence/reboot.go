package nodefence

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// Reboot restarts the node at once, like sysrq-b: no sync, no shutdown
// scripts. A kernel that has oopsed may hang in either; a clean shutdown
// is exactly what cannot be trusted here.
type Reboot struct{}

func (Reboot) Feed() error    { return nil }
func (Reboot) Close() error   { return nil }
func (Reboot) String() string { return "reboot" }

func (Reboot) Fence() error {
	if err := unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART); err != nil {
		return fmt.Errorf("rebooting: %w", err)
	}
	return nil
}
