package alert

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	mrand "math/rand/v2"
	"sync"
	"time"
)

// sender delivers one sealed digest as one message.
type sender interface {
	name() string
	send(ctx context.Context, a *Alerter, g *sealed) error
}

// sealed is a digest closed for new events: one message, delivered once.
type sealed struct {
	*digest
	id string // the same for every attempt: Message-ID, webhook header, so a receiver can drop a repeat
}

// channel is one way out (mail or webhook): the digest it is collecting,
// the messages waiting for delivery, in order, and the cap's record.
type channel struct {
	a    *Alerter
	s    sender
	wake chan struct{}

	mu        sync.Mutex
	open      *digest   // collecting; nil when no event waits
	outbox    []*sealed // sealed, undelivered, oldest first
	delivered []time.Time
	st        ChannelStats
}

func newChannel(a *Alerter, s sender) *channel {
	return &channel{a: a, s: s, wake: make(chan struct{}, 1), st: ChannelStats{Enabled: true}}
}

// add puts an event into the open digest. It takes the channel's lock
// only for an append: the sender never holds it while talking to the
// network.
func (c *channel) add(ev *event) {
	c.mu.Lock()
	first := c.open == nil
	if first {
		c.open = &digest{}
	}
	c.open.add(ev)
	c.mu.Unlock()
	if first {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

// run seals digests and delivers them until ctx ends, then flushes.
func (c *channel) run(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var retryAt time.Time
	failures := 0
	for {
		now := time.Now()
		next := c.seal(now, false)
		if head := c.head(); head != nil && !now.Before(retryAt) {
			if err := c.deliver(ctx, head); err != nil {
				if ctx.Err() != nil {
					break
				}
				failures++
				wait := c.backoff(failures)
				retryAt = time.Now().Add(wait)
				c.a.log.Warn("alert not delivered; will retry", "channel", c.s.name(), "err", err,
					"retry_in", wait.Round(time.Millisecond), "pending", c.stats().Pending)
			} else {
				failures, retryAt = 0, time.Time{}
			}
			continue
		}
		if c.head() != nil && (next.IsZero() || retryAt.Before(next)) {
			next = retryAt
		}
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-ctx.Done():
		case <-c.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	c.flush(ctx)
}

// seal turns the open digest into a message when its time has come and
// the cap allows one more; otherwise it says when to look again (zero: at
// the next event or delivery). force ignores the digest time (stop).
//
// The cap counts the messages waiting and those delivered within the last
// window (an hour). A token bucket refilled at max_per_hour an hour would
// let twice that through in some hour (a full bucket, then its refill);
// counting this way, no receiver ever gets more than max_per_hour messages
// in any hour, even after an outage, when the waiting ones go at once.
func (c *channel) seal(now time.Time, force bool) (next time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	window := c.a.cfg.capWindow
	for len(c.delivered) > 0 && !now.Before(c.delivered[0].Add(window)) {
		c.delivered = c.delivered[1:]
	}
	if c.open == nil {
		return time.Time{}
	}
	if due := c.open.first.Add(c.a.cfg.Digest); !force && now.Before(due) {
		return due
	}
	if len(c.outbox) >= maxPending {
		return time.Time{} // after a delivery
	}
	if len(c.outbox)+len(c.delivered) >= c.a.cfg.MaxPerHour {
		if len(c.delivered) > 0 {
			return c.delivered[0].Add(window)
		}
		return time.Time{}
	}
	c.outbox = append(c.outbox, &sealed{digest: c.open, id: newID()})
	c.open = nil
	return time.Time{}
}

func newID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (c *channel) head() *sealed {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.outbox) == 0 {
		return nil
	}
	return c.outbox[0]
}

// deliver makes one attempt at the oldest waiting message.
func (c *channel) deliver(ctx context.Context, m *sealed) error {
	err := c.s.send(ctx, c.a, m)
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.st.Failed++
		c.st.LastError = err.Error()
		return err
	}
	c.outbox = c.outbox[1:] // only this goroutine removes, so m is still the head
	c.delivered = append(c.delivered, now)
	c.st.Sent++
	c.st.Unlisted += uint64(m.unlisted())
	c.st.LastError, c.st.LastSent = "", now
	c.a.log.Info("alert sent", "channel", c.s.name(), "events", m.total(), "summary", summary(m.counts))
	return nil
}

// backoff is the wait after the n-th failure in a row: RetryMin doubled
// each time up to RetryMax, and "equal jitter" (half fixed, half random)
// so that several daemons do not retry in step against one receiver.
func (c *channel) backoff(n int) time.Duration {
	d := c.a.cfg.RetryMin
	for i := 1; i < n && d < c.a.cfg.RetryMax; i++ {
		d *= 2
	}
	d = min(d, c.a.cfg.RetryMax)
	half := d / 2
	return half + mrand.N(d-half+1)
}

// flush gives what is waiting one last try when Run stops: the open
// digest is sealed if the cap allows, and the messages go in order until
// one fails or the flush time is up. What is left is counted as dropped.
func (c *channel) flush(ctx context.Context) {
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.a.cfg.flushTimeout)
	defer cancel()
	c.seal(time.Now(), true)
	for m := c.head(); m != nil; m = c.head() {
		if err := c.deliver(fctx, m); err != nil {
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	lost := 0
	for _, m := range c.outbox {
		lost += m.total()
	}
	if c.open != nil {
		lost += c.open.total()
	}
	c.outbox, c.open = nil, nil
	if lost > 0 {
		c.st.Dropped += uint64(lost)
		c.a.log.Warn("alerts not delivered at stop", "channel", c.s.name(), "events", lost,
			"last_error", c.st.LastError)
	}
}

func (c *channel) stats() ChannelStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.st
	s.Pending = len(c.outbox)
	if c.open != nil {
		s.Waiting = c.open.total()
	}
	return s
}
