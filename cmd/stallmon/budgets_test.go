package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBudgetsDefaultPath: without --config, stallmon reads the default
// path when a table is there, with its drop-ins, and the built-in table
// when nothing is; --config wins over it. attach and run share the flags.
func TestBudgetsDefaultPath(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "budgets.yaml")
	dropIn := filepath.Join(dir, "budgets.d", "10-db.yaml")
	config := filepath.Join(dir, "other.yaml")
	for path, text := range map[string]string{
		present: "extends: builtin\nsyscalls:\n  fsync: {budget: 50s, kill_after: 200s}\n",
		dropIn:  "syscalls:\n  msync: {budget: 40s, kill_after: 200s}\n",
		config:  "default: {budget: 2s, kill_after: 20s}\n",
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name        string
		defaultPath string
		args        []string
		want        []string
		not         []string
	}{
		{"present", present, nil, []string{
			"  fsync: {budget: 50s, kill_after: 3m20s}  # from " + present + "\n",
			"  msync: {budget: 40s, kill_after: 3m20s}  # from " + dropIn + "\n",
			"default: {budget: 5s, kill_after: 1m}  # from builtin\n",
		}, nil},
		{"absent", filepath.Join(dir, "absent.yaml"), nil, []string{
			"default: {budget: 5s, kill_after: 1m}  # from builtin\n",
			"  fsync: {budget: 30s, kill_after: 2m}  # from builtin\n",
		}, []string{dir}},
		{"--config wins", present, []string{"--config", config, "--budget", "3s"}, []string{
			"default: {budget: 3s, kill_after: 20s}  # from " + config + ", then --budget\n",
		}, []string{"fsync", present, "builtin"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			saved := defaultTablePath
			defaultTablePath = c.defaultPath
			t.Cleanup(func() { defaultTablePath = saved })
			root := newRootCmd()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetArgs(append([]string{"budgets"}, c.args...))
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("budgets lacks %q:\n%s", w, out.String())
				}
			}
			for _, n := range c.not {
				if strings.Contains(out.String(), n) {
					t.Errorf("budgets names %q:\n%s", n, out.String())
				}
			}
		})
	}
	// attach and run take the table from the same options.
	for _, name := range []string{"attach", "run"} {
		cmd, _, err := newRootCmd().Find([]string{name})
		if err != nil {
			t.Fatal(err)
		}
		if f := cmd.Flags().Lookup("config"); f == nil || !strings.Contains(f.Usage, shippedTablePath) {
			t.Errorf("%s: --config is missing or does not name %s", name, shippedTablePath)
		}
	}
}
