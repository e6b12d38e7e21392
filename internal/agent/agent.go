// Package agent runs stallmon's poll loop: it takes snapshots from the
// tracker, judges each in-flight syscall against its budget, gates the
// heartbeat on the verdict, and fences a target whose syscall never returns.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stallmon/stallmon/internal/budget"
	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/nodefence"
	"github.com/stallmon/stallmon/internal/sink"
	"github.com/stallmon/stallmon/internal/tracker"
)

// Config configures an Agent.
type Config struct {
	PollInterval time.Duration
	Table        *budget.Table
	// Kill enables fencing: SIGKILL through the pidfd at kill_after.
	Kill bool
	// KillGrace is how long to wait for the killed target to exit before
	// reporting it unkillable.
	KillGrace time.Duration
	// Heartbeat is nil when no heartbeat is sent.
	Heartbeat *HeartbeatConfig
	// Integrations is the hub of the sinks told of every verdict besides
	// the heartbeat (keepalived, Pacemaker, ...), nil for none. Its owner
	// keeps it for as long as its sinks live: under stallmon run, across
	// every run of the service, so that a verdict one run could not get
	// through is still retried after it, and no sink is ever applied from
	// two hubs at once. The agent only publishes into it.
	Integrations *sink.Hub
	// LateReturn: what a stall that ends after it was declared leads to.
	// The zero value fences.
	LateReturn LateReturn
	// NodeFence, when set, takes the node down if the killed target does
	// not die within KillGrace. It is fed at every poll.
	NodeFence nodefence.Fencer
	// Egress, when set, holds the service's own packets to its
	// heartbeat destinations back unless the agent vouches for it.
	Egress EgressGate
	// Listeners, when set, reads the target's listening sockets for the
	// table's work_waiting rule; it is not read while the rule is off.
	Listeners ListenerSource
	Logger    *slog.Logger
}

// errEmptySnapshot is a poll that saw no thread of a target still alive.
var errEmptySnapshot = errors.New("the snapshot holds no thread of the target, which has not exited")

// Outcome is how Run ended.
type Outcome int

const (
	Detached         Outcome = iota // ctx was cancelled
	TargetExited                    // the target exited on its own
	TargetKilled                    // stallmon killed the target
	TargetUnkillable                // killed, but it outlived the grace period first
)

// Agent watches one attached process.
type Agent struct {
	cfg     Config
	log     *slog.Logger
	mon     *tracker.Tracker
	kill    func(unix.Signal) error // mon.Kill; tests make it fail
	judge   *judge
	stalls  *stallSet
	gate    *gate
	beacon  *beacon // nil without a heartbeat
	pub     *publisher
	hubMu   sync.Mutex
	hub     *sink.Hub   // the current run's, for Stats
	threads map[int]int // tid -> pid, at the latest poll
	lastAt  time.Time
	late    bool
	failing int // consecutive failed polls
	// tampered is set once a poll found the tracker's links changed.
	tampered bool
	// declared is the stall the gate first closed on, under the fence
	// policy; lateLogged once its return was logged.
	declared   *judged
	lateLogged bool
	deaths     deathWatch
	queues     queueWatch
	unknown    unknownWatch
	stats      *statsRecorder
	// abandoned is set by Abandon: the run ends without a last word.
	abandoned atomic.Bool
	// left is set when the stop ended on LEAVING (a last poll found the
	// target healthy), gone when the target exited or was killed: the
	// only ends after which the egress gate may be released.
	left, gone atomic.Bool
}

// New returns an agent for an attached tracker. It does not own mon.
func New(mon *tracker.Tracker, cfg Config) (*Agent, error) {
	if cfg.PollInterval <= 0 {
		return nil, fmt.Errorf("poll interval must be positive, got %v", cfg.PollInterval)
	}
	if cfg.Table == nil {
		return nil, errors.New("no budget table")
	}
	if cfg.Kill && cfg.KillGrace <= 0 {
		return nil, fmt.Errorf("kill grace must be positive, got %v", cfg.KillGrace)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Agent{
		cfg:    cfg,
		log:    cfg.Logger,
		mon:    mon,
		kill:   mon.Kill,
		judge:  newJudge(cfg.Table),
		stalls: newStallSet(),
		// One missed poll is jitter; two means we cannot vouch any more.
		gate:  newGate(2 * cfg.PollInterval),
		stats: newStatsRecorder(cfg.PollInterval),
	}
	if hb := cfg.Heartbeat; hb != nil {
		if hb.Interval <= 0 || hb.Sender == nil || hb.NodeID == "" {
			return nil, errors.New("heartbeat needs a positive interval, a sender and a node id")
		}
		if hb.Repeats <= 0 {
			hb.Repeats = 3
		}
		a.beacon = newBeacon(*hb, cfg.Logger, a.stats)
	}
	interval := defaultPublishInterval
	if hb := cfg.Heartbeat; hb != nil {
		interval = hb.Interval
	}
	a.pub = &publisher{gate: a.gate, interval: interval, kick: make(chan struct{}, 1),
		deadline: a.takeoverDeadline, pid: mon.PID}
	return a, nil
}

// Run polls until ctx is done or the target is gone.
func (a *Agent) Run(ctx context.Context) (Outcome, error) {
	// The heartbeat is this agent's own: its incarnation ends with the run.
	var own *sink.Hub
	if a.beacon != nil {
		own = sink.Start([]sink.Sink{a.beacon}, sink.Options{Logger: a.log})
		// The final verdict (FENCED, LEAVING) is published before this runs.
		defer own.Stop(sink.FlushTimeout)
	}
	a.hubMu.Lock()
	a.hub = own
	a.pub.hubs = nil
	for _, h := range []*sink.Hub{own, a.cfg.Integrations} {
		if h != nil {
			a.pub.hubs = append(a.pub.hubs, h)
		}
	}
	a.hubMu.Unlock()

	bctx, stopPublisher := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// The first poll runs before the publisher starts, so the first
	// verdict already speaks from a judged snapshot.
	a.feed()
	a.poll(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); a.pub.run(bctx) }()
	halt := func() {
		stopPublisher()
		wg.Wait()
	}
	defer halt()

	tick := time.NewTicker(a.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			halt()
			out, err := a.stop()
			if !a.left.Load() {
				// The stop did not vouch (stalled, blind, fenced): the
				// service's own heartbeat goes silent at once.
				st, _ := a.gate.state(time.Now())
				reason := st.String()
				if st == gateAlive {
					// Still trusting an earlier poll: the stop's last
					// look failed, or the run was abandoned.
					reason = "blind"
					if a.abandoned.Load() {
						reason = "abandoned"
					}
				}
				a.shutEgress(reason)
			}
			// After LEAVING the gate is left open on the stop's last
			// poll, its deadline running out two intervals later as
			// after a SIGKILL: a stallmon restarted meanwhile takes the
			// deadline over and vouches on, so a clean restart never
			// silences a healthy service long enough for a peer to
			// take over.
			return out, err
		case <-a.mon.Done():
			a.gate.fence()
			a.shutEgress("fenced")
			halt()
			a.targetExited()
			a.final(sink.Fenced, nil)
			return TargetExited, nil
		case <-tick.C:
			a.feed()
			if victim := a.poll(ctx); victim != nil {
				// The publisher stops before the gate says fenced: a
				// fenced verdict of its own must not go out ahead of the
				// stall announced here.
				halt()
				a.gate.fence()
				a.shutEgress("fenced")
				a.announceStall(victim)
				return a.fenceTarget(ctx, *victim, Detached)
			}
		}
	}
}

// poll takes and judges one snapshot. It returns the syscall that went
// past kill_after when the target must be fenced.
func (a *Agent) poll(ctx context.Context) *judged {
	now := time.Now()
	// A late poll means the agent itself was stalled or starved: the gate
	// closes on its own (stale), and the kill waits for an on-time poll so
	// that our lateness is never blamed on the target.
	var gap time.Duration // since the previous poll; 0 for the first
	if !a.lastAt.IsZero() {
		gap = now.Sub(a.lastAt)
	}
	onTime := gap <= 2*a.cfg.PollInterval
	if !onTime && !a.late {
		a.log.Warn(event.AgentLate, "gap_seconds", gap.Seconds())
	}
	a.late = !onTime
	a.lastAt = now
	timing := pollTiming{start: now, gap: gap, late: !onTime}

	snap, err := a.mon.Snapshot()
	var waiting []judged
	if err == nil {
		// A listener scan that fails leaves the poll unable to vouch.
		waiting, err = a.scanListeners(snap)
	}
	// After the snapshot, so that it vouches for the program that wrote
	// it: a link changed before or while the iterator ran is caught now.
	if verr := a.mon.VerifyLinks(); verr != nil {
		err = verr
	}
	if err == nil && snap.Seen() == 0 {
		// A live target has at least one thread: a snapshot without any
		// (a tracker no longer seeing it) vouches for nothing.
		select {
		case <-a.mon.Done():
			// Gone: Run hears it next.
		default:
			err = errEmptySnapshot
		}
	}
	if err != nil {
		// Fail closed: no fresh poll, so the gate goes blind by itself.
		// Logged once per failure run, not at every poll.
		var te *tracker.TamperError
		switch {
		case errors.As(err, &te):
			a.trackerTampered(te)
		case a.failing == 0:
			a.log.Error(event.PollFailed, "err", err)
		}
		a.failing++
		a.stats.pollFailed(timing)
		a.egressAfterFailedPoll(now)
		return nil
	}
	if a.failing > 0 {
		a.log.Info(event.PollRecovered, "failed_polls", a.failing)
		a.failing = 0
	}
	a.trackThreads(snap)
	unknown := a.noteUnknown(snap)
	for _, j := range a.deaths.update(snap) {
		a.event(slog.LevelError, event.DiedInSyscall, judgedAttrs(j)...)
	}
	over := append(a.deaths.over(snap.Taken), a.judge.over(snap)...)
	over = append(over, waiting...)
	// Events first, then the gate: the beacon logs heartbeat_stopped and
	// heartbeat_resumed when it hears the gate, so they always follow the
	// stall or stall_cleared that caused them. The log is written off this
	// loop (asynclog), so this costs a queue append, not a write.
	started, cleared := a.stalls.update(over)
	for _, j := range started {
		a.event(slog.LevelWarn, event.Stall, judgedAttrs(j)...)
	}
	for _, j := range cleared {
		attrs := judgedAttrs(j)
		// It returned between this poll and the last one that saw it: it
		// lasted at least the elapsed time seen then.
		attrs = append(attrs, slog.Float64("duration_seconds", j.span.Seconds()))
		a.event(slog.LevelInfo, event.StallCleared, attrs...)
	}
	gated, late := a.declaredDead(over)
	a.gate.polledUnknown(now, gated, unknown)
	a.egressAfterPoll(now)
	a.stats.polled(timing, snap, over)
	a.stats.listeners(a.queues.latest)
	if len(started) > 0 || len(cleared) > 0 {
		a.pub.poke()
	}
	if !a.cfg.Kill || !onTime {
		return nil
	}
	if late != nil {
		return late
	}
	for i := range over {
		if over[i].overKill() {
			return &over[i]
		}
	}
	return nil
}

// feed tells the node fencer that stallmon is still working.
func (a *Agent) feed() {
	if a.cfg.NodeFence == nil {
		return
	}
	if err := a.cfg.NodeFence.Feed(); err != nil {
		a.log.Error(event.NodeFenceFeedFailed, "method", a.cfg.NodeFence.String(), "err", err)
	}
}

// takeoverDeadline is the promise carried by each packet: the time by
// which, if nothing more is heard, the target will have been killed. With
// no kill configured there is no promise, and none on ALIVE (j nil): a
// healthy target whose heartbeat is lost (a cut link, a dropped route) is
// never killed, so no time after which it is surely dead exists. Only a
// declared stall whose rule kills is fenced whatever the network does.
func (a *Agent) takeoverDeadline(now time.Time, j *judged) time.Time {
	if !a.cfg.Kill || j == nil {
		return time.Time{}
	}
	slack := 2*a.cfg.PollInterval + a.cfg.KillGrace
	if j.death != nil {
		return now.Add(slack)
	}
	if j.rule.Kills() {
		return now.Add(j.rule.KillAfter - j.span + slack)
	}
	// A stall whose rule never kills (a stopped or frozen target,
	// kill_after: never): nothing will make it dead by any time, so
	// nothing is promised. Another thread could still go past its
	// kill_after later, but no deadline can be given for that.
	return time.Time{}
}

// announceStall publishes the stall that the publisher, now stopped, had
// no time to: a stall past kill_after at the poll that first sees it
// (a thread that died in the kernel, a budget equal to kill_after) is
// fenced at once, and peers must still hear STALLED at once, not only
// FENCED once the kill is confirmed, which never comes for a target that
// cannot die. Sinks that already heard this stall ignore it.
func (a *Agent) announceStall(j *judged) {
	a.pub.publish(a.pub.judgedVerdict(sink.Stalled, j, time.Now()))
	// Peers must hear STALLED before the kill, as they did when the
	// heartbeat sent it from here; the integrations go at their pace.
	a.hubMu.Lock()
	own := a.hub
	a.hubMu.Unlock()
	if own != nil {
		own.Settle(stallSettle)
	}
}

// final publishes the last verdict of this run, after the publisher stopped.
func (a *Agent) final(state sink.State, j *judged) {
	v := a.pub.judgedVerdict(state, j, time.Now())
	v.Final = true
	a.pub.publish(v)
}

func (a *Agent) trackThreads(snap tracker.Snapshot) {
	now := make(map[int]int, len(snap.Threads)) // tid -> pid
	for _, t := range snap.Threads {
		now[t.TID] = t.PID
		if _, known := a.threads[t.TID]; a.threads != nil && !known {
			a.event(slog.LevelDebug, event.ThreadStarted, slog.Int("pid", t.PID), slog.Int("tid", t.TID), slog.String("comm", t.Comm))
		}
	}
	for tid, pid := range a.threads {
		if _, alive := now[tid]; !alive {
			a.event(slog.LevelDebug, event.ThreadExited, slog.Int("pid", pid), slog.Int("tid", tid))
		}
	}
	a.threads = now
}

func (a *Agent) targetExited() {
	a.gone.Store(true)
	var attrs []slog.Attr
	if pid := a.mon.PID(); pid != 0 {
		// A cgroup has no one pid: its event says only that it emptied.
		attrs = append(attrs, slog.Int("pid", pid))
	}
	st, ok, err := a.mon.ExitStatus()
	switch {
	case err != nil:
		a.log.Warn(event.ExitStatusFailed, "err", err)
	case ok && st.Signaled:
		attrs = append(attrs, slog.Int("signal", int(st.Signal)), slog.String("status", st.String()))
	case ok:
		attrs = append(attrs, slog.Int("exit_code", st.Code), slog.String("status", st.String()))
	}
	a.event(slog.LevelInfo, event.TargetExited, attrs...)
}
