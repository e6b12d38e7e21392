package workload

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// EnvVar names the variable, set to 1, under which a re-executed binary
// should run Main instead of its usual work.
const EnvVar = "STALLMON_WORKLOAD"

// command runs one protocol command and returns the key, value pairs of its
// ok reply.
type command struct {
	usage string // arguments, for the err reply
	nargs []int  // accepted argument counts
	run   func(w *workload, args []string) ([]any, error)
}

var commands = map[string]command{
	"uffd-hang":          {"", []int{0}, (*workload).uffdHang},
	"uffd-release":       {"", []int{0}, (*workload).uffdRelease},
	"pipe-wait":          {"", []int{0}, func(w *workload, _ []string) ([]any, error) { return w.pipeWait("pipe", false) }},
	"pipe-release":       {"", []int{0}, func(w *workload, _ []string) ([]any, error) { return w.pipeRelease("pipe") }},
	"spawn-wait":         {"", []int{0}, func(w *workload, _ []string) ([]any, error) { return w.pipeWait("spawn", true) }},
	"spawn-release":      {"", []int{0}, func(w *workload, _ []string) ([]any, error) { return w.pipeRelease("spawn") }},
	"busy":               {"", []int{0}, (*workload).busyStart},
	"busy-stop":          {"", []int{0}, (*workload).busyStop},
	"churn":              {"ROUNDS THREADS", []int{2}, (*workload).churn},
	"fsync-loop":         {"[DIR]", []int{0, 1}, (*workload).fsyncStart},
	"fsync-stop":         {"", []int{0}, (*workload).fsyncStop},
	"close-linger":       {"ADDR SECONDS [dup2]", []int{2, 3}, (*workload).closeLinger},
	"close-file":         {"PATH", []int{1}, (*workload).closeFile},
	"close-wait":         {"", []int{0}, (*workload).closeWait},
	"read-file":          {"PATH", []int{1}, (*workload).readFile},
	"sendfile":           {"PATH", []int{1}, (*workload).sendfile},
	"mmap-file":          {"PATH", []int{1}, (*workload).mmapFile},
	"uring-idle":         {"", []int{0}, (*workload).uringIdle},
	"uring-stop":         {"", []int{0}, (*workload).uringStop},
	"uring-read":         {"PATH [STATE]", []int{1, 2}, (*workload).uringRead},
	"compute":            {"", []int{0}, (*workload).computeStart},
	"compute-stop":       {"", []int{0}, (*workload).computeStop},
	"tids":               {"", []int{0}, (*workload).tids},
	"alloc":              {"MIB", []int{1}, (*workload).alloc},
	"sleepers":           {"N", []int{1}, (*workload).sleepers},
	"touch-uffd":         {"[PAGES]", []int{0, 1}, (*workload).touchUffd},
	"touch-uffd-next":    {"", []int{0}, (*workload).touchUffdNext},
	"touch-uffd-release": {"", []int{0}, (*workload).touchUffdRelease},
	"touch-file":         {"PATH", []int{1}, (*workload).touchFile},
	"sendfile-stalled":   {"tcp|unix PATH", []int{2}, (*workload).sendfileStalled},
	"sendfile-drain":     {"", []int{0}, (*workload).sendfileDrain},
	"heartbeat":          {"ADDR INTERVAL", []int{2}, (*workload).heartbeatStart},
	"heartbeat-stop":     {"", []int{0}, (*workload).heartbeatStop},
	"epoll-server":       {"", []int{0}, (*workload).epollServerStart},
	"epoll-lose":         {"", []int{0}, (*workload).epollLose},
	"pool-server":        {"WORKERS", []int{1}, (*workload).poolServerStart},
	"pool-deadlock":      {"", []int{0}, (*workload).poolDeadlock},
	"proxy-server":       {"UPSTREAM", []int{1}, (*workload).proxyServerStart},
	"slow-server":        {"MS", []int{1}, (*workload).slowServerStart},
	"server-counts":      {"", []int{0}, (*workload).serverCounts},
	"exit":               {"CODE", []int{1}, (*workload).exit},
}

// workload is the state that lives between commands: the threads that are
// still waiting or working.
type workload struct {
	out    io.Writer
	outErr error
	uffd   *uffdHang
	// uffdTouch and fileTouch are touch-uffd's and touch-file's.
	uffdTouch *uffdHang
	fileTouch *fileToucher
	waiters   map[string]*pipeWaiter
	busy      *busyLoop
	fsync     *fsyncLoop
	reader    *fileReader
	sender    *fileSender
	idle      *uringIdle
	ureader   *uringReader
	compute   *computeLoop
	closer    *closer
	mapper    *fileMapper
	stalled   *stalledSender
	heartbeat *heartbeatLoop
	epoll     *epollServer // epoll-server's
	pool      *poolServer  // pool-server's
	proxy     *proxyServer // proxy-server's
	slow      *slowServer  // slow-server's
	held      [][]byte     // alloc's memory, kept until exit
	// sleeperPipes are the pipes sleepers' threads wait on, kept open
	// until exit.
	sleeperPipes [][2]int
}

// Main runs the command protocol on in and out and returns the exit status:
// 0 at EOF, 1 if in or out fail.
func Main(in io.Reader, out io.Writer) int {
	// Keep the command loop's thread to itself, so that no worker can lock
	// it and end it on return.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	w := &workload{out: out, waiters: map[string]*pipeWaiter{}}
	w.println(formatLine("ready", "pid", os.Getpid()))
	sc := bufio.NewScanner(in)
	for w.outErr == nil && sc.Scan() {
		if args := strings.Fields(sc.Text()); len(args) > 0 {
			w.handle(args)
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "workload: reading commands: %v\n", err)
		return 1
	}
	if w.outErr != nil {
		fmt.Fprintf(os.Stderr, "workload: writing replies: %v\n", w.outErr)
		return 1
	}
	return 0
}

func (w *workload) handle(args []string) {
	name := args[0]
	c, ok := commands[name]
	if !ok {
		w.println(fmt.Sprintf("err unknown command %q", name))
		return
	}
	if !slices.Contains(c.nargs, len(args)-1) {
		w.println(fmt.Sprintf("err usage: %s %s", name, c.usage))
		return
	}
	pairs, err := c.run(w, args[1:])
	if err != nil {
		// One reply is one line, whatever the error text holds.
		w.println("err " + name + ": " + strings.ReplaceAll(err.Error(), "\n", " "))
		return
	}
	w.println(formatLine("ok", pairs...))
}

// progress writes a line that precedes the ok reply of a long command.
func (w *workload) progress(word string, pairs ...any) {
	w.println(formatLine(word, pairs...))
}

func (w *workload) println(s string) {
	if w.outErr != nil {
		return
	}
	if _, err := io.WriteString(w.out, s+"\n"); err != nil {
		w.outErr = err
	}
}

func (w *workload) tids([]string) ([]any, error) {
	tids, err := listTasks()
	if err != nil {
		return nil, err
	}
	return []any{"tids", joinInts(tids)}, nil
}

// exit skips every cleanup on purpose: a parent uses it to see how stallmon
// copes with a process that vanishes with threads still stuck.
func (w *workload) exit(args []string) ([]any, error) {
	code, err := strconv.Atoi(args[0])
	if err != nil || code < 0 || code > 255 {
		return nil, fmt.Errorf("exit code %q is not in 0..255", args[0])
	}
	os.Exit(code)
	return nil, nil
}
