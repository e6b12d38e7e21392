package tracker

import "sync"

// waitGuard orders a scope's wait and close: close wakes wait, lets it
// return, and only then releases what wait reads (descriptors it polls, a
// mapping), so that wait never touches a number or an address the
// process reused.
type waitGuard struct {
	mu       sync.Mutex
	closed   bool
	waiting  bool
	waitDone chan struct{} // closed when wait returns
}

func newWaitGuard() waitGuard { return waitGuard{waitDone: make(chan struct{})} }

// enter starts a wait; false once closed, or if a wait already ran. A
// wait that entered must call leave when it returns.
func (g *waitGuard) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.waiting {
		return false
	}
	g.waiting = true
	return true
}

func (g *waitGuard) leave() { close(g.waitDone) }

// close runs wake, which must make a running wait return, waits for that
// wait, then runs release. Only the first call does anything.
func (g *waitGuard) close(wake func() error, release func() error) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil
	}
	g.closed = true
	err := wake()
	if g.waiting {
		<-g.waitDone
	}
	if rerr := release(); err == nil {
		err = rerr
	}
	return err
}
