package etcd

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/stallmon/stallmon/internal/event"
	"github.com/stallmon/stallmon/internal/sink"
)

// campaign is one run of the campaign goroutine, for one lease.
type campaign struct {
	lease  clientv3.LeaseID
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// candidateKey is where concurrency.Election puts this node's candidacy:
// the election's prefix, "/", the lease in hex.
func (s *Sink) candidateKey() string {
	return s.cfg.Election + "/" + strconv.FormatInt(int64(s.lease), 16)
}

// ensureCampaign starts campaigning with the current lease unless a
// campaign with it runs already. Campaigning blocks until elected, so it
// runs in a goroutine of its own that Apply never waits for, except for
// a cancelled one to finish, bounded by ctx.
func (s *Sink) ensureCampaign(ctx context.Context) error {
	s.mu.Lock()
	c := s.camp
	if c != nil && c.lease != s.lease {
		c.cancel() // one lease, one campaign
	}
	s.mu.Unlock()
	if c != nil && c.lease == s.lease && c.ctx.Err() == nil {
		return nil
	}
	if err := s.waitCampaign(ctx); err != nil {
		return err
	}
	// The session only lends its lease to the election: orphaned at
	// once, it keeps nothing alive. Apply's keep-alives do.
	sess, err := concurrency.NewSession(s.client, concurrency.WithLease(s.lease), concurrency.WithContext(s.base))
	if err != nil {
		return fmt.Errorf("election session on lease %s: %w", leaseHex(s.lease), err)
	}
	sess.Orphan()
	s.candidate = true
	nc := &campaign{lease: s.lease, done: make(chan struct{})}
	nc.ctx, nc.cancel = context.WithCancel(s.base)
	s.mu.Lock()
	s.camp = nc
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(nc.done)
		s.campaign(nc, concurrency.NewElection(sess, s.cfg.Election))
	}()
	return nil
}

// waitCampaign waits, bounded by ctx, for the latest campaign to stop
// once cancelled.
func (s *Sink) waitCampaign(ctx context.Context) error {
	s.mu.Lock()
	c := s.camp
	s.mu.Unlock()
	if c == nil || c.ctx.Err() == nil {
		return nil
	}
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for the campaign on lease %s to stop: %w", leaseHex(c.lease), ctx.Err())
	}
}

// campaign campaigns until elected, then holds office until its key goes
// (the lease expired, someone deleted it), and campaigns again; it ends
// when cancelled.
func (s *Sink) campaign(c *campaign, e *concurrency.Election) {
	backoff := 100 * time.Millisecond
	retry := func(what string, err error) bool {
		s.log.Warn(event.EtcdCampaignFailed, "election", s.cfg.Election, "step", what, "err", err)
		select {
		case <-c.ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, s.cfg.TTL)
		return true
	}
	for c.ctx.Err() == nil {
		if err := e.Campaign(c.ctx, s.cfg.NodeID); err != nil {
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				// Gone for good: the next Alive verdict grants a new
				// lease and campaigns with it.
				s.log.Warn(event.EtcdCampaignFailed, "election", s.cfg.Election, "err", err)
				return
			}
			if c.ctx.Err() != nil || !retry("campaigning", err) {
				return
			}
			continue
		}
		// Campaign returns once every older candidate is gone, even
		// when its own key went too (its lease expired meanwhile): only
		// a key still ours makes this node the leader.
		resp, err := s.client.Get(c.ctx, e.Key())
		if err != nil {
			if c.ctx.Err() != nil || !retry("checking the leader key", err) {
				return
			}
			continue
		}
		if len(resp.Kvs) == 0 || clientv3.LeaseID(resp.Kvs[0].Lease) != c.lease {
			s.log.Warn(event.EtcdCampaignFailed, "election", s.cfg.Election, "step", "checking the leader key",
				"err", "won with a key no longer ours; campaigning again", "key", e.Key())
			continue
		}
		if !s.elected(c, e.Key()) {
			return
		}
		backoff = 100 * time.Millisecond
		s.holdOffice(c, e.Key(), resp.Header.Revision)
		if c.ctx.Err() != nil {
			return
		}
		s.lostOffice(c, e.Key())
	}
}

// elected records the win unless the campaign was cancelled meanwhile: a
// demotion checks leader under the same lock as it cancels.
func (s *Sink) elected(c *campaign, key string) bool {
	s.mu.Lock()
	if c.ctx.Err() != nil {
		s.mu.Unlock()
		return false
	}
	s.leader = true
	last := s.last
	s.mu.Unlock()
	s.log.Info(event.EtcdElected, "election", s.cfg.Election, "key", key)
	s.hooks.enqueue(s.hook(hookElected, s.cfg.OnElected, last, "campaign_won"))
	return true
}

// lostOffice is a demotion that Apply did not decide: the key went.
func (s *Sink) lostOffice(c *campaign, key string) {
	s.mu.Lock()
	if c.ctx.Err() != nil || !s.leader {
		s.mu.Unlock()
		return
	}
	s.leader = false
	last := s.last
	s.mu.Unlock()
	s.log.Warn(event.EtcdDemoted, "election", s.cfg.Election, "reason", "key_deleted", "key", key)
	s.hooks.enqueue(s.hook(hookDemoted, s.cfg.OnDemoted, last, "key_deleted"))
}

// holdOffice returns when the leader key is deleted, or c is cancelled.
func (s *Sink) holdOffice(c *campaign, key string, rev int64) {
	for c.ctx.Err() == nil {
		for wr := range s.client.Watch(c.ctx, key, clientv3.WithRev(rev+1)) {
			if wr.Err() != nil {
				break
			}
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					return
				}
			}
		}
		// The watch broke (compaction, a lost connection): look again.
		if c.ctx.Err() != nil {
			return
		}
		resp, err := s.client.Get(c.ctx, key)
		if err != nil {
			select {
			case <-c.ctx.Done():
			case <-time.After(s.cfg.TTL / 4):
			}
			continue
		}
		if len(resp.Kvs) == 0 {
			return
		}
		rev = resp.Header.Revision
	}
}

// demote cancels every campaign and, if this node led, says so and queues
// the demotion hook. The caller deletes or revokes what is in etcd.
func (s *Sink) demote(reason string) {
	s.mu.Lock()
	if s.camp != nil {
		s.camp.cancel()
	}
	s.disarmExpiry()
	wasLeader := s.leader
	s.leader = false
	last := s.last
	s.mu.Unlock()
	if wasLeader {
		s.log.Warn(event.EtcdDemoted, "election", s.cfg.Election, "reason", reason)
		s.hooks.enqueue(s.hook(hookDemoted, s.cfg.OnDemoted, last, reason))
	}
}

// IsLeader reports whether this node holds the election, as far as the
// sink knows.
func (s *Sink) IsLeader() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.leader
}

// hook is one run of cmd for v. STALLMON_RULE and STALLMON_KILLS say
// which rule a stall broke and whether it ends in stallmon's kill: a
// demotion hook must not stop a service that a rule which never kills
// holds (stopped, traced, frozen: gdb, gcore, CRIU, docker pause).
func (s *Sink) hook(event, cmd string, v sink.Verdict, reason string) hookRun {
	rule, kills := "", "0"
	if st := v.Stall; st != nil {
		rule = st.Reason
		if st.Kills {
			kills = "1"
		}
	}
	return hookRun{event: event, cmd: cmd, env: []string{
		"STALLMON_EVENT=" + event,
		"STALLMON_REASON=" + reason,
		"STALLMON_NODE=" + s.cfg.NodeID,
		"STALLMON_ELECTION=" + s.cfg.Election,
		"STALLMON_STATE=" + v.State.String(),
		"STALLMON_PID=" + strconv.Itoa(v.PID),
		"STALLMON_RULE=" + rule,
		"STALLMON_KILLS=" + kills,
	}}
}
