package event

import (
	"go/ast"
	"go/constant"
	"go/types"
	"strings"
	"testing"

	"golang.org/x/tools/go/packages"
)

// msgParam is where a *slog.Logger method takes its message.
var msgParam = map[string]int{
	"Debug": 0, "Info": 0, "Warn": 0, "Error": 0,
	"DebugContext": 1, "InfoContext": 1, "WarnContext": 1, "ErrorContext": 1,
	"Log": 2, "LogAttrs": 2,
}

// site is a call whose argument arg must be an event name.
type site struct {
	pos  string
	expr ast.Expr
	info *types.Info
}

// Every log call of the product (every package but tests, test helpers
// and build tools) passes an event name of this package as its message, or passes
// on a parameter of a function whose every caller does. Known blind spot:
// a forwarder called through a function value, whose callers are not
// found.
func TestEveryLogMessageIsAnEvent(t *testing.T) {
	pkgs, err := packages.Load(&packages.Config{
		Mode: packages.NeedName | packages.NeedFiles | packages.NeedSyntax | packages.NeedTypes | packages.NeedTypesInfo,
		Dir:  "../..",
	}, "./...")
	if err != nil {
		t.Fatalf("loading packages: %v", err)
	}
	names := map[string]bool{}
	for _, e := range All {
		names[e.Name] = true
	}
	var sites []site
	// forwards maps a function to its parameters that end up as a message.
	forwards := map[*types.Func][]int{}
	var calls []*ast.CallExpr
	callInfo := map[*ast.CallExpr]*types.Info{}
	callPos := map[*ast.CallExpr]string{}
	loaded := 0
	for _, p := range pkgs {
		for _, e := range p.Errors {
			t.Errorf("%s: %v", p.PkgPath, e)
		}
		// Build tools (internal/tools: make generate's, make dist's)
		// never run beside the product: their logs are no events.
		if strings.Contains(p.PkgPath, "/internal/test/") || strings.Contains(p.PkgPath, "/internal/testutil/") || strings.Contains(p.PkgPath, "/internal/tools/") {
			continue
		}
		loaded++
		for _, f := range p.Syntax {
			for _, decl := range f.Decls {
				// Calls in a function may forward its parameters; calls in
				// a package-level value (a func literal in a var) may not.
				fd, _ := decl.(*ast.FuncDecl)
				ast.Inspect(decl, func(n ast.Node) bool {
					call, ok := n.(*ast.CallExpr)
					if !ok {
						return true
					}
					calls = append(calls, call)
					callInfo[call] = p.TypesInfo
					callPos[call] = p.Fset.Position(call.Pos()).String()
					i, ok := loggerMsg(p.TypesInfo, call)
					if !ok || i >= len(call.Args) {
						return true
					}
					arg := call.Args[i]
					if fd != nil {
						if param := paramIndex(p.TypesInfo, fd, arg); param >= 0 {
							fn := p.TypesInfo.Defs[fd.Name].(*types.Func)
							forwards[fn] = append(forwards[fn], param)
							return true
						}
					}
					sites = append(sites, site{callPos[call], arg, p.TypesInfo})
					return true
				})
			}
		}
	}
	if loaded < 20 {
		t.Fatalf("checked %d packages, want the whole product", loaded)
	}
	// The callers of a forwarding function must pass event names too.
	for _, call := range calls {
		fn := calledFunc(callInfo[call], call)
		for _, i := range forwards[fn] {
			if i < len(call.Args) {
				sites = append(sites, site{callPos[call], call.Args[i], callInfo[call]})
			}
		}
	}
	if len(sites) < 80 {
		t.Fatalf("found %d log messages, want every one of the product's", len(sites))
	}
	for _, s := range sites {
		tv, ok := s.info.Types[s.expr]
		if !ok || tv.Value == nil || tv.Value.Kind() != constant.String {
			t.Errorf("%s: log message is not a constant event name", s.pos)
			continue
		}
		if msg := constant.StringVal(tv.Value); !names[msg] {
			t.Errorf("%s: log message %q is not an event of internal/event", s.pos, msg)
		}
	}
}

// loggerMsg says whether call logs through log/slog (a *slog.Logger
// method, or the package's own functions on the default logger), and
// where its message is.
func loggerMsg(info *types.Info, call *ast.CallExpr) (int, bool) {
	fn := calledFunc(info, call)
	if fn == nil || fn.Pkg() == nil || fn.Pkg().Path() != "log/slog" {
		return 0, false
	}
	sig, ok := fn.Type().(*types.Signature)
	if !ok {
		return 0, false
	}
	if recv := sig.Recv(); recv != nil {
		t := recv.Type()
		if p, ok := t.(*types.Pointer); ok {
			t = p.Elem()
		}
		if named, ok := t.(*types.Named); !ok || named.Obj().Name() != "Logger" {
			return 0, false
		}
	}
	i, ok := msgParam[fn.Name()]
	return i, ok
}

func calledFunc(info *types.Info, call *ast.CallExpr) *types.Func {
	var id *ast.Ident
	switch f := call.Fun.(type) {
	case *ast.Ident:
		id = f
	case *ast.SelectorExpr:
		id = f.Sel
	default:
		return nil
	}
	fn, _ := info.Uses[id].(*types.Func)
	return fn
}

// paramIndex is the index of the parameter of fd that arg names, -1 when
// it names none.
func paramIndex(info *types.Info, fd *ast.FuncDecl, arg ast.Expr) int {
	id, ok := arg.(*ast.Ident)
	if !ok {
		return -1
	}
	obj := info.Uses[id]
	i := 0
	for _, field := range fd.Type.Params.List {
		for _, name := range field.Names {
			if info.Defs[name] == obj {
				return i
			}
			i++
		}
		if len(field.Names) == 0 {
			i++
		}
	}
	return -1
}

// The list holds each name once, and each constant of this package.
func TestListIsComplete(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range All {
		if seen[e.Name] {
			t.Errorf("%s listed twice", e.Name)
		}
		seen[e.Name] = true
		if e.Who == "" || e.Doc == "" {
			t.Errorf("%s: no Who or Doc", e.Name)
		}
	}
	pkgs, err := packages.Load(&packages.Config{Mode: packages.NeedTypes | packages.NeedName}, ".")
	if err != nil || len(pkgs) != 1 {
		t.Fatalf("loading this package: %v", err)
	}
	scope := pkgs[0].Types.Scope()
	consts := 0
	for _, name := range scope.Names() {
		c, ok := scope.Lookup(name).(*types.Const)
		if !ok || !c.Exported() || c.Val().Kind() != constant.String {
			continue
		}
		consts++
		if v := constant.StringVal(c.Val()); !seen[v] {
			t.Errorf("constant %s = %q is not in All", name, v)
		}
	}
	if consts != len(All) {
		t.Errorf("%d constants, %d events listed", consts, len(All))
	}
}
