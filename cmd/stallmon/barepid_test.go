package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The shipped binary signals through pidfds and cgroup.kill only: no
// call in it sends a signal to a bare PID, which may have been recycled
// since it was read. The one group kill (internal/procgroup) holds its
// leader unreaped while it kills, which keeps the group's ID its own.
func TestShippedBinarySignalsNoBarePID(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}} {{.Dir}} {{join .GoFiles \" \"}}{{end}}", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	banned := map[string]bool{"syscall.Kill": true, "unix.Kill": true, "syscall.Tgkill": true, "unix.Tgkill": true,
		"unix.Tkill": true, "os.FindProcess": true}
	allowed := map[string]bool{"github.com/stallmon/stallmon/internal/procgroup/run.go": true}
	scanned, seenAllowed := 0, false
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) < 3 || !strings.HasPrefix(f[0], "github.com/stallmon/stallmon") {
			continue
		}
		for _, name := range f[2:] {
			fset := token.NewFileSet()
			file, err := parser.ParseFile(fset, filepath.Join(f[1], name), nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			scanned++
			ast.Inspect(file, func(n ast.Node) bool {
				sel, ok := n.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				pkg, ok := sel.X.(*ast.Ident)
				if !ok || !banned[pkg.Name+"."+sel.Sel.Name] {
					return true
				}
				if allowed[f[0]+"/"+name] {
					seenAllowed = true
					return true
				}
				t.Errorf("%s: %s.%s signals a bare PID; use a pidfd or cgroup.Dir.Kill", fset.Position(sel.Pos()), pkg.Name, sel.Sel.Name)
				return true
			})
		}
	}
	if scanned < 100 || !seenAllowed {
		t.Fatalf("scanned %d files (want the binary's), saw the process-group kill: %v", scanned, seenAllowed)
	}
}
