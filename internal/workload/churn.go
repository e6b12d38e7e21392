package workload

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

const maxChurnThreads = 1000

// churn makes threads come and go fast, each entering read(2) and leaving
// through exit(2) without a matching sys_exit: what a tracer keyed by tid
// must survive. Each round line comes after that round's threads are gone,
// so a parent may count on their tids being free.
func (w *workload) churn(args []string) ([]any, error) {
	rounds, err := strconv.Atoi(args[0])
	if err != nil || rounds < 1 {
		return nil, fmt.Errorf("ROUNDS %q is not a positive integer", args[0])
	}
	threads, err := strconv.Atoi(args[1])
	if err != nil || threads < 1 || threads > maxChurnThreads {
		return nil, fmt.Errorf("THREADS %q is not in 1..%d", args[1], maxChurnThreads)
	}
	for r := 1; r <= rounds; r++ {
		gone, err := churnRound(threads)
		if err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		if err := waitGone(gone); err != nil {
			return nil, fmt.Errorf("round %d: %w", r, err)
		}
		tids := make([]int, len(gone))
		for i, tk := range gone {
			tids[i] = tk.tid
		}
		w.progress("round", "n", r, "tids", joinInts(tids))
	}
	return []any{"rounds", rounds, "threads", threads}, nil
}

// churnRound parks n workers in read(2) on one shared pipe, then lets them
// all go with n bytes, one each.
func churnRound(n int) (gone []task, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, fmt.Errorf("creating pipe: %w", err)
	}
	// Closing the write end also frees any reader still waiting (EOF) if
	// the round fails half-way.
	defer unix.Close(p[0])
	defer unix.Close(p[1])

	workers, err := parkReaders(n, p[0])
	if err != nil {
		return nil, err
	}
	if _, err := unix.Write(p[1], make([]byte, n)); err != nil {
		return nil, fmt.Errorf("waking %d threads: %w", n, err)
	}
	for _, wk := range workers {
		ret, err := wk.await()
		if err != nil || ret != 1 {
			return nil, fmt.Errorf("read on thread %d: ret=%d: %v", wk.tid, ret, err)
		}
		gone = append(gone, task{wk.tid, wk.start})
	}
	return gone, nil
}
