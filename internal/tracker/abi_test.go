package tracker

import (
	"go/ast"
	"go/parser"
	"go/token"
	"runtime"
	"slices"
	"strconv"
	"testing"
)

// generatedTables reads the syscall tables of arch from gen/'s generated
// source, so that a test on one architecture checks the other's too (no
// arm64 machine runs the tests).
func generatedTables(t *testing.T, arch string) syscallTables {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "gen/syscalls_"+arch+".go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string][]string{}
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || len(vs.Names) != 1 || len(vs.Values) != 1 {
			return true
		}
		lit, ok := vs.Values[0].(*ast.CompositeLit)
		if !ok {
			return true
		}
		size, err := strconv.Atoi(lit.Type.(*ast.ArrayType).Len.(*ast.BasicLit).Value)
		if err != nil {
			t.Fatal(err)
		}
		table := make([]string, size)
		for _, e := range lit.Elts {
			kv := e.(*ast.KeyValueExpr)
			nr, err := strconv.Atoi(kv.Key.(*ast.BasicLit).Value)
			if err != nil {
				t.Fatal(err)
			}
			if table[nr], err = strconv.Unquote(kv.Value.(*ast.BasicLit).Value); err != nil {
				t.Fatal(err)
			}
		}
		tables[vs.Names[0].Name] = table
		return false
	})
	st := syscallTables{native: tables["SyscallNames"], compat: tables["CompatSyscallNames"], x32: arch == "amd64"}
	if len(st.native) == 0 || len(st.compat) == 0 {
		t.Fatalf("gen/syscalls_%s.go: no SyscallNames or CompatSyscallNames table", arch)
	}
	return st
}

// A thread ends inside its own ABI's exit or exit_group: each ABI's
// numbers come from its table, x32's are amd64's (bit 30 is dropped
// before the kernel side compares), and an ABI without the call holds a
// number no in-flight word can carry.
func TestExitNumbersPerABI(t *testing.T) {
	type pair struct{ exit, group uint32 }
	for _, c := range []struct {
		arch string
		want [abiSlots]pair
	}{
		{"amd64", [abiSlots]pair{ABINative: {60, 231}, ABICompat: {1, 252}, ABIX32: {60, 231}, 3: {noNr, noNr}}},
		{"arm64", [abiSlots]pair{ABINative: {93, 94}, ABICompat: {1, 248}, ABIX32: {noNr, noNr}, 3: {noNr, noNr}}},
	} {
		t.Run(c.arch, func(t *testing.T) {
			st := generatedTables(t, c.arch)
			exit, group := st.nrs("exit"), st.nrs("exit_group")
			for abi := range abiSlots {
				if got := (pair{exit[abi], group[abi]}); got != c.want[abi] {
					t.Errorf("ABI %d: exit, exit_group = %v, want %v", abi, got, c.want[abi])
				}
			}
		})
	}
	// The tables the tracker loads with are the running architecture's,
	// and name those numbers back as the snapshot and death records do.
	if here := generatedTables(t, runtime.GOARCH); !slices.Equal(here.native, archTables.native) ||
		!slices.Equal(here.compat, archTables.compat) || here.x32 != archTables.x32 {
		t.Fatalf("archTables are not gen/syscalls_%s.go's", runtime.GOARCH)
	}
	for _, name := range []string{"exit", "exit_group", "close"} {
		nrs := archTables.nrs(name)
		for _, abi := range []ABI{ABINative, ABICompat, ABIX32} {
			if nrs[abi] == noNr {
				continue
			}
			if got, _ := abi.name(int(nrs[abi]), [6]uint64{}); got != name {
				t.Errorf("%s number %d of %s is named %q", abi, nrs[abi], name, got)
			}
		}
	}
}
