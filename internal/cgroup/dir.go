package cgroup

import (
	"errors"
	"fmt"
	"io/fs"
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

// Open resolves path to a cgroup directory: a directory under the cgroup
// v2 mount (/sys/fs/cgroup/system.slice/nginx.service), or a cgroup path as
// /proc/PID/cgroup writes it, relative to the root whether or not it starts
// with a slash (/system.slice/nginx.service, system.slice/nginx.service).
func Open(path string) (Dir, error) {
	root, err := Root()
	if err != nil {
		return Dir{}, err
	}
	p := filepath.Clean(path)
	if p != root && !strings.HasPrefix(p, root+"/") {
		p = filepath.Join(root, p)
	}
	if p != root && !strings.HasPrefix(p, root+"/") {
		return Dir{}, fmt.Errorf("%s is not under the cgroup v2 hierarchy at %s", path, root)
	}
	st, err := os.Stat(filepath.Join(p, "cgroup.procs"))
	if err != nil {
		return Dir{}, fmt.Errorf("cgroup %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return Dir{}, fmt.Errorf("cgroup %s: cgroup.procs is not a file", path)
	}
	return Dir{Path: p}, nil
}

// Kill sends SIGKILL to every process of the cgroup and its descendants.
// It writes cgroup.kill (Linux 5.14), which kills them all at once with no
// PID looked up, so none can be recycled under us. Without it (5.2-5.13)
// it freezes the cgroup and kills each member through a pidfd (see
// freezeKill), which takes up to a second. ErrNoKill means the
// kernel has neither cgroup.kill nor cgroup.freeze. A cgroup already
// removed (empty, so nothing is left to kill) is an error that matches
// fs.ErrNotExist, on either path: the caller knows whether its target
// is gone, Kill cannot tell a removal from a wrong path.
func (d Dir) Kill() error {
	if forceFreezeKill.Load() {
		err := d.freezeKill(defaultFreezeKillLimits)
		if freezeKillDone != nil {
			freezeKillDone(d, err)
		}
		return err
	}
	err := d.write("cgroup.kill", "1")
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(d.Path); serr == nil {
			return d.freezeKill(defaultFreezeKillLimits)
		}
	}
	return err
}

// ErrNoKill reports a kernel before 5.2, with neither cgroup.kill nor
// cgroup.freeze: a cgroup cannot be killed without signalling bare PIDs.
var ErrNoKill = errors.New("neither cgroup.kill (Linux 5.14) nor cgroup.freeze (Linux 5.2) is available")

// Populated reports whether any process is in the cgroup or below, from
// cgroup.events.
func (d Dir) Populated() (bool, error) {
	b, err := os.ReadFile(filepath.Join(d.Path, "cgroup.events"))
	if err != nil {
		return false, fmt.Errorf("reading %s: %w", d.Path, err)
	}
	return ParsePopulated(string(b))
}

// ParsePopulated reads the populated line of a cgroup.events file.
func ParsePopulated(events string) (bool, error) { return parseEvent(events, "populated") }

// Own is the cgroup this process runs in.
func Own() (Dir, error) {
	root, err := Root()
	if err != nil {
		return Dir{}, err
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return Dir{}, fmt.Errorf("reading own cgroup: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return Dir{Path: filepath.Join(root, p)}, nil
		}
	}
	return Dir{}, errors.New("no cgroup v2 line in /proc/self/cgroup")
}
