package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// ManDirEnv names the directory that TestManPages writes the man pages
// into, for the packages (make dist): the command tree lives in this
// package, and the pages are made here so that the shipped binary holds
// no generator.
const ManDirEnv = "STALLMON_MAN_DIR"

// Every command gets a page in section 8 (a root's daemon), dated by
// SOURCE_DATE_EPOCH so that two builds of one commit give the same bytes.
func TestManPages(t *testing.T) {
	dir := os.Getenv(ManDirEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	date := time.Unix(0, 0).UTC()
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("SOURCE_DATE_EPOCH=%q: %v", s, err)
		}
		date = time.Unix(sec, 0).UTC()
	}
	root := newRootCmd()
	root.DisableAutoGenTag = true
	header := &doc.GenManHeader{Title: "STALLMON", Section: "8", Date: &date, Source: "stallmon " + buildVersion(), Manual: "System Manager's Manual"}
	if err := doc.GenManTree(root, header, dir); err != nil {
		t.Fatalf("generating man pages into %s: %v", dir, err)
	}
	var each func(c *cobra.Command)
	each = func(c *cobra.Command) {
		if !c.IsAvailableCommand() && c != root {
			return
		}
		name := strings.ReplaceAll(c.CommandPath(), " ", "-") + ".8"
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%s has no man page: %v", c.CommandPath(), err)
		} else if !strings.Contains(string(b), ".SH NAME") || !strings.Contains(string(b), ".SH SYNOPSIS") {
			t.Errorf("%s lacks NAME or SYNOPSIS:\n%s", name, b)
		}
		for _, sub := range c.Commands() {
			each(sub)
		}
	}
	each(root)
}
