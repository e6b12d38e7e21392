package cgroup

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Dir is one cgroup v2 directory.
type Dir struct{ Path string }

// Mkdir creates the cgroup name under parent.
func Mkdir(parent, name string) (Dir, error) {
	d := Dir{filepath.Join(parent, name)}
	if err := os.Mkdir(d.Path, 0o755); err != nil {
		return Dir{}, fmt.Errorf("creating cgroup: %w", err)
	}
	return d, nil
}

// Add moves process pid, all its threads, into the cgroup.
func (d Dir) Add(pid int) error { return d.write("cgroup.procs", strconv.Itoa(pid)) }

// Freeze freezes (or thaws) every process of the cgroup.
func (d Dir) Freeze(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return d.write("cgroup.freeze", v)
}

// Procs lists the processes in the cgroup itself (not its children).
func (d Dir) Procs() ([]int, error) {
	b, err := os.ReadFile(filepath.Join(d.Path, "cgroup.procs"))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", d.Path, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("reading %s: %q is not a pid", d.Path, f)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// Remove removes the cgroup, which must be empty.
func (d Dir) Remove() error {
	if err := os.Remove(d.Path); err != nil {
		return fmt.Errorf("removing cgroup: %w", err)
	}
	return nil
}

func (d Dir) write(file, v string) error {
	if err := os.WriteFile(filepath.Join(d.Path, file), []byte(v), 0); err != nil {
		return fmt.Errorf("writing %s to %s: %w", v, filepath.Join(d.Path, file), err)
	}
	return nil
}
