package budget

import (
	"fmt"
	"strings"
)

// State is a condition a thread or process can be in, judged by time spent in it.
type State uint8

const (
	Uninterruptible State = iota // D (killable or not) inside one syscall, continuously
	Running                      // on a CPU or runnable inside one syscall, continuously
	PageFault                    // asleep (S or D) outside any syscall, continuously: a page fault
	Stopped                      // job-control stop (SIGSTOP)
	Traced                       // ptrace stop
	Frozen                       // cgroup freezer
	DumpingCore                  // a core dump in progress
	Exiting                      // the process is exiting (group exit)
	// WorkWaiting: connections wait in a listener's accept queue and none
	// is accepted. Judged per listening socket, not per thread.
	WorkWaiting
)

// The names are the table's keys, so they are spelt the way YAML keys are.
var stateNames = [...]string{
	Uninterruptible: "uninterruptible",
	Running:         "running",
	PageFault:       "page_fault",
	Stopped:         "stopped",
	Traced:          "traced",
	Frozen:          "frozen",
	DumpingCore:     "dumping_core",
	Exiting:         "exiting",
	WorkWaiting:     "work_waiting",
}

const numStates = len(stateNames)

// String returns the name ParseState accepts and the table uses as a key.
func (s State) String() string {
	if int(s) < numStates {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// ParseState returns the State named s, as written by String.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if n == s {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown state %q (want %s)", s, stateList())
}

// States returns every State in declaration order, for callers that must
// cover them all (the table's states section, round-trip tests).
func States() []State {
	ss := make([]State, numStates)
	for i := range ss {
		ss[i] = State(i)
	}
	return ss
}

// PerSyscall reports whether the state is measured within one syscall of
// one thread, so that a syscall's entry may override its rule. PageFault
// is a thread's too, but outside any syscall; the others are conditions
// of the whole process, whatever its threads are doing.
func (s State) PerSyscall() bool { return s == Uninterruptible || s == Running }

// judgedAs says, for error messages, what a state that is not per syscall
// is judged on.
func (s State) judgedAs() string {
	switch s {
	case PageFault:
		return "outside any syscall"
	case WorkWaiting:
		return "per listening socket"
	}
	return "per process"
}

// killsByDefault reports whether a state left out of the table takes the
// default rule's kill_after. Stopping, tracing, freezing or dumping a
// process is somebody's deliberate act or a death already under way: the
// heartbeat stops, but the kill is not ours to make.
func (s State) killsByDefault() bool {
	return s == Uninterruptible || s == Running || s == PageFault || s == Exiting
}

// offByDefault reports whether a state left out of the table is not
// judged at all. A queue that waits is no stall by itself: a service may
// stop accepting on purpose (back-pressure: it stops taking work it
// cannot finish), so judging accept queues is the operator's choice.
func (s State) offByDefault() bool { return s == WorkWaiting }

// stateList names every state for error messages.
func stateList() string {
	return strings.Join(stateNames[:numStates-1], ", ") + " or " + stateNames[numStates-1]
}
