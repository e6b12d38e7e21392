package tracker

import (
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/tracker/gen"
	"github.com/stallmon/stallmon/internal/waitsite"
)

// loadSymbols reads the kernel's symbols once, at attach: the poll loop
// only looks addresses up. Without them every wait is unknown, which the
// agent judges as it would with no wait site at all, so attaching goes on.
func (m *Tracker) loadSymbols() {
	syms, err := waitsite.LoadSymbols()
	if err != nil {
		m.log.Warn(event.KernelSymbolsUnreadable, "err", err,
			"detail", "every wait site is unknown: two-fd syscalls are judged by the stricter of their fds, kernel-made threads asleep interruptibly are not judged")
		return
	}
	m.syms = syms
}

// decodeWait reads the wait site the iterator took of a sleeping thread.
func (m *Tracker) decodeWait(w gen.StallmonWaitSite) waitsite.Wait {
	switch {
	case w.Taken == 0:
		return waitsite.Wait{}
	case w.Frames < 0 || int(w.Frames) > len(w.Ips):
		// The kernel could not walk the stack (it freed it: the thread
		// is exiting).
		return waitsite.Wait{Class: waitsite.Unknown}
	}
	if site, ok := m.waits[w.Ips]; ok {
		return site
	}
	site := m.syms.Wait(w.Ips[:w.Frames])
	if len(m.waits) >= maxCachedWaits {
		clear(m.waits)
	}
	m.waits[w.Ips] = site
	return site
}

// maxCachedWaits bounds the cache of stacks read: a service's sleeping
// threads share a handful of stacks (a thread pool's workers all wait in
// the same place), which are read once, not at every poll; a service
// with more distinct stacks than this reads them afresh.
const maxCachedWaits = 4096
