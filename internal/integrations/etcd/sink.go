// Package etcd vouches for this node in etcd while stallmon finds its
// service alive: a key bound to a lease that only Alive verdicts refresh,
// and, optionally, a campaign in an election (concurrency.Election's
// layout, so etcdctl elect and any etcd client can compete and watch).
//
// Nothing refreshes the lease in the background: each Alive verdict sends
// one keep-alive. When stallmon finds a stall, or itself stops being
// called (a hung agent) or dies, the lease expires within its TTL and the
// key with it. A stall also resigns the election at once; a fenced target
// or a leaving stallmon revokes the lease at once.
package etcd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
)

// CloseTimeout bounds each step of Close that talks to etcd or waits.
const CloseTimeout = 2 * time.Second

// Sink is the etcd sink. Apply and Close are called from one goroutine at
// a time (the hub's contract); the campaign goroutines and the lease
// expiry timer share only what mu guards.
type Sink struct {
	cfg    Config
	log    *slog.Logger
	client *clientv3.Client
	hooks  *hookRunner
	// base is cancelled by Close: it ends every campaign.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Owned by Apply and Close.
	lease clientv3.LeaseID // 0: none
	// refreshing is false once the lease is abandoned at a stall: it is
	// never refreshed again, only revoked or left to expire.
	refreshing bool
	// written is what the node key holds under lease ("" for nothing).
	written string
	// candidate is set while a candidate key may exist under lease.
	candidate bool
	// lastAlive is when the latest Alive verdict was applied, zero
	// after any other or a failure; warnedSlow says the warning that
	// they come too rarely for the TTL went out.
	lastAlive  time.Time
	warnedSlow bool

	mu       sync.Mutex
	leader   bool
	camp     *campaign // the latest campaign, nil before the first
	expiry   *time.Timer
	expiryAt uint64 // bumped to disarm a timer that already fired
	// last is the latest verdict applied, for the hooks' environment.
	last sink.Verdict
}

// New connects lazily: an etcd that is down now makes Apply fail (and the
// hub retry), not New.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	client, err := clientv3.New(clientv3.Config{
		Endpoints: cfg.Endpoints,
		// Errors come back from each call, with context, through Apply.
		Logger: zap.NewNop(),
		// Drop a connection that stops answering (and try another
		// endpoint) within 10 s + TTL rather than the OS's TCP timeout;
		// gRPC pings no more often than every 10 s. The lease does not
		// wait for it: a keep-alive that fails lets the lease expire.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: cfg.TTL,
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client for %v: %w", cfg.Endpoints, err)
	}
	s := &Sink{cfg: cfg, log: cfg.Logger.With("sink", "etcd"), client: client}
	s.hooks = newHookRunner(s.log, cfg.HookTimeout)
	s.base, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// Name implements sink.Sink.
func (s *Sink) Name() string { return "etcd" }

// Key is the node key this sink writes.
func (s *Sink) Key() string { return s.cfg.NodeKey() }

// Apply implements sink.Sink.
func (s *Sink) Apply(ctx context.Context, v sink.Verdict) error {
	s.mu.Lock()
	s.last = v
	s.mu.Unlock()
	now := time.Now()
	if v.State != sink.Alive {
		s.lastAlive = time.Time{}
	}
	switch {
	case v.State == sink.Alive && v.Fresh(now):
		s.checkPace(now)
		err := s.applyAlive(ctx, v)
		if err == nil {
			s.lastAlive = now
		} else {
			s.lastAlive = time.Time{}
		}
		return err
	case v.State == sink.Fenced || v.State == sink.Leaving || v.Final:
		s.demote(v.State.String())
		return s.revoke(ctx)
	default:
		// Stalled, Blind, or an Alive verdict gone stale on its way.
		state := v.State.String()
		if v.State == sink.Alive {
			state = sink.Blind.String()
		}
		return s.applyStalled(ctx, v, state)
	}
}

func (s *Sink) applyAlive(ctx context.Context, v sink.Verdict) error {
	if s.lease != 0 && s.refreshing {
		sent := time.Now()
		resp, err := s.client.KeepAliveOnce(ctx, s.lease)
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			// Expired: etcd was out of reach, or Apply late, for longer
			// than the TTL. Start afresh below.
			s.log.Warn(event.EtcdLeaseLost, "lease", leaseHex(s.lease), "reason", "expired in etcd")
			s.demote("lease_lost")
			s.forgetLease()
		case err != nil:
			return fmt.Errorf("refreshing lease %s: %w", leaseHex(s.lease), err)
		default:
			s.armExpiry(sent.Add(time.Duration(resp.TTL) * time.Second))
		}
	}
	if s.lease != 0 && !s.refreshing {
		// Back from a stall: the abandoned lease holds the stale key.
		if err := s.revoke(ctx); err != nil {
			return err
		}
	}
	if s.lease == 0 {
		sent := time.Now()
		resp, err := s.client.Grant(ctx, int64(s.cfg.TTL/time.Second))
		if err != nil {
			return fmt.Errorf("granting a %v lease: %w", s.cfg.TTL, err)
		}
		s.forgetLease()
		s.lease, s.refreshing = resp.ID, true
		s.armExpiry(sent.Add(time.Duration(resp.TTL) * time.Second))
		s.log.Info(event.EtcdLease, "action", "granted", "lease", leaseHex(s.lease), "ttl_seconds", resp.TTL)
	}
	if err := s.writeKey(ctx, v, sink.Alive.String()); err != nil {
		return err
	}
	if s.cfg.Election != "" {
		return s.ensureCampaign(ctx)
	}
	return nil
}

// checkPace warns, once, when Alive verdicts come so rarely that the
// lease nearly expires between them: the publishing interval (--interval)
// must be well under the TTL, and nothing here can see it in advance.
func (s *Sink) checkPace(now time.Time) {
	if gap := now.Sub(s.lastAlive); gap > s.cfg.TTL/2 && !s.warnedSlow && !s.lastAlive.IsZero() {
		s.warnedSlow = true
		s.log.Warn(event.EtcdTTLTooShort, "gap_seconds", gap.Seconds(), "ttl_seconds", s.cfg.TTL.Seconds(),
			"hint", "raise --etcd-ttl or lower --interval")
	}
}

// applyStalled stops refreshing the lease, so that the key expires within
// the TTL unless the target recovers, and leaves the election at once.
func (s *Sink) applyStalled(ctx context.Context, v sink.Verdict, state string) error {
	s.demote(state)
	if s.lease == 0 {
		return nil
	}
	if s.refreshing {
		s.refreshing = false
		s.log.Info(event.EtcdLease, "action", "abandoned", "lease", leaseHex(s.lease), "state", state,
			"expires_within_seconds", s.cfg.TTL.Seconds())
	}
	ops := []clientv3.Op{}
	if s.candidate {
		// A campaign still in flight could put the candidate key back
		// after the delete below: wait until it has stopped.
		if err := s.waitCampaign(ctx); err != nil {
			return err
		}
		ops = append(ops, clientv3.OpDelete(s.candidateKey()))
	}
	val := s.value(v, state)
	if s.written != val.key() {
		ops = append(ops, clientv3.OpPut(s.cfg.NodeKey(), val.encode(), clientv3.WithLease(s.lease)))
	}
	if len(ops) == 0 {
		return nil
	}
	_, err := s.client.Txn(ctx).Then(ops...).Commit()
	switch {
	case errors.Is(err, rpctypes.ErrLeaseNotFound):
		// Expired already, and every key bound to it with it.
		s.log.Info(event.EtcdLease, "action", "expired", "lease", leaseHex(s.lease), "state", state)
		s.forgetLease()
		return nil
	case err != nil:
		return fmt.Errorf("resigning and marking %s %s: %w", s.cfg.NodeKey(), state, err)
	}
	s.written, s.candidate = val.key(), false
	return nil
}

func (s *Sink) forgetLease() {
	s.lease, s.refreshing, s.written, s.candidate = 0, false, "", false
}

func (s *Sink) writeKey(ctx context.Context, v sink.Verdict, state string) error {
	val := s.value(v, state)
	if s.written == val.key() {
		return nil
	}
	if _, err := s.client.Put(ctx, s.cfg.NodeKey(), val.encode(), clientv3.WithLease(s.lease)); err != nil {
		return fmt.Errorf("writing %s: %w", s.cfg.NodeKey(), err)
	}
	s.written = val.key()
	return nil
}

func (s *Sink) value(v sink.Verdict, state string) NodeValue {
	return NodeValue{Node: s.cfg.NodeID, State: state, PID: v.PID, Time: v.At.UTC()}
}

// key tells whether the key must be written again: the time alone does not.
func (v NodeValue) key() string { return v.State + "/" + strconv.Itoa(v.PID) }

// revoke deletes the lease and with it every key bound to it.
func (s *Sink) revoke(ctx context.Context) error {
	if s.lease == 0 {
		return nil
	}
	start := time.Now()
	_, err := s.client.Revoke(ctx, s.lease)
	if err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("revoking lease %s: %w", leaseHex(s.lease), err)
	}
	s.log.Info(event.EtcdLease, "action", "revoked", "lease", leaseHex(s.lease),
		"already_expired", err != nil, "seconds", time.Since(start).Seconds())
	s.forgetLease()
	return nil
}

// armExpiry demotes this node locally when the lease may have expired in
// etcd: no later than etcd itself, since the deadline counts from before
// the request was sent. It guards against an etcd out of reach, and
// against Apply no longer being called at all.
func (s *Sink) armExpiry(deadline time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expiryAt++
	gen := s.expiryAt
	if s.expiry != nil {
		s.expiry.Stop()
	}
	s.expiry = time.AfterFunc(time.Until(deadline), func() {
		s.mu.Lock()
		if gen != s.expiryAt {
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		s.log.Warn(event.EtcdLeaseLost, "reason", "no keep-alive answered within the TTL")
		s.demote("lease_lost")
	})
}

func (s *Sink) disarmExpiry() {
	s.expiryAt++
	if s.expiry != nil {
		s.expiry.Stop()
	}
}

// Close revokes the lease (bounded), ends the campaigns, runs the
// demotion hook if this node led, and closes the client.
func (s *Sink) Close() error {
	s.demote("closed")
	ctx, cancel := context.WithTimeout(context.Background(), CloseTimeout)
	err := s.revoke(ctx)
	cancel()
	s.cancel()
	// Unblocks a campaign's own clean-up, which waits on the client.
	cerr := s.client.Close()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(CloseTimeout):
		s.log.Warn(event.EtcdCampaignRunningAtClose, "election", s.cfg.Election)
	}
	s.hooks.close(s.cfg.HookTimeout + time.Second)
	if err != nil {
		return err
	}
	if cerr != nil && !errors.Is(cerr, context.Canceled) {
		return fmt.Errorf("closing etcd client: %w", cerr)
	}
	return nil
}

func leaseHex(id clientv3.LeaseID) string { return strconv.FormatInt(int64(id), 16) }
