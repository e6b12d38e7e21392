// Command dist builds stallmon's .deb and .rpm packages for amd64 and
// arm64 (make dist): a static binary per architecture, what that binary
// prints (its timeout table, its shell completions), the man pages of
// its command tree, the units and the monitoring files of deploy/,
// packed by nfpm. Two runs on one commit give the same bytes: every
// time stamp is the commit's (SOURCE_DATE_EPOCH).
//
// It is a main package of its own so that nfpm never reaches the
// shipped binary.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

func main() {
	var o options
	flag.StringVar(&o.out, "out", "bin/dist", "directory the packages are written to")
	flag.StringVar(&o.version, "version", "", "version of the packages and of `stallmon version` (default: from git describe)")
	arches := flag.String("arch", "amd64,arm64", "GOARCHes to package, comma-separated")
	flag.Parse()
	o.arches = strings.Split(*arches, ",")
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(o, log); err != nil {
		fmt.Fprintln(os.Stderr, "dist:", err)
		os.Exit(1)
	}
}
