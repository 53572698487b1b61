package hook

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Bounds of the after-hook queue. Eight hooks at once is plenty for
// notifications and API calls, and keeps a burst of bans from forking
// hundreds of processes; 1024 waiting events is a burst of bans at the
// policy's default cap (60 a minute) for over a quarter of an hour, with a
// few hooks each.
const (
	maxRunning = 8
	maxQueued  = 1024
)

// dropReportEvery is how often dropped events are logged (a variable for
// tests).
var dropReportEvery = time.Minute

// Stats counts hook runs since the Runner was made.
type Stats struct {
	Run      uint64 // runs that ended, whatever the outcome
	Failed   uint64 // of those, runs that did not exit with status 0 (timeouts included)
	TimedOut uint64 // of those, runs killed at their timeout
	Dropped  uint64 // after-hook runs never started: queue full, or the Runner closed
	Running  int    // runs in progress now
}

// Runner runs hooks for events.
type Runner struct {
	log    *slog.Logger
	before []Hook
	after  []Hook

	queue   chan job
	mu      sync.RWMutex // guards closed against sends on a closed queue
	closed  bool
	workers sync.WaitGroup

	// base ends when Close gives up waiting: running hooks are killed and
	// queued ones dropped.
	base       context.Context
	cancelBase context.CancelFunc
	stopReport chan struct{}
	reportDone chan struct{}

	run, failed, timedOut, dropped atomic.Uint64
	reported                       atomic.Uint64 // dropped, as last logged
	running, peak                  atomic.Int64
}

type job struct {
	hook *Hook
	ev   Event
}

// NewRunner checks the hooks and returns a Runner for them. A hook without
// a program, with a program that is not an absolute path or holds a
// placeholder, or with an unknown action or order is an error. A program
// that does not exist (yet) is only logged: it may be installed later.
func NewRunner(hooks []Hook, log *slog.Logger) (*Runner, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runner{
		log:        log,
		queue:      make(chan job, maxQueued),
		stopReport: make(chan struct{}),
		reportDone: make(chan struct{}),
	}
	for i, h := range hooks {
		h, err := check(h)
		if err != nil {
			return nil, fmt.Errorf("hook %d (%s): %w", i, strings.Join(h.Argv, " "), err)
		}
		if fi, err := os.Stat(h.Argv[0]); err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			log.Warn("hook program is not an executable file; the hook will fail until it is", "hook", i, "program", h.Argv[0])
		}
		if h.Order == OrderBefore {
			r.before = append(r.before, h)
		} else {
			r.after = append(r.after, h)
		}
	}
	r.base, r.cancelBase = context.WithCancel(context.Background())
	for range maxRunning {
		r.workers.Add(1)
		go r.worker()
	}
	go r.reportDrops()
	return r, nil
}

// Before runs the hooks with order "before" that apply to ev, one after the
// other in the order configured, and returns when they have all ended
// (each bounded by its timeout, so the wait is bounded by the sum of them).
// When ctx ends, the running hook is killed and the rest are skipped. The
// hooks run in the caller's goroutine, outside the after-hooks' limit of
// maxRunning: a caller that calls Before from many goroutines at once runs
// that many before-hooks at once.
func (r *Runner) Before(ctx context.Context, ev Event) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.base, cancel)
	defer stop()
	for i := range r.before {
		h := &r.before[i]
		if !h.runsOn(ev.Action) {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		r.runHook(ctx, h, ev)
	}
}

// After queues the hooks with order "after" that apply to ev and returns at
// once. When the queue is full, or the Runner is closed, the runs are
// dropped and counted.
func (r *Runner) After(ev Event) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for i := range r.after {
		h := &r.after[i]
		if !h.runsOn(ev.Action) {
			continue
		}
		if r.closed {
			r.dropped.Add(1)
			continue
		}
		select {
		case r.queue <- job{h, ev}:
		default:
			r.dropped.Add(1)
		}
	}
}

// Stats returns the counters.
func (r *Runner) Stats() Stats {
	return Stats{
		Run:      r.run.Load(),
		Failed:   r.failed.Load(),
		TimedOut: r.timedOut.Load(),
		Dropped:  r.dropped.Load(),
		Running:  int(r.running.Load()),
	}
}

// Close stops taking events and waits for the queued and running
// after-hooks to end, until ctx ends: then the running hooks are killed
// (with their process groups), the queued ones dropped, and ctx's error
// returned once the kills are done. Close is idempotent.
func (r *Runner) Close(ctx context.Context) error {
	r.mu.Lock()
	if !r.closed {
		r.closed = true
		close(r.queue)
		close(r.stopReport)
	}
	r.mu.Unlock()
	done := make(chan struct{})
	go func() {
		r.workers.Wait()
		<-r.reportDone
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		r.cancelBase()
		<-done
		return ctx.Err()
	}
}

func (r *Runner) worker() {
	defer r.workers.Done()
	for j := range r.queue {
		if r.base.Err() != nil {
			r.dropped.Add(1)
			continue
		}
		r.runHook(r.base, j.hook, j.ev)
	}
}

// reportDrops logs dropped events at most once every dropReportEvery, and
// once more when the Runner closes.
func (r *Runner) reportDrops() {
	defer close(r.reportDone)
	t := time.NewTicker(dropReportEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.logDrops()
		case <-r.stopReport:
			// Runs still queued may yet be dropped by Close; wait for
			// the workers so the last report has them.
			r.workers.Wait()
			r.logDrops()
			return
		}
	}
}

func (r *Runner) logDrops() {
	total := r.dropped.Load()
	last := r.reported.Swap(total)
	if total > last {
		r.log.Warn("hook runs dropped: more events than hooks can keep up with",
			"dropped", total-last, "dropped_total", total, "queue", maxQueued, "concurrency", maxRunning)
	}
}

// runHook runs one hook for one event, counts and logs the outcome.
func (r *Runner) runHook(ctx context.Context, h *Hook, ev Event) {
	n := r.running.Add(1)
	for {
		p := r.peak.Load()
		if n <= p || r.peak.CompareAndSwap(p, n) {
			break
		}
	}
	defer r.running.Add(-1)

	v := eventVars(ev)
	o := run(ctx, argv(h, &v), environ(&v), h.Timeout)
	r.run.Add(1)
	if !o.ok() {
		r.failed.Add(1)
	}
	if o.timedOut {
		r.timedOut.Add(1)
	}
	r.logOutcome(h, ev, o)
}

func (r *Runner) logOutcome(h *Hook, ev Event, o *outcome) {
	attrs := []any{
		"program", h.Argv[0], "action", ev.Action, "target", targetString(ev.Target),
		"order", h.Order, "elapsed", o.elapsed.Round(time.Millisecond),
	}
	attrs = append(attrs, output("stdout", &o.stdout)...)
	attrs = append(attrs, output("stderr", &o.stderr)...)
	switch {
	case o.startErr != nil:
		r.log.Warn("hook could not be started", append(attrs, "err", o.startErr)...)
	case o.timedOut:
		r.log.Warn("hook timed out and was killed with its process group", append(attrs, "timeout", h.Timeout)...)
	case o.cancelled:
		r.log.Warn("hook killed with its process group: shutting down", attrs...)
	case o.exitCode != 0:
		r.log.Warn("hook failed", append(attrs, "status", o.status)...)
	default:
		if o.waitErr != nil {
			attrs = append(attrs, "warning", "a process it started kept its output open and was left running: "+o.waitErr.Error())
		}
		r.log.Debug("hook ran", append(attrs, "status", o.status)...)
	}
}

// output renders captured output as log attributes (none when empty).
func output(name string, c *capped) []any {
	if len(c.buf) == 0 && c.truncated == 0 {
		return nil
	}
	a := []any{name, string(c.buf)}
	if c.truncated > 0 {
		a = append(a, name+"_truncated_bytes", c.truncated)
	}
	return a
}
