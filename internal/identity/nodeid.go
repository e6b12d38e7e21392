package identity

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/stallmon/stallmon/heartbeat"
	"github.com/stallmon/stallmon/internal/cgroup"
)

// NodeID is the node id an agent uses: given (--node-id) when set, checked
// for the wire, else HOST/SERVICE, so that two agents on one host
// watching different services never share a default.
func NodeID(given, service string) (string, error) {
	if given != "" {
		if err := heartbeat.CheckNodeID(given); err != nil {
			return "", fmt.Errorf("--node-id: %w", err)
		}
		return given, nil
	}
	host, err := os.Hostname()
	if err != nil {
		return "", fmt.Errorf("--node-id not given and no host name: %w", err)
	}
	if host == "" {
		return "", errors.New("--node-id not given and the host name is empty")
	}
	return DefaultNodeID(host, service), nil
}

// DefaultNodeID is HOST/SERVICE (HOST alone without a service), fitted to
// the wire's 64 bytes: a long one keeps its head and gets a hash of the
// whole, so that two long ids that differ only at the end stay apart. An
// id given with --node-id is never changed: it is checked instead.
func DefaultNodeID(host, service string) string {
	id := host
	if service != "" {
		id = host + "/" + service
	}
	if len(id) <= heartbeat.MaxNodeIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	tail := "~" + hex.EncodeToString(sum[:4])
	head := id[:heartbeat.MaxNodeIDLen-len(tail)]
	for !utf8.ValidString(head) {
		head = head[:len(head)-1]
	}
	return head + tail
}

// ServiceOfPID names a process for the default node id: the systemd unit
// it runs in, else its command name. Not its pid: the node keeps its id
// when the service restarts under a new one.
func ServiceOfPID(pid int) string {
	if cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil {
		if unit := ServiceUnit(string(cg)); unit != "" {
			return unit
		}
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || len(bytes.TrimSpace(comm)) == 0 {
		return fmt.Sprintf("pid-%d", pid)
	}
	return string(bytes.TrimSpace(comm))
}

// ServiceOfCgroup names a cgroup for the default node id: its path below
// the cgroup v2 root, else the path as given.
func ServiceOfCgroup(path string) string {
	if d, err := cgroup.Open(path); err == nil {
		if root, err := cgroup.Root(); err == nil {
			if rel, err := filepath.Rel(root, d.Path); err == nil && rel != "." {
				return rel
			}
		}
	}
	return strings.Trim(filepath.Clean(path), "/")
}

// ServiceUnit is the systemd service a process runs in, from the cgroup v2
// line of /proc/PID/cgroup ("0::/system.slice/nginx.service"), "" when it
// is in none.
func ServiceUnit(procCgroup string) string {
	for line := range strings.Lines(procCgroup) {
		path, ok := strings.CutPrefix(strings.TrimSpace(line), "0::")
		if !ok {
			continue
		}
		for dir := path; dir != "/" && dir != "." && dir != ""; dir = filepath.Dir(dir) {
			if base := filepath.Base(dir); strings.HasSuffix(base, ".service") {
				return base
			}
		}
	}
	return ""
}
