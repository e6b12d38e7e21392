package tracker

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// ProgramStats is what one of the tracker's BPF programs has cost since
// load, counted by the kernel only while BPF statistics are enabled
// (sysctl kernel.bpf_stats_enabled, or EnableBPFStats). RunCount counts
// every run, including runs for other processes' syscalls that the
// program filters out first: that is the tracker's cost to the machine.
type ProgramStats struct {
	Program  string // the attach point: sys_enter, sys_exit, sched_process_exit, task_iter
	RunCount uint64
	Runtime  time.Duration
	// RecursionMisses counts runs skipped because another BPF program was
	// already running on that CPU.
	RecursionMisses uint64
}

// ProgramStats returns the run count and run time of each program. It is
// safe to call concurrently with any other method.
func (m *Tracker) ProgramStats() ([]ProgramStats, error) {
	unlock, err := m.holdOpen()
	if err != nil {
		return nil, err
	}
	defer unlock()
	var out []ProgramStats
	for _, p := range []struct {
		name string
		prog *ebpf.Program
	}{
		{"sys_enter", m.objs.SysEnter},
		{"sys_exit", m.objs.SysExit},
		{"sched_process_exit", m.objs.ThreadExit},
		{"task_iter", m.objs.Snapshot},
	} {
		st, err := p.prog.Stats()
		if err != nil {
			return nil, fmt.Errorf("reading %s program stats: %w", p.name, err)
		}
		out = append(out, ProgramStats{Program: p.name, RunCount: st.RunCount, Runtime: st.Runtime, RecursionMisses: st.RecursionMisses})
	}
	return out, nil
}

// EnableBPFStats turns on the kernel's run time and run count accounting
// for every BPF program until the returned Closer is closed. It costs two
// clock reads per run of every BPF program on the machine.
func EnableBPFStats() (io.Closer, error) {
	c, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		return nil, fmt.Errorf("enabling BPF run time statistics: %w", err)
	}
	return c, nil
}

// BPFStatsSysctl reports whether kernel.bpf_stats_enabled is set. Stats
// enabled through EnableBPFStats do not show there.
func BPFStatsSysctl() (bool, error) {
	b, err := os.ReadFile("/proc/sys/kernel/bpf_stats_enabled")
	if err != nil {
		return false, fmt.Errorf("reading kernel.bpf_stats_enabled: %w", err)
	}
	return strings.TrimSpace(string(b)) != "0", nil
}
