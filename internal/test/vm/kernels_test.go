package vm

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stallmon/stallmon/internal/testutil/ctarget"
	"github.com/stallmon/stallmon/internal/testutil/repo"

	"github.com/stallmon/stallmon/internal/testutil/privtest"
)

const (
	defaultPkgs      = "./internal/tracker/ ./internal/listenq/ ./heartbeat/ ./peer/ ./internal/test/vm/guest/"
	defaultVMTimeout = 15 * time.Minute
	// guestTestTimeout is each guest test binary's -test.timeout: a hung
	// test then dumps its goroutines instead of running into the VM limit.
	guestTestTimeout = "12m"
)

// TestKernels boots each selected Debian kernel with stallmon's test
// binaries as the initramfs and fails with every test that failed inside.
func TestKernels(t *testing.T) {
	if os.Getenv(VMTestEnv) != "1" {
		t.Skipf("downloads kernels and boots VMs for minutes: run `make vmtest` (or set %s=1)", VMTestEnv)
	}
	privtest.Require(t)
	ctx := t.Context()
	sw := newStopwatch(t)
	cache := cacheDir(t)
	timeout := envDuration(t, "VMTEST_TIMEOUT", defaultVMTimeout)
	sources := selectSources(t)

	tools := map[string]string{}
	for _, src := range sources {
		tools[src.guestArch().qemu] = src.guestArch().pkg
	}
	if err := ensureInstalled(ctx, tools); err != nil {
		t.Fatalf("installing QEMU: %v", err)
	}
	sw.lap("host tools")

	kvm := kvmUsable()
	t.Logf("accelerator: %s", map[bool]string{true: "kvm", false: "tcg (no vmx/svm in /proc/cpuinfo)"}[kvm])
	// Everything a boot needs is made first, one lane after the other
	// (they share the cache and the CPUs); then the lanes boot side by
	// side, each its boots in turn.
	guests := map[*guestArch]initramfs{}
	lanes := make([]*lane, len(sources))
	for i, src := range sources {
		lanes[i] = prepareLane(t, src, guests, cache, len(sources) == 1)
		sw.lap("prepare " + src.name)
	}
	// The full suites' lanes are the longest: first, so that the short
	// subsets fill in beside them.
	order := slices.Clone(lanes)
	slices.SortStableFunc(order, func(a, b *lane) int {
		return cmp.Compare(boolInt(a.src.subset != nil), boolInt(b.src.subset != nil))
	})
	queue := make(chan *lane, len(order))
	for _, l := range order {
		queue <- l
	}
	close(queue)
	n := parallelLanes(t, kvm)
	t.Logf("booting %d lanes, %d at a time", len(lanes), n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for l := range queue {
				l.boot(t, cache, timeout, kvm)
			}
		})
	}
	wg.Wait()
	var summary []string
	for _, l := range lanes {
		summary = append(summary, l.rows...)
		summary = append(summary, fmt.Sprintf("      %s: %.1fs in all (prepare %.1fs, boots %.1fs)",
			l.src.name, (l.prep+l.boots).Seconds(), l.prep.Seconds(), l.boots.Seconds()))
	}
	t.Logf("summary, %.1fs in all:\n%s", sw.total().Seconds(), strings.Join(summary, "\n"))
}

// lane is one kernel line: what its boots need, then their summary rows.
type lane struct {
	src         kernelSource
	k           *kernel
	ir          initramfs
	err         error // why the lane cannot boot
	rows        []string
	prep, boots time.Duration
}

// prepareLane builds and downloads what src's boots need: the guest of its
// architecture (once, in guests), its kernel and modules, faultmod.
//
// A lane booted alone runs what its subset skips to keep make vmtest's
// time (the subset's skip).
func prepareLane(t *testing.T, src kernelSource, guests map[*guestArch]initramfs, cache string, alone bool) *lane {
	t.Helper()
	start := time.Now()
	l := &lane{src: src}
	defer func() { l.prep = time.Since(start) }()
	ir, ok := guests[src.guestArch()]
	if !ok {
		if ir, l.err = buildGuest(t, src, cache); l.err != nil {
			return l
		}
		guests[src.guestArch()] = ir
	}
	ctx := t.Context()
	if l.k, l.err = resolveKernel(ctx, src, cache); l.err != nil {
		return l
	}
	if sub := src.subset; alone && sub != nil && sub.skip != "" {
		all := *sub
		all.skip = ""
		l.k.source.subset = &all
	}
	if ir.modules, l.err = extractModules(ctx, l.k, cache); l.err != nil {
		return l
	}
	if sub := src.subset; sub != nil && sub.noFaultmod != "" {
		t.Logf("%s builds no faultmod.ko: %s", src.name, sub.noFaultmod)
	} else if ko, err := buildFaultmod(ctx, l.k, cache); err != nil {
		// The stallmon suites do not need it: boot anyway, and let the
		// guest's faultmod tests fail for want of the device.
		t.Errorf("%s: %v", src.name, err)
	} else {
		ir.modules = append(ir.modules, ko)
	}
	l.ir = ir
	return l
}

// boot runs the lane's boots in a subtest named after its kernel.
func (l *lane) boot(t *testing.T, cache string, timeout time.Duration, kvm bool) {
	start := time.Now()
	defer func() { l.boots = time.Since(start) }()
	if l.err != nil {
		t.Run(l.src.name, func(t *testing.T) { t.Fatal(l.err) })
		l.rows = []string{fmt.Sprintf("%-42s FAIL  %v", l.src.name, l.err)}
		return
	}
	t.Run(l.k.version, func(t *testing.T) {
		l.rows = bootKernel(t, l.k, l.ir, cache, timeout, kvm)
	})
	if len(l.rows) == 0 {
		l.rows = []string{fmt.Sprintf("%-42s %-15s FAIL  before any boot (see above)", l.k.version+" ("+l.src.name+")", "")}
	}
}

// parallelLanes is how many lanes boot at once (VMTEST_PARALLEL, default
// as many as the host has CPUs for): a TCG guest runs on one host thread
// (thread=single), a KVM guest on one per vCPU.
func parallelLanes(t *testing.T, kvm bool) int {
	t.Helper()
	if s := os.Getenv("VMTEST_PARALLEL"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("VMTEST_PARALLEL=%q: want a number of lanes, 1 or more", s)
		}
		return n
	}
	n := runtime.NumCPU()
	if kvm {
		n /= guestCPUs
	}
	return max(n, 1)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// buildGuest builds what the guests of src's architecture need besides
// their kernel: for amd64 every test binary of VMTEST_PKGS and the 32-bit
// and C programs they run, for a subset lane only its packages' binaries.
func buildGuest(t *testing.T, src kernelSource, cache string) (initramfs, error) {
	t.Helper()
	sw := newStopwatch(t)
	a := src.guestArch()
	bin := filepath.Join(cache, "build", "bin-"+a.debian)
	var ir initramfs
	// An amd64 lane, a subset or not, gets the whole guest: booted
	// alone (VMTEST_KERNELS=bullseye-security) its 32-bit and C-program
	// tests then run, as they do beside the bookworm lane.
	if src.subset != nil && a != amd64 {
		ir.tests, ir.stallmon = buildGuestBinaries(t, bin, a, src.subset.pkgs)
		sw.lap(a.debian + " guest test binaries and stallmon")
	} else {
		ir.tests, ir.stallmon = buildGuestBinaries(t, bin, a, strings.Fields(cmp.Or(os.Getenv("VMTEST_PKGS"), defaultPkgs)))
		ir.ia32wait = buildWaiter(t, bin, "ia32wait", "-m32")
		ir.x32wait = buildWaiter(t, bin, "x32wait", "-mx32")
		ir.ctargets = buildCTargets(t, filepath.Join(cache, "build", "ctargets"))
		sw.lap("guest test binaries, stallmon, ia32wait, x32wait and the C targets")
	}
	var err error
	ir.busybox, err = fetchBusybox(t.Context(), a, cache)
	sw.lap(a.debian + " busybox")
	return ir, err
}

// summaryLine is one boot's row in TestKernels' closing summary; r is nil
// if the kernel never booted.
func summaryLine(k *kernel, boot string, passed bool, r *vmResult) string {
	line := fmt.Sprintf("%-42s %-15s %s", k.version+" ("+k.source.name+")", boot, map[bool]string{true: "PASS", false: "FAIL"}[passed])
	if r == nil {
		return line + "  did not boot"
	}
	return line + fmt.Sprintf("  qemu=%-3d boot=%5.1fs run=%6.1fs  %s", r.qemuExit, r.boot.Seconds(), r.run.Seconds(), r.verdict())
}

// bootKernel boots k once with every suite (a lane's subset), then once
// per scenario boot, and returns its rows of the summary (with the scenarios'
// RESULT lines).
func bootKernel(t *testing.T, k *kernel, ir initramfs, cache string, timeout time.Duration, kvm bool) []string {
	var rows []string
	report := func(boot string, passed bool, r *vmResult) {
		rows = append(rows, summaryLine(k, boot, passed, r))
		if r != nil {
			for _, l := range r.results() {
				rows = append(rows, "      "+l)
			}
		}
	}
	guestTests := slices.DeleteFunc(slices.Clone(ir.tests), func(b guestBinary) bool { return b.name != "guest" })

	boot, run, scenarios := "suites", "", scenarioBoots
	if sub := k.source.subset; sub != nil {
		t.Logf("%s runs a subset: %s", k.source.name, sub.why)
		boot, run, scenarios = "subset", sub.run, sub.scenarios
	}
	var r *vmResult
	passed := t.Run(boot, func(t *testing.T) { r = bootSuites(t, k, ir, boot, run, cache, timeout, kvm) })
	report(boot, passed, r)
	if os.Getenv("VMTEST_RUN") != "" {
		return rows // a developer's focused run: no scenario boots
	}
	// With the modules: the scenarios drive faultmod, and softdog.
	guestOnly := ir
	guestOnly.tests = guestTests
	if len(guestOnly.tests) == 0 {
		t.Fatal("VMTEST_PKGS has no ./internal/test/vm/guest/: the scenario boots need it")
	}
	for _, sc := range scenarios {
		var r *vmResult
		passed := t.Run(sc.name, func(t *testing.T) { r = bootScenario(t, k, sc, guestOnly, cache, timeout, kvm) })
		report(sc.name, passed, r)
	}
	return rows
}

// bootWith writes the initramfs and boots k with it.
func bootWith(t *testing.T, k *kernel, ir initramfs, name string, cmdline []string, cache string, timeout time.Duration, kvm bool) *vmResult {
	t.Helper()
	sw := newStopwatch(t)
	initrd := filepath.Join(cache, "build", "initramfs-"+k.version+"-"+name+".cpio.gz")
	if err := ir.write(initrd); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(initrd); err == nil {
		sw.lap(fmt.Sprintf("initramfs (%.1f MiB)", float64(st.Size())/(1<<20)))
	}
	v := vm{
		arch:    k.source.guestArch(),
		kernel:  k.vmlinuz,
		initrd:  initrd,
		cmdline: append([]string{"vmtest_timeout=" + guestTestTimeout}, cmdline...),
		log:     filepath.Join(cache, "logs", k.version+"-"+name+".log"),
		timeout: timeout,
		kvm:     kvm,
	}
	v.cmdline = append(v.cmdline, strings.Fields(os.Getenv("VMTEST_CMDLINE"))...)
	if err := os.MkdirAll(filepath.Dir(v.log), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := v.boot(t.Context())
	sw.lap("boot and guest tests")
	if err != nil {
		t.Fatalf("%v (console log %s)", err, v.log)
	}
	t.Logf("%s: guest kernel %s, boot %.1fs, run %.1fs, qemu exit %d, guest status %d; console log %s",
		r.verdict(), r.kernel, r.boot.Seconds(), r.run.Seconds(), r.qemuExit, r.status, v.log)
	return r
}

// bootSuites boots k (the boot called name) with the test binaries of ir,
// run with the -test.run pattern run (VMTEST_RUN overrides it; none runs
// every test), and reports one subtest per binary.
func bootSuites(t *testing.T, k *kernel, ir initramfs, name, run string, cache string, timeout time.Duration, kvm bool) *vmResult {
	var cmdline []string
	if run := cmp.Or(os.Getenv("VMTEST_RUN"), run); run != "" {
		cmdline = append(cmdline, "vmtest_run="+run)
	}
	if sub := k.source.subset; sub != nil && sub.skip != "" && os.Getenv("VMTEST_RUN") == "" {
		cmdline = append(cmdline, "vmtest_skip="+sub.skip)
	}
	r := bootWith(t, k, ir, name, cmdline, cache, timeout, kvm)
	for _, b := range ir.tests {
		t.Run(b.name, func(t *testing.T) {
			i := slices.IndexFunc(r.packages, func(p *packageRun) bool { return p.name == b.name })
			if i < 0 {
				t.Fatalf("the guest never ran %s", b.name)
			}
			p := r.packages[i]
			t.Logf("rc=%d in %.1fs", p.rc, p.duration.Seconds())
			if p.rc != 0 {
				t.Errorf("%s.test failed in the guest (rc=%d); last lines:\n%s", b.name, p.rc, tail(p.output, 80))
			}
		})
	}
	if !r.ok() {
		t.Errorf("%s; console tail:\n%s", r.verdict(), tail(r.lines, 60))
	}
	return r
}

// buildGuestBinaries compiles the test binaries of pkgs and the stallmon
// command for the architecture a, static so that they run on the
// initramfs' bare root.
func buildGuestBinaries(t *testing.T, dir string, a *guestArch, pkgs []string) (tests []guestBinary, stallmon string) {
	t.Helper()
	root := repo.Root(t)
	env := append(os.Environ(), "CGO_ENABLED=0", "GOARCH="+a.goarch)
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	list := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}} {{.Dir}}"}, pkgs...)...)
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", pkgs, err)
	}
	build := exec.Command("go", append([]string{"test", "-c", "-o", dir + "/"}, pkgs...)...)
	build.Dir = root
	build.Env = env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c %v: %v\n%s", pkgs, err, out)
	}
	stallmon = filepath.Join(dir, "stallmon")
	build = exec.Command("go", "build", "-o", stallmon, "./cmd/stallmon")
	build.Dir = root
	build.Env = env
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/stallmon: %v\n%s", err, out)
	}
	var bins []guestBinary
	for line := range strings.Lines(string(out)) {
		importPath, pkgDir, _ := strings.Cut(strings.TrimSpace(line), " ")
		name := path.Base(importPath)
		b := guestBinary{name: name, path: filepath.Join(dir, name+".test"), pkgDir: pkgDir}
		if _, err := os.Stat(b.path); err != nil {
			t.Fatalf("no test binary for %s (a package without tests?): %v", importPath, err)
		}
		bins = append(bins, b)
	}
	// /init runs /tests/*/ in glob order; keep the same order here.
	slices.SortFunc(bins, func(a, b guestBinary) int { return strings.Compare(a.name, b.name) })
	return bins, stallmon
}

// buildWaiter compiles internal/testutil/ctarget's ia32wait.c for a 32-bit ABI
// (-m32 for ia32, -mx32 for x32), static, with gcc-multilib (which make
// deps-test installs), for the guest's 32-bit tests (guest/ia32_test.go).
func buildWaiter(t *testing.T, dir, name, abiFlag string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	cc := exec.Command("gcc", abiFlag, "-static", "-O2", "-Wall", "-Werror", "-pthread",
		"-o", out, repo.Path(t, "internal/testutil/ctarget/csrc/ia32wait.c"))
	if b, err := cc.CombinedOutput(); err != nil {
		t.Fatalf("building %s (needs gcc-multilib): %v\n%s", name, err, b)
	}
	return out
}

// buildCTargets builds the C targets the guests' tests ask for
// (ctarget.InVMs) into dir.
func buildCTargets(t *testing.T, dir string) []string {
	t.Helper()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ctarget.InVMs {
		path, err := ctarget.Prebuild(dir, p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, path)
	}
	return out
}

// fetchBusybox returns the static busybox of the system's Debian release
// (hostSuite's for another architecture than amd64).
func fetchBusybox(ctx context.Context, a *guestArch, cache string) (string, error) {
	repo := systemRepo
	if a != amd64 {
		var err error
		if repo, err = archRepo(ctx, "busybox-static:"+a.debian, hostSuite, hostSuite, a, cache); err != nil {
			return "", err
		}
		if err := repo.ensureLists(ctx); err != nil {
			return "", err
		}
	}
	deb, err := repo.download(ctx, "busybox-static", filepath.Join(cache, "debs"))
	if err != nil {
		return "", err
	}
	root := filepath.Join(cache, "busybox", strings.TrimSuffix(filepath.Base(deb), ".deb"))
	if err := extractMember(ctx, deb, root, "./bin/busybox"); err != nil {
		return "", err
	}
	return filepath.Join(root, "bin", "busybox"), nil
}

// selectSources picks VMTEST_KERNELS out of kernelSources.
func selectSources(t *testing.T) []kernelSource {
	t.Helper()
	var out []kernelSource
	for _, name := range strings.Split(cmp.Or(os.Getenv("VMTEST_KERNELS"), defaultKernels), ",") {
		i := slices.IndexFunc(kernelSources, func(s kernelSource) bool { return s.name == strings.TrimSpace(name) })
		if i < 0 {
			t.Fatalf("VMTEST_KERNELS: unknown kernel line %q", name)
		}
		out = append(out, kernelSources[i])
	}
	return out
}

func cacheDir(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(cmp.Or(os.Getenv("VMTEST_CACHE"), ".cache"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}

// stopwatch logs how long each step of a test took.
type stopwatch struct {
	t           *testing.T
	start, last time.Time
}

func newStopwatch(t *testing.T) *stopwatch {
	now := time.Now()
	return &stopwatch{t: t, start: now, last: now}
}

func (s *stopwatch) lap(step string) {
	s.t.Helper()
	s.t.Logf("%-40s %6.1fs", step, time.Since(s.last).Seconds())
	s.last = time.Now()
}

// skip starts the next lap now, leaving out what came since the last.
func (s *stopwatch) skip() { s.last = time.Now() }

func (s *stopwatch) total() time.Duration { return time.Since(s.start) }
