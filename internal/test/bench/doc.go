// Package bench is stallmon's benchmark harness: `make bench` runs it once
// and it prints one table, every figure of which is compared with a
// baseline measured in the same run, and the goals of the performance
// work (issue 12) judged from that table.
//
// What it measures, each against the real thing (no mocks):
//
//   - the cost of a getppid(2) call with no tracker, with empty programs on
//     the same tracepoints (the kernel's floor), with stallmon's tracker on
//     another process (also in tree and cgroup mode) and on the looping
//     process (also with the latency histogram), under `strace -f`, and
//     under a bpftrace script that keeps the same per-thread in-flight map;
//     the cases run interleaved in rounds, so drift hits them alike;
//   - three services from Debian's packages, each in a cgroup of its own
//     and loaded by its own client over loopback (redis-server in memory
//     by redis-benchmark; nginx serving a static file by ab -k; redis with
//     an append-only file fsynced at every write, on tmpfs), with no
//     tracker and with `stallmon attach --cgroup` on the server's cgroup
//     and on another service's: the server's CPU time per request (its
//     cgroup's cpu.stat), which other processes on the CPUs do not
//     inflate as they shrink throughput, and the throughput with server,
//     client and agent pinned to CPUs (Layout); each compared with the
//     spread of no tracker's own rounds, and called "within noise" inside
//     it;
//   - the cost of a poll of `stallmon attach` by the size of its target
//     (threads idle in futex, a few busy, made before or after attach; or
//     asleep in openat of a FIFO, which the table bounds, so that the
//     iterator writes each of them) and by the number of other tasks on
//     the host: time per poll (from the agent's own metrics), the agent's
//     CPU and RSS (from /proc); with a baseline build (make bench
//     BENCH_BASELINE=REF), each case is run with it too and compared;
//   - the cost of one tracker snapshot in this process, with the kernel
//     stacks (wait sites) taken and without (tracker.Options.NoWaitSites),
//     on threads idle in futex and asleep in openat of a FIFO;
//   - detection latency: a read(2) of a FUSE file that hangs for real under
//     `stallmon attach --budget B`, from the hang to the stall event and to
//     the last ALIVE heartbeat a receiver saw.
//
// Every tracker-dependent row is run once per entry of Trackers.
//
// The harness is a test binary, so that it can use the test helpers that
// hang syscalls and run stallmon as a user does
// (internal/testutil/fusehang, internal/testutil/harness); the figures and
// their rendering live in this package's non-test files. TestBenchmarks is
// the full run (STALLMON_BENCH=1, set by `make bench`); TestBenchmarksSmoke
// runs every row with tiny counts as part of `make test` and checks the
// table is well formed.
package bench
