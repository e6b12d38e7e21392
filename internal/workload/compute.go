package workload

import "errors"

// computeLoop is a thread that only computes: it spins in user space and
// never enters the kernel on its own (timer interrupts and preemption
// aside), so no sys_enter ever comes from it.
type computeLoop struct{ th *rawSpinner }

func (w *workload) computeStart([]string) ([]any, error) {
	if w.compute != nil {
		return nil, errors.New("already computing: send compute-stop first")
	}
	th, err := startRawSpinner()
	if err != nil {
		return nil, err
	}
	w.compute = &computeLoop{th: th}
	return []any{"tid", th.tid}, nil
}

func (w *workload) computeStop([]string) ([]any, error) {
	c := w.compute
	if c == nil {
		return nil, errors.New("not computing: send compute first")
	}
	w.compute = nil
	c.th.stop()
	spins, err := c.th.await()
	if err != nil {
		return nil, err
	}
	return []any{"tid", c.th.tid, "spins", spins}, nil
}
