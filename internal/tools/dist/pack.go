package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/goreleaser/nfpm/v2"
	"github.com/goreleaser/nfpm/v2/deb"
	"github.com/goreleaser/nfpm/v2/files"
	"github.com/goreleaser/nfpm/v2/rpm"
)

const description = `Fence a service whose syscall never returns
stallmon watches a process from the kernel side with eBPF: which syscall
each thread is in, since when, on what kind of file and in what state.
It judges every thread against a timeout table, stops the node's cluster
heartbeat while one is stuck (its own multicast heartbeat, keepalived,
Pacemaker, etcd, systemd) and kills the service through a pidfd or
cgroup.kill when a syscall never returns, so that a peer can take over.
It needs Linux 5.15 or later with BTF.`

// release numbers the packaging of one version: always the first.
const release = "1"

const maintainer = "stallmon developers <stallmon@users.noreply.github.com>"

var packagers = map[string]nfpm.Packager{"deb": deb.Default, "rpm": rpm.DefaultRPM}

// pack writes the package of one format and architecture into out and
// returns its path. stage is the build's staging directory for arch.
func pack(format string, src source, arch, stage string, entries []entry, changelog, out string) (string, error) {
	var c files.Contents
	for _, e := range entries {
		if e.only != "" && e.only != format {
			continue
		}
		kind := e.kind
		if format == "rpm" && e.rpmKind != "" {
			kind = e.rpmKind
		}
		from := e.src
		if e.staged {
			from = filepath.Join(stage, e.src)
		}
		c = append(c, &files.Content{
			Source:      from,
			Destination: e.dst,
			Type:        kind,
			FileInfo:    &files.ContentFileInfo{Owner: "root", Group: "root", Mode: os.FileMode(e.mode), MTime: src.date},
		})
	}
	info := nfpm.WithDefaults(&nfpm.Info{
		Name:          "stallmon",
		Arch:          arch,
		Platform:      "linux",
		Version:       src.version,
		VersionSchema: "none",
		Release:       release,
		Section:       "admin",
		Priority:      "optional",
		Maintainer:    maintainer,
		Description:   description,
		Vendor:        "stallmon",
		Homepage:      "https://github.com/stallmon/stallmon",
		License:       "LicenseRef-stallmon",
		Changelog:     changelog,
		MTime:         src.date,
		Overridables: nfpm.Overridables{
			// Nothing is needed at run time (a static binary); these are
			// what it can hand its verdict to.
			Suggests: []string{"pacemaker", "keepalived", "etcd-server"},
			Contents: c,
			RPM: nfpm.RPM{
				Summary:   strings.SplitN(description, "\n", 2)[0],
				Group:     "System Environment/Daemons",
				BuildHost: "stallmon-dist",
			},
		},
	})
	if err := info.Validate(); err != nil {
		return "", fmt.Errorf("%s %s: %w", format, arch, err)
	}
	p := packagers[format]
	path := filepath.Join(out, p.ConventionalFileName(info))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if err := p.Package(info, f); err != nil {
		f.Close()
		return "", fmt.Errorf("packing %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}
