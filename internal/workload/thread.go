package workload

import (
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// Bounds on waits for the kernel or for a worker; generous because they only
// matter when something is already broken.
const (
	settleTimeout = 5 * time.Second
	pollInterval  = 200 * time.Microsecond
)

// worker is an OS thread running one body to completion.
type worker struct {
	tid   int
	start uint64      // the thread's start time, see task
	done  chan result // receives body's result once
	res   *result     // that result, once received
}

type result struct {
	ret int
	err error
}

type threadOpts struct {
	// blockSignals keeps the Go runtime's signals (preemption, profiling)
	// from kicking the thread out of its syscall: each interruption would
	// show up to stallmon as a fresh sys_enter and reset the stall clock.
	// It must stay off for threads that loop in Go code without blocking
	// syscalls, or the runtime could not preempt them.
	blockSignals bool
}

type started struct {
	tid   int
	start uint64
	err   error
}

// startWorker runs body on an OS thread of its own and returns once that
// thread is known, before body is called.
func startWorker(opts threadOpts, body func() (int, error)) (*worker, error) {
	st := make(chan started, 1)
	done := make(chan result, 1)
	go runLocked(opts, st, done, body)
	s := <-st
	if s.err != nil {
		return nil, s.err
	}
	return &worker{tid: s.tid, start: s.start, done: done}, nil
}

// runLocked never calls runtime.UnlockOSThread: a goroutine that returns
// while locked makes the runtime end its thread (exit(2)), so what the body
// did to the thread (its signal mask) never reaches another goroutine, and
// no later command runs on a thread an earlier one used.
func runLocked(opts threadOpts, st chan<- started, done chan<- result, body func() (int, error)) {
	runtime.LockOSThread()
	tid := unix.Gettid()
	if tid == unix.Getpid() {
		// The runtime never ends the main thread, it parks it instead.
		// Keep it parked here for good so no worker lands on it, and go
		// on from another thread.
		go runLocked(opts, st, done, body)
		select {}
	}
	if opts.blockSignals {
		if err := blockAllSignals(); err != nil {
			st <- started{err: err}
			return
		}
	}
	start, err := taskStart(tid)
	if err != nil {
		st <- started{err: err}
		return
	}
	st <- started{tid: tid, start: start}
	ret, err := body()
	done <- result{ret, err}
}

// blockAllSignals leaves only what cannot be blocked (SIGKILL, SIGSTOP and
// faults) able to reach this thread. Nothing in the workload relies on
// signals reaching every thread (as syscall.AllThreadsSyscall would).
func blockAllSignals() error {
	var all unix.Sigset_t
	for i := range all.Val {
		all.Val[i] = ^uint64(0)
	}
	if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, nil); err != nil {
		return fmt.Errorf("blocking signals on thread %d: %w", unix.Gettid(), err)
	}
	return nil
}

func (wk *worker) id() int { return wk.tid }

// finished tells whether the body already returned, and what it returned.
func (wk *worker) finished() (ret int, err error, ok bool) {
	if wk.res == nil {
		select {
		case r := <-wk.done:
			wk.res = &r
		default:
			return 0, nil, false
		}
	}
	return wk.res.ret, wk.res.err, true
}

// await waits for the worker's body to return.
func (wk *worker) await() (int, error) {
	if wk.res != nil {
		return wk.res.ret, wk.res.err
	}
	select {
	case r := <-wk.done:
		wk.res = &r
		return r.ret, r.err
	case <-time.After(settleTimeout):
		return 0, fmt.Errorf("thread %d still busy after %v", wk.tid, settleTimeout)
	}
}
