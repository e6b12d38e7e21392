package cgroup

import (
	"errors"
	"os"
	"strings"
	"testing"
)

func TestRootFromMountinfo(t *testing.T) {
	for _, c := range []struct {
		name, mountinfo, want string
		err                   error
	}{
		{"systemd host", "29 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup", nil},
		{"hybrid host", "30 25 0:27 / /sys/fs/cgroup/unified rw shared:5 - cgroup2 cgroup2 rw\n" +
			"31 25 0:28 / /sys/fs/cgroup/cpu rw shared:6 - cgroup cgroup rw,cpu\n", "/sys/fs/cgroup/unified", nil},
		{"escaped path", `40 1 0:30 / /mnt/my\040cgroups rw - cgroup2 none rw` + "\n", "/mnt/my cgroups", nil},
		{"v1 only", "31 25 0:28 / /sys/fs/cgroup/cpu rw shared:6 - cgroup cgroup rw,cpu\n", "", ErrNoCgroup2},
		{"subtree bind mount first", "50 1 0:26 /system.slice /mnt/slice rw - cgroup2 cgroup2 rw\n" +
			"29 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n", "/sys/fs/cgroup", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := rootFrom(strings.NewReader(c.mountinfo))
			if got != c.want || !errors.Is(err, c.err) {
				t.Fatalf("rootFrom = %q, %v; want %q, %v", got, err, c.want, c.err)
			}
		})
	}
}

// This host's own mount is found and is a cgroup2 directory.
func TestRootOnThisHost(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/cgroup.procs"); err != nil {
		t.Fatalf("cgroup2 root %s has no cgroup.procs: %v", root, err)
	}
}
