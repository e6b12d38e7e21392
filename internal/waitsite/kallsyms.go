package waitsite

import (
	"bufio"
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Symbols maps kernel text addresses to function names. It is read once,
// when the tracker attaches: never in the poll loop, and never from a file
// of the target. It is immutable, so any goroutine may use it.
type Symbols struct {
	// addrs are the functions' start addresses, sorted, with the end of
	// each region of text (the core kernel's, each module's) as an entry
	// of its own, nameless: an address past a region's last function
	// belongs to no function known here.
	addrs []uint64
	// ends[i] is where entry i's name ends in names, so that 64,000
	// names cost two allocations, not 64,000.
	ends  []uint32
	names string
}

// KallsymsPath is the kernel's symbol table.
const KallsymsPath = "/proc/kallsyms"

// ErrHidden is returned when the kernel shows every address as zero
// (kernel.kptr_restrict, or a reader without CAP_SYSLOG).
var ErrHidden = errors.New("the kernel hides its symbols' addresses (kernel.kptr_restrict)")

// moduleSlack is how far past a module's last function an address may
// still be that function's: a module's size is not in kallsyms. A longer
// last function leaves its tail unknown, which fails closed.
const moduleSlack = 4096

// LoadSymbols reads the running kernel's text symbols from /proc/kallsyms.
func LoadSymbols() (*Symbols, error) {
	f, err := os.Open(KallsymsPath)
	if err != nil {
		return nil, fmt.Errorf("reading kernel symbols: %w", err)
	}
	defer f.Close()
	s, err := ReadSymbols(f)
	if err != nil {
		return nil, fmt.Errorf("reading kernel symbols from %s: %w", KallsymsPath, err)
	}
	return s, nil
}

// sym is one function while the table is built: its name is
// buf[off:off+n] of the reader's buffer of kept names.
type sym struct {
	addr   uint64
	off, n uint32 // n 0: a region's end
}

// ReadSymbols parses the format of /proc/kallsyms: "ADDR TYPE NAME", with
// "\t[MODULE]" after a module's symbols. Only functions are kept (types
// t, T, w, W), and not the padding and CFI stubs the compiler puts before
// them (__pfx_, __cfi_), nor BPF programs and ftrace trampolines, which
// come and go. Half the lines are skipped without a copy: the table is
// read at every attach.
func ReadSymbols(r io.Reader) (*Symbols, error) {
	// Sized for a distribution kernel (6.18: 64,000 functions, 1.4 MB
	// of names), so that growing them costs no copies.
	syms := make([]sym, 0, 1<<16)
	buf := make([]byte, 0, 3<<19) // the kept names, back to back
	// The highest function of each module, to end its region.
	modEnd := map[string]uint64{}
	var etext, einittext, lastCore uint64
	lines, zeros := 0, 0
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			lines++
			addr, typ, name, module, perr := parseLine(line)
			if perr != nil {
				return nil, fmt.Errorf("line %d: %w", lines, perr)
			}
			core := len(module) == 0
			switch {
			case addr == 0:
				zeros++
			case core && string(name) == "_etext":
				etext = addr
			case core && string(name) == "_einittext":
				einittext = addr
			}
			// The ends of text are markers, not functions: their
			// address is the first past the text.
			if addr != 0 && isFunction(typ, name, module) && (!core || string(name) != "_etext" && string(name) != "_einittext") {
				syms = append(syms, sym{addr, uint32(len(buf)), uint32(len(name))})
				buf = append(buf, name...)
				if core {
					lastCore = max(lastCore, addr)
				} else if end, ok := modEnd[string(module)]; !ok || addr > end {
					modEnd[string(module)] = addr
				}
			}
		}
		if err == io.EOF {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("line %d is longer than %d bytes", lines+1, br.Size())
		}
		if err != nil {
			return nil, err
		}
	}
	if lines > 0 && zeros == lines {
		return nil, ErrHidden
	}
	if len(syms) == 0 {
		return nil, errors.New("no kernel functions in the symbol table")
	}
	if etext == 0 {
		etext = lastCore + moduleSlack
	}
	syms = append(syms, sym{addr: etext})
	if einittext != 0 {
		syms = append(syms, sym{addr: einittext})
	}
	for _, end := range modEnd {
		syms = append(syms, sym{addr: end + moduleSlack})
	}
	slices.SortStableFunc(syms, func(a, b sym) int { return cmp.Compare(a.addr, b.addr) })
	// Aliases share an address: the first name read stands for all.
	syms = slices.CompactFunc(syms, func(a, b sym) bool { return a.addr == b.addr })
	s := &Symbols{addrs: make([]uint64, len(syms)), ends: make([]uint32, len(syms))}
	var b strings.Builder
	b.Grow(len(buf))
	for i, y := range syms {
		s.addrs[i] = y.addr
		b.Write(buf[y.off : y.off+y.n])
		s.ends[i] = uint32(b.Len())
	}
	s.names = b.String()
	return s, nil
}

// parseLine splits "ADDR TYPE NAME[\t[MODULE]]\n"; name and module alias
// line.
func parseLine(line []byte) (addr uint64, typ byte, name, module []byte, err error) {
	line = bytes.TrimSuffix(line, []byte("\n"))
	if i := bytes.IndexByte(line, '\t'); i >= 0 {
		module = bytes.Trim(line[i+1:], "[]")
		line = line[:i]
	}
	a, rest, ok1 := bytes.Cut(line, []byte(" "))
	t, name, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(t) != 1 || len(name) == 0 || bytes.ContainsAny(name, " \t") {
		return 0, 0, nil, nil, fmt.Errorf("want ADDRESS TYPE NAME, got %q", line)
	}
	if addr, err = parseHex(a); err != nil {
		return 0, 0, nil, nil, err
	}
	return addr, t[0], name, module, nil
}

// parseHex is strconv.ParseUint(s, 16, 64) without the string copy.
func parseHex(s []byte) (uint64, error) {
	if len(s) == 0 || len(s) > 16 {
		return 0, fmt.Errorf("address %q: want 1 to 16 hex digits", s)
	}
	var v uint64
	for _, c := range s {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, fmt.Errorf("address %q: not hex", s)
		}
		v = v<<4 | uint64(d)
	}
	return v, nil
}

func isFunction(typ byte, name, module []byte) bool {
	switch typ {
	case 't', 'T', 'w', 'W':
	default:
		return false
	}
	if bytes.HasPrefix(name, []byte("__pfx_")) || bytes.HasPrefix(name, []byte("__cfi_")) {
		return false
	}
	return string(module) != "bpf" && !bytes.HasPrefix(module, []byte("__builtin__"))
}

// Len is how many functions the table holds.
func (s *Symbols) Len() int {
	n := 0
	for i := range s.addrs {
		if s.name(i) != "" {
			n++
		}
	}
	return n
}

func (s *Symbols) name(i int) string {
	start := uint32(0)
	if i > 0 {
		start = s.ends[i-1]
	}
	return s.names[start:s.ends[i]]
}

// Func returns the function that holds addr, and false when none known
// here does.
func (s *Symbols) Func(addr uint64) (string, bool) {
	if s == nil {
		return "", false
	}
	i, found := slices.BinarySearch(s.addrs, addr)
	if !found {
		i--
	}
	if i < 0 {
		return "", false
	}
	name := s.name(i)
	return name, name != ""
}

// Wait reads a sleeping thread's stack: ips are return addresses,
// innermost first, ending at the first zero. With no symbols (nil) every
// frame is unknown.
func (s *Symbols) Wait(ips []uint64) Wait {
	frames := make([]string, 0, len(ips))
	known := make([]bool, 0, len(ips))
	for _, ip := range ips {
		if ip == 0 {
			break
		}
		// A return address points past its call, which may be the
		// last instruction of the function: look one byte back.
		name, ok := s.Func(ip - 1)
		if !ok {
			name = "0x" + strconv.FormatUint(ip, 16)
		}
		frames = append(frames, name)
		known = append(known, ok)
	}
	w := Wait{Frames: frames}
	w.Class, w.Site = classifyStack(frames, known)
	return w
}
