package tracker

import (
	"embed"
	"go/ast"
	"go/parser"
	"go/token"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/fdkind"
)

// The generated syscall tables of both architectures, as source: a test
// on one architecture checks the other's too (no arm64 machine runs the
// tests). Embedded, so that the test binary needs no source tree (make
// vmtest runs it in a guest).
//
//go:embed gen/syscalls_amd64.go gen/syscalls_arm64.go
var generatedSource embed.FS

// generatedTables reads the syscall tables of arch from gen/'s generated
// source.
func generatedTables(t *testing.T, arch string) syscallTables {
	t.Helper()
	name := "gen/syscalls_" + arch + ".go"
	src, err := generatedSource.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), name, src, 0)
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

// A table may name what some thread's syscall is judged by, in any ABI:
// arm64 has no poll, epoll_wait, select (aarch32's _newselect), pause,
// fork or vfork, but a 32-bit process on it makes them. The built-in
// table skips the names the architecture cannot judge: with the native
// names alone it dropped those rules on arm64, and an aarch32 event loop
// idle in poll fell to the default rule, a stall after 5s and a kill
// after 60s.
func TestJudgedNamesCoverEveryABI(t *testing.T) {
	arm := generatedTables(t, "arm64")
	judged := arm.judged()
	native := map[string]bool{}
	for _, n := range arm.native {
		native[n] = true
	}
	idle := []string{"poll", "epoll_wait", "select", "pause"}
	for _, name := range append(idle, "fork", "vfork") {
		if native[name] || !judged[name] {
			t.Errorf("arm64: %s native %v, judged %v; want an aarch32-only name, judged", name, native[name], judged[name])
		}
	}
	for _, c := range []struct {
		what  string
		known func(string) bool
		want  bool
	}{
		{"native names only", func(n string) bool { return native[n] }, false},
		{"every ABI's", func(n string) bool { return judged[n] }, true},
	} {
		table, err := budget.Default(c.known)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range idle {
			if got := table.Lookup(name, fdkind.None).Unbounded; got != c.want {
				t.Errorf("arm64, %s: the built-in %s rule is unbounded: %v, want %v", c.what, name, got, c.want)
			}
		}
		vforkD := table.StateRule("vfork", fdkind.None, budget.Uninterruptible).Unbounded
		if vforkD != c.want {
			t.Errorf("arm64, %s: vfork's parent in D unbounded: %v, want %v", c.what, vforkD, c.want)
		}
	}

	// Names only a 32-bit call has here count, its own spellings of a
	// native call do not (they are judged by the native name).
	for name, want := range map[string]bool{"read": true, "statfs64": true, "recvfrom": true, "waitpid": false, "_newselect": false, "_llseek": false} {
		if got := JudgedSyscall(name); got != want && runtime.GOARCH == "amd64" {
			t.Errorf("amd64: JudgedSyscall(%q) = %v, want %v", name, got, want)
		}
	}
	if here := generatedTables(t, runtime.GOARCH).judged(); len(here) != len(judgedNames) {
		t.Errorf("JudgedSyscall knows %d names, the %s tables %d", len(judgedNames), runtime.GOARCH, len(here))
	}
}
