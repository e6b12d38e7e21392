package bench

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Layout is where the service rows run each party: the server, its load
// generator (the client) and stallmon's agent, each on a CPU of its own
// where there are enough, so that the server's throughput is not what
// the scheduler made of three processes on one CPU.
type Layout struct {
	Server, Client, Agent int
	// Pinned is false with fewer than two CPUs: nothing is pinned.
	Pinned bool
}

// NewLayout places the parties on cpus, the CPUs the harness may use: the
// server on the second, the client alone on the first, the agent on the
// third or, with two CPUs, beside the server. There it competes with the
// server as it would on a busy node, and its CPU time is not the
// server's cgroup's. Beside the client it would slow the client, and a
// server whose requests come slower finds fewer of them at each wake-up:
// its CPU per request grows for a reason that is not stallmon's.
func NewLayout(cpus []int) Layout {
	if len(cpus) < 2 {
		return Layout{}
	}
	l := Layout{Server: cpus[1], Client: cpus[0], Agent: cpus[1], Pinned: true}
	if len(cpus) > 2 {
		l.Agent = cpus[2]
	}
	return l
}

// AllowedCPUs are the CPUs this process may run on, in order.
func AllowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("reading CPU affinity: %w", err)
	}
	var cpus []int
	for cpu := 0; cpu < len(set)*64 && len(cpus) < set.Count(); cpu++ {
		if set.IsSet(cpu) {
			cpus = append(cpus, cpu)
		}
	}
	return cpus, nil
}

func (l Layout) String() string {
	if !l.Pinned {
		return "not pinned (one CPU)"
	}
	if l.Agent == l.Server {
		return fmt.Sprintf("server and stallmon pinned to CPU %d, the server's client to CPU %d (two CPUs: the agent shares the server's)",
			l.Server, l.Client)
	}
	return fmt.Sprintf("server pinned to CPU %d, its client to CPU %d, stallmon to CPU %d", l.Server, l.Client, l.Agent)
}

// startPinned runs start, which starts one process (exec.Cmd.Start), on
// a thread pinned to cpu, so that the process and every thread and child
// it makes inherit the affinity from birth: nothing is left to pin after
// the fact, and nothing can escape a pinning that races thread creation.
// cpu < 0 pins nothing. A start that ends its goroutine (t.Fatal) ends
// it here too: the caller then finds its test failed. The thread ends
// once the process started: a child with SysProcAttr.Pdeathsig, which
// follows the thread that forked it, would get its signal then (none of
// the rows' processes has one).
func startPinned(cpu int, start func() error) error {
	if cpu < 0 {
		return start()
	}
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: the runtime ends the pinned thread with this
		// goroutine instead of handing it to other goroutines.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(cpu)
		if err = unix.SchedSetaffinity(0, &set); err != nil {
			err = fmt.Errorf("pinning to CPU %d: %w", cpu, err)
			return
		}
		// The fork happens on this thread: Go forks a child from the
		// thread that calls Start.
		err = start()
	}()
	<-done
	return err
}

// cpuOf is the CPU a party runs on under l, or -1 unpinned.
func (l Layout) cpuOf(cpu int) int {
	if !l.Pinned {
		return -1
	}
	return cpu
}
