// Package systemd tells systemd that the service stallmon watches is
// stuck in the kernel, so that systemd's own failure handling (Restart=,
// WatchdogSignal=, FailureAction=) takes over.
//
// When the verdict turns Stalled, under a rule that kills, it sends one
// datagram to the manager's notify socket (sd_notify(3)): a STATUS= line
// naming the stuck thread and syscall, then WATCHDOG=trigger, which
// systemd (since v243) handles as an expired watchdog whether or not the
// unit sets WatchdogSec=. A stall under a rule that never kills (a
// stopped, traced or frozen service) sends nothing: systemd would kill it
// all the same.
// systemd attributes a notification to a unit by the pid in its
// SCM_CREDENTIALS and, with NotifyAccess=main, accepts it only from the
// unit's main pid; stallmon is not that process under attach, so it
// sends the service's pid as its own, which the kernel allows to root
// (CAP_SYS_ADMIN) only.
//
// Separately, when systemd runs stallmon itself with WatchdogSec= (it
// then sets $WATCHDOG_USEC), the sink pings WATCHDOG=1 with stallmon's
// own pid while the agent can see its target, so that a stallmon that
// hangs or stays blind is restarted by systemd.
package systemd
