package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/flickdev/flick/internal/sources/queue"
)

// finalTimeout bounds the last commit, and the group leave, when Consume returns.
const finalTimeout = 5 * time.Second

// session is one Consume: a group member, its partitions' trackers, and their commits.
type session struct {
	d      *Driver
	handle queue.Handler
	cl     *kgo.Client
	log    *slog.Logger

	mu       sync.Mutex
	trackers map[int32]*tracker // the partitions assigned now

	// commitMu makes taking a snapshot and committing it one step, so that an older
	// snapshot never reaches the broker after a newer one.
	commitMu sync.Mutex
	kick     chan struct{} // a record finished: commit soon
}

// Consume joins the group and handles the topic's records until ctx ends or the cluster
// stops answering; see the package doc for commits and retries.
func (d *Driver) Consume(ctx context.Context, handle queue.Handler) error {
	s := &session{d: d, handle: handle, log: d.log, trackers: map[int32]*tracker{}, kick: make(chan struct{}, 1)}
	opts := append(d.clientOptions(),
		kgo.ConsumerGroup(d.group),
		kgo.ConsumeTopics(d.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.OnOffsetsFetched(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	)
	if d.sessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(d.sessionTimeout), kgo.HeartbeatInterval(d.sessionTimeout/3))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("kafka %s: topic %q: %w", d.url, d.topic, err)
	}
	s.cl = cl

	// loopCtx ends with ctx, or with the cause when the cluster stops answering.
	loopCtx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var bg sync.WaitGroup
	bg.Go(func() { s.watch(loopCtx, stop) })
	bg.Go(func() { s.committer(loopCtx) })

	handleCtx, cancelHandles := context.WithCancel(ctx)
	defer cancelHandles()
	var handles sync.WaitGroup
	slots := make(chan struct{}, d.concurrency)
	for loopCtx.Err() == nil {
		fetches := cl.PollRecords(loopCtx, d.concurrency)
		if fetches.IsClientClosed() {
			stop(errors.New("client closed"))
			break
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				s.log.Warn("fetch error", "partition", p, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			select {
			case slots <- struct{}{}:
			case <-loopCtx.Done():
				return // not admitted: the next reader of the partition gets it
			}
			tr := s.admit(r)
			if tr == nil {
				<-slots
				return
			}
			handles.Go(func() {
				defer func() { <-slots }()
				s.run(handleCtx, tr, r)
			})
		})
	}

	lost := ctx.Err() == nil
	if lost {
		// Their acknowledgements could not be committed anyway.
		cancelHandles()
	}
	handles.Wait()
	stop(nil)
	bg.Wait()
	if !lost {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalTimeout)
		if err := s.commitDirty(fctx); err != nil {
			s.log.Warn("final commit failed; records handled since the last commit will be delivered again", "err", err)
		}
		cancel()
	}
	s.leave(ctx, lost)
	if lost {
		return fmt.Errorf("kafka %s: topic %q: %w", d.url, d.topic, context.Cause(loopCtx))
	}
	return nil
}

// leave leaves the group and closes the client, within finalTimeout, or a second when the
// cluster is gone. Everything to commit was committed: the revoke that leaving calls
// finds no partitions left.
func (s *session) leave(ctx context.Context, lost bool) {
	s.mu.Lock()
	for _, tr := range s.trackers {
		tr.revoked = true
	}
	clear(s.trackers)
	s.mu.Unlock()
	timeout := finalTimeout
	if lost {
		timeout = time.Second
	}
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := s.cl.LeaveGroupContext(lctx); err != nil {
		s.log.Debug("leave group", "err", err)
	}
	s.cl.Close()
}

// watch pings the cluster and stops the session when pingFailures pings in a row failed.
func (s *session) watch(ctx context.Context, stop context.CancelCauseFunc) {
	t := time.NewTicker(s.d.pingEvery)
	defer t.Stop()
	failed := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pctx, cancel := context.WithTimeout(ctx, s.d.pingEvery)
		err := s.cl.Ping(pctx)
		cancel()
		if err == nil || ctx.Err() != nil {
			failed = 0
			continue
		}
		failed++
		s.log.Debug("ping failed", "failed", failed, "err", err)
		if failed >= s.d.pingFailures {
			stop(fmt.Errorf("connection lost: %d pings failed, the last with: %w", failed, err))
			return
		}
	}
}

// assigned starts a tracker for each partition the group just gave us, from its commit
// and metadata; franz-go calls it before fetching them.
func (s *session) assigned(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
	add := func(topic string, p int32, offset int64, metadata *string, code int16) {
		// The partitions are the topic's, the only one we consume; v10 names it by id only.
		if topic != "" && topic != s.d.topic || code != 0 {
			return
		}
		var meta string
		if metadata != nil {
			meta = *metadata
		}
		s.mu.Lock()
		if old := s.trackers[p]; old != nil {
			old.revoked = true // a partition given again starts from its commit
		}
		s.trackers[p] = newTracker(offset, meta)
		s.mu.Unlock()
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				add(t.Topic, p.Partition, p.Offset, p.Metadata, p.ErrorCode)
			}
		}
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			add(t.Topic, p.Partition, p.Offset, p.Metadata, p.ErrorCode)
		}
	}
	return nil
}

// revoked commits what is done in the partitions taken from us, so their next reader
// starts there, and drops them; records of theirs still under way are delivered again.
func (s *session) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	offsets, metas := s.drop(revoked, true)
	if len(offsets) == 0 {
		return
	}
	if err := s.commitOffsets(ctx, offsets, metas); err != nil {
		s.log.Warn("commit of revoked partitions failed; their records since the last commit will be delivered again", "err", err)
	}
}

// lost drops partitions that went to another member without a revoke (a session timeout):
// committing them would fail.
func (s *session) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.drop(lost, false)
}

// drop forgets partitions, returning the commits they still needed when snapshot is set.
func (s *session) drop(partitions map[string][]int32, snapshot bool) (map[int32]kgo.EpochOffset, map[int32]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	offsets, metas := map[int32]kgo.EpochOffset{}, map[int32]string{}
	for _, p := range partitions[s.d.topic] {
		tr := s.trackers[p]
		if tr == nil {
			continue
		}
		if offset, meta, ok := tr.commit(); ok && tr.dirty && snapshot {
			offsets[p], metas[p] = kgo.EpochOffset{Epoch: -1, Offset: offset}, meta
		}
		tr.revoked = true
		delete(s.trackers, p)
	}
	return offsets, metas
}

// admit tells a fetched record's tracker that it arrived; nil means do not handle it
// (done before, per the commit's metadata, or its partition is no longer ours).
func (s *session) admit(r *kgo.Record) *tracker {
	s.mu.Lock()
	defer s.mu.Unlock()
	tr := s.trackers[r.Partition]
	if tr == nil {
		return nil
	}
	handle := tr.fetched(r.Offset)
	if tr.dirty {
		s.kickCommit()
	}
	if !handle {
		return nil
	}
	return tr
}

// run handles a record until it succeeds, retrying with backoff; it gives up, leaving the
// record uncommitted, when ctx ends or the partition is revoked.
func (s *session) run(ctx context.Context, tr *tracker, r *kgo.Record) {
	m := message(r)
	backoff := s.d.retryMin
	for {
		err := s.handle(ctx, m)
		if err == nil {
			s.done(tr, r.Offset)
			return
		}
		if ctx.Err() != nil || s.isRevoked(tr) {
			return
		}
		s.log.Debug("handle failed; retrying", "id", m.ID, "in", backoff, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
		backoff = min(2*backoff, s.d.retryMax)
	}
}

func message(r *kgo.Record) queue.Message {
	m := queue.Message{
		ID:    strconv.FormatInt(int64(r.Partition), 10) + "-" + strconv.FormatInt(r.Offset, 10),
		Topic: r.Topic,
		Body:  r.Value,
	}
	if len(r.Headers) > 0 {
		m.Headers = make(map[string]string, len(r.Headers))
		for _, h := range r.Headers {
			m.Headers[h.Key] = string(h.Value)
		}
	}
	return m
}

func (s *session) isRevoked(tr *tracker) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return tr.revoked
}

// done marks a record handled and asks for a commit.
func (s *session) done(tr *tracker, offset int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tr.revoked {
		return
	}
	tr.done(offset)
	s.kickCommit()
}

// kickCommit wakes the committer; s.mu is held or not, it does not block.
func (s *session) kickCommit() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// committer commits whenever records finished, so commits batch what finished while the
// previous one was under way. A failed commit is tried again a second later.
func (s *session) committer(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		}
		if err := s.commitDirty(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("commit failed; retrying", "err", err)
			t := time.NewTimer(time.Second)
			select {
			case <-t.C:
				s.kickCommit()
			case <-ctx.Done():
				t.Stop()
				return
			}
		}
	}
}

// commitDirty commits the partitions whose commit changed since the last one.
func (s *session) commitDirty(ctx context.Context) error {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	s.mu.Lock()
	offsets, metas := map[int32]kgo.EpochOffset{}, map[int32]string{}
	var taken []*tracker
	for p, tr := range s.trackers {
		if !tr.dirty {
			continue
		}
		offset, meta, ok := tr.commit()
		if !ok {
			continue
		}
		offsets[p], metas[p] = kgo.EpochOffset{Epoch: -1, Offset: offset}, meta
		tr.dirty = false
		taken = append(taken, tr)
	}
	s.mu.Unlock()
	if len(offsets) == 0 {
		return nil
	}
	err := s.commitOffsets(ctx, offsets, metas)
	if err != nil {
		s.mu.Lock()
		for _, tr := range taken {
			tr.dirty = true
		}
		s.mu.Unlock()
	}
	return err
}

// commitOffsets commits offsets with their metadata; franz-go's commit has no metadata
// of its own, so it is set on the request on its way out.
func (s *session) commitOffsets(ctx context.Context, offsets map[int32]kgo.EpochOffset, metas map[int32]string) error {
	ctx = kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		for i := range req.Topics {
			for j := range req.Topics[i].Partitions {
				p := &req.Topics[i].Partitions[j]
				meta := metas[p.Partition]
				p.Metadata = &meta
			}
		}
		return nil
	})
	var cerr error
	s.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.d.topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, p := range t.Partitions {
					if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
						cerr = fmt.Errorf("partition %d: %w", p.Partition, err)
					}
				}
			}
		})
	if cerr != nil {
		return fmt.Errorf("kafka %s: topic %q: commit for group %q: %w", s.d.url, s.d.topic, s.d.group, cerr)
	}
	return nil
}
