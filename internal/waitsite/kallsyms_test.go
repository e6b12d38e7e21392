package waitsite

import (
	"errors"
	"os"
	"strings"
	"testing"
)

// A /proc/kallsyms in the shapes the kernel writes: aliases, compiler
// padding and CFI stubs, data symbols, init text, a module, BPF programs
// and an ftrace trampoline.
const kallsyms = `ffffffff81000000 T _stext
ffffffff81000000 T _text
ffffffff81000100 t __pfx_anon_pipe_read
ffffffff81000110 t anon_pipe_read
ffffffff81000400 T __cfi_wait_woken
ffffffff81000410 T wait_woken
ffffffff81000500 W abort
ffffffff81000600 T sk_stream_wait_memory
ffffffff81001000 T _etext
ffffffff82000000 D some_data
ffffffff83000000 T _sinittext
ffffffff83000010 t an_init_function
ffffffff83001000 T _einittext
ffffffffc0000000 t request_wait_answer	[fuse]
ffffffffc0000400 t fuse_dev_do_read	[fuse]
ffffffffc0002000 t bpf_prog_0123456789abcdef_snapshot	[bpf]
ffffffffc0003000 t ftrace_trampoline	[__builtin__ftrace]
`

func mustRead(t *testing.T, text string) *Symbols {
	t.Helper()
	s, err := ReadSymbols(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestFunc(t *testing.T) {
	s := mustRead(t, kallsyms)
	for _, c := range []struct {
		addr uint64
		want string // "" for none
	}{
		{0xffffffff80ffffff, ""},               // below the kernel
		{0xffffffff81000000, "_stext"},         // the first alias read stands for both
		{0xffffffff81000105, "_stext"},         // padding belongs to the function before it
		{0xffffffff81000110, "anon_pipe_read"}, // a function's first byte
		{0xffffffff810003ff, "anon_pipe_read"},
		{0xffffffff81000420, "wait_woken"},
		{0xffffffff81000580, "abort"}, // weak
		{0xffffffff81000fff, "sk_stream_wait_memory"},
		{0xffffffff81001000, ""},                    // _etext: past the kernel's text
		{0xffffffff82000010, ""},                    // data
		{0xffffffff83000020, "an_init_function"},    // init text
		{0xffffffff83001000, ""},                    // _einittext
		{0xffffffffc0000010, "request_wait_answer"}, // a module
		{0xffffffffc0000400 + moduleSlack - 1, "fuse_dev_do_read"},
		{0xffffffffc0000400 + moduleSlack, ""}, // past the module's last function
		{0xffffffffc0002010, ""},               // a BPF program: not kept
		{0xffffffffc0003010, ""},               // a trampoline: not kept
	} {
		got, ok := s.Func(c.addr)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("Func(%#x) = %q, %v; want %q", c.addr, got, ok, c.want)
		}
	}
	// _stext (for _text too), _sinittext, and the seven functions.
	if n := s.Len(); n != 9 {
		t.Errorf("Len = %d, want 9 functions", n)
	}
}

func TestReadSymbolsHidden(t *testing.T) {
	hidden := "0000000000000000 T _stext\n0000000000000000 t anon_pipe_read\n0000000000000000 t request_wait_answer\t[fuse]\n"
	if _, err := ReadSymbols(strings.NewReader(hidden)); !errors.Is(err, ErrHidden) {
		t.Fatalf("all-zero addresses: err %v, want ErrHidden", err)
	}
}

func TestReadSymbolsRejects(t *testing.T) {
	for name, text := range map[string]string{
		"empty":            "",
		"no functions":     "ffffffff82000000 D some_data\n",
		"missing type":     "ffffffff81000000 _stext\n",
		"bad address":      "ffffffffg1000000 T _stext\n",
		"long type":        "ffffffff81000000 TT _stext\n",
		"too many columns": "ffffffff81000000 T _stext extra\n",
	} {
		if _, err := ReadSymbols(strings.NewReader(text)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Every frame is named, in order; the first one no symbol covers makes
// the wait unknown, even below a known site.
func TestWait(t *testing.T) {
	s := mustRead(t, kallsyms)
	w := s.Wait([]uint64{0xffffffff81000420, 0xffffffff81000610, 0xffffffff81000120, 0})
	if w.Class != SocketSend || w.Site != "sk_stream_wait_memory" {
		t.Errorf("wait = %s, want socket_send sk_stream_wait_memory", w)
	}
	if got, want := w.Stack(), "wait_woken | sk_stream_wait_memory | anon_pipe_read"; got != want {
		t.Errorf("stack %q, want %q", got, want)
	}
	// A return address just past a function's last byte is that function's.
	if w := s.Wait([]uint64{0xffffffff81000600}); w.Frames[0] != "abort" {
		t.Errorf("return address at a function's start names %q, want the function before it", w.Frames[0])
	}
	unknown := s.Wait([]uint64{0xffffffffc0100000, 0xffffffffc0000010})
	if unknown.Class != Unknown || unknown.Site != "" || unknown.Frames[0] != "0xffffffffc0100000" {
		t.Errorf("unresolved innermost frame: %+v, want unknown with the address shown", unknown)
	}
	var none *Symbols
	if w := none.Wait([]uint64{0xffffffff81000110}); w.Class != Unknown {
		t.Errorf("without symbols: %s, want unknown", w)
	}
	if w := s.Wait(nil); w.Class != Unknown || len(w.Frames) != 0 {
		t.Errorf("an empty stack: %+v, want unknown", w)
	}
}

// The running kernel's own table reads, when it may be read.
func TestLoadSymbols(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to see kernel addresses")
	}
	s, err := LoadSymbols()
	if errors.Is(err, ErrHidden) {
		t.Skipf("%v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() < 10000 {
		t.Errorf("%d functions, want the kernel's tens of thousands", s.Len())
	}
	t.Logf("%d functions, %d bytes of names", s.Len(), len(s.names))
}
