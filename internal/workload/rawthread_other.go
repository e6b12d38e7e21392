//go:build !(linux && amd64)

package workload

import "errors"

// rawReader needs a clone(2) stub in assembly, written for amd64 only.
type rawReader struct{ tid int }

func startRawReader(int) (*rawReader, error) {
	return nil, errors.New("spawn-wait is implemented for amd64 only")
}

func (r *rawReader) id() int { return r.tid }

func (*rawReader) finished() (int, error, bool) { return 0, nil, true }

func (*rawReader) await() (int, error) {
	return 0, errors.New("spawn-wait is implemented for amd64 only")
}

type rawSpinner struct{ *rawReader }

func startRawSpinner() (*rawSpinner, error) {
	return nil, errors.New("compute is implemented for amd64 only")
}

func (*rawSpinner) stop() {}

func startRawToucher(uintptr, int) (*rawReader, error) {
	return nil, errors.New("touch-uffd and touch-file are implemented for amd64 only")
}
