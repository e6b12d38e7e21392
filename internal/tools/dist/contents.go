package main

import (
	"path/filepath"

	"github.com/goreleaser/nfpm/v2/files"
)

// entry is one file of the packages: src is relative to the repository
// for what is committed, to the build's staging directory (staged) for
// what the build makes.
type entry struct {
	dst, src string
	staged   bool
	mode     uint32
	kind     string // files.Type*; "" is a plain file
	rpmKind  string // the kind in the .rpm, where it marks documentation
	only     string // "deb" or "rpm" when one format alone has it
}

const doc = "/usr/share/doc/stallmon/"

// contents lists what both packages of one architecture install; man
// holds the paths of the compressed man pages.
func contents(man []string) []entry {
	e := []entry{
		{dst: "/usr/bin/stallmon", src: "stallmon", staged: true, mode: 0o755},
		// Edited by the operator, so kept on upgrade: a conffile in the
		// .deb, %config(noreplace) in the .rpm.
		{dst: "/etc/stallmon/budgets.yaml", src: "budgets.yaml", staged: true, mode: 0o644, kind: files.TypeConfigNoReplace},
		{dst: "/usr/lib/systemd/system/stallmon-attach@.service", src: "deploy/systemd/stallmon-attach@.service", mode: 0o644},
		{dst: "/usr/lib/systemd/system/stallmon-notify@.service", src: "deploy/systemd/stallmon-notify@.service", mode: 0o644},
		{dst: "/usr/lib/systemd/system/stallmon-listen.service", src: "deploy/systemd/stallmon-listen.service", mode: 0o644},
		// Examples to adapt, not units to enable: a redis path and user,
		// a drop-in for the operator's own service.
		{dst: doc + "examples/stallmon-redis.service", src: "deploy/systemd/stallmon-redis.service", mode: 0o644, rpmKind: files.TypeRPMDoc},
		{dst: doc + "examples/watched-service.conf", src: "deploy/systemd/watched-service.conf", mode: 0o644, rpmKind: files.TypeRPMDoc},
		{dst: doc + "copyright", src: "deploy/package/copyright", mode: 0o644, rpmKind: files.TypeRPMDoc},
		{dst: "/usr/share/lintian/overrides/stallmon", src: "deploy/package/lintian-overrides", mode: 0o644, only: "deb"},
		{dst: "/usr/share/stallmon/grafana/stallmon-node.json", src: "deploy/grafana/stallmon-node.json", mode: 0o644},
		{dst: "/usr/share/stallmon/grafana/stallmon-fleet.json", src: "deploy/grafana/stallmon-fleet.json", mode: 0o644},
		{dst: "/usr/share/stallmon/grafana/provisioning.yaml", src: "deploy/grafana/provisioning.yaml", mode: 0o644},
		{dst: "/usr/share/stallmon/prometheus/stallmon-rules.yml", src: "deploy/prometheus/stallmon-rules.yml", mode: 0o644},
		{dst: "/usr/share/stallmon/prometheus/prometheus.example.yml", src: "deploy/prometheus/prometheus.example.yml", mode: 0o644},
		{dst: "/usr/share/bash-completion/completions/stallmon", src: "completion.bash", staged: true, mode: 0o644},
		// zsh looks in vendor-completions on Debian, site-functions on
		// RPM distributions.
		{dst: "/usr/share/zsh/vendor-completions/_stallmon", src: "completion.zsh", staged: true, mode: 0o644, only: "deb"},
		{dst: "/usr/share/zsh/site-functions/_stallmon", src: "completion.zsh", staged: true, mode: 0o644, only: "rpm"},
		{dst: "/usr/share/fish/vendor_completions.d/stallmon.fish", src: "completion.fish", staged: true, mode: 0o644},
	}
	for _, page := range man {
		e = append(e, entry{dst: "/usr/share/man/man8/" + filepath.Base(page), src: page, mode: 0o644, rpmKind: files.TypeRPMDoc})
	}
	return e
}
