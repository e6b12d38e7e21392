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
//   - redis-benchmark's throughput against Debian's redis-server, with no
//     tracker, with `stallmon attach` on redis and on another process;
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
