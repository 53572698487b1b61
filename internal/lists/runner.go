package lists

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Runner keeps feeds current: it loads each at start and then every
// Interval, and hands each new list to OnUpdate. A failed load (network,
// HTTP error, garbage, too wide, too large) never reaches OnUpdate: the
// previous list stands, the failure is logged, and the load is retried
// with backoff.
type Runner struct {
	Feeds []Feed
	// Client fetches URLs; nil: a default client with timeouts.
	Client *http.Client
	// OnUpdate receives a feed's whole new list, to replace the old one.
	// It is called only when the list changed, never concurrently for one
	// feed (each feed has one goroutine), but possibly concurrently for
	// different feeds.
	OnUpdate func(name string, r Result)
	Log      *slog.Logger
	// CacheDir, if set, keeps each URL feed's last good list and its
	// validators (CacheDir/NAME.list), so a restart has the list at once,
	// even with the network down, and asks the server only whether it
	// changed.
	CacheDir string
	// RetryMin is the wait after a first failure (0: 1m), doubled after
	// each further one up to RetryMax (0: 1h) and never more than the
	// feed's Interval.
	RetryMin, RetryMax time.Duration

	mu     sync.Mutex
	status map[string]*FeedStatus
}

// FeedStatus is what a Runner knows of one feed.
type FeedStatus struct {
	Name      string
	Source    string // file, or URL without its query
	Prefixes  int    // in the list in force; 0 before the first success
	Loaded    time.Time
	Checked   time.Time // last successful load or not-modified answer
	Failures  int       // in a row
	LastError string
	Next      time.Time
}

// Run loads the feeds until ctx is done. It returns at once with an error
// if a feed is unusable (no name, a name that cannot be a file name, no
// interval, not exactly one of URL and File).
func (r *Runner) Run(ctx context.Context) error {
	if err := r.check(); err != nil {
		return err
	}
	if r.Log == nil {
		r.Log = slog.Default()
	}
	r.mu.Lock()
	r.status = make(map[string]*FeedStatus, len(r.Feeds))
	for _, f := range r.Feeds {
		r.status[f.Name] = &FeedStatus{Name: f.Name, Source: f.Source()}
	}
	r.mu.Unlock()
	var wg sync.WaitGroup
	for _, f := range r.Feeds {
		wg.Go(func() { r.runFeed(ctx, f) })
	}
	wg.Wait()
	return nil
}

func (r *Runner) check() error {
	seen := map[string]bool{}
	for i, f := range r.Feeds {
		switch {
		case f.Name == "" || strings.ContainsAny(f.Name, `/\`) || f.Name[0] == '.' || len(f.Name) > 64:
			return fmt.Errorf("feed %d: name %q is empty or not usable as a file name", i, f.Name)
		case seen[f.Name]:
			return fmt.Errorf("feed %q named twice", f.Name)
		case (f.URL == "") == (f.File == ""):
			return fmt.Errorf("feed %q: give exactly one of url and file", f.Name)
		case f.Interval <= 0:
			return fmt.Errorf("feed %q: no interval", f.Name)
		}
		seen[f.Name] = true
	}
	return nil
}

// Status returns the state of each feed, in configuration order.
func (r *Runner) Status() []FeedStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]FeedStatus, 0, len(r.Feeds))
	for _, f := range r.Feeds {
		if s := r.status[f.Name]; s != nil {
			out = append(out, *s)
		} else { // not started yet
			out = append(out, FeedStatus{Name: f.Name, Source: f.Source()})
		}
	}
	return out
}

func (r *Runner) setStatus(name string, fn func(*FeedStatus)) {
	r.mu.Lock()
	fn(r.status[name])
	r.mu.Unlock()
}

func (r *Runner) runFeed(ctx context.Context, f Feed) {
	log := r.Log.With("feed", f.Name, "source", f.Source())
	var (
		cur      []netip.Prefix // the list in force; nil before the first
		val      Validators
		failures int
	)
	if res, v, ok := r.readCache(f, log); ok {
		cur, val = res.Prefixes, v
		r.update(f, res, "cache")
	}
	for {
		res, v, err := f.Load(ctx, r.Client, val)
		if ctx.Err() != nil {
			return
		}
		now := time.Now()
		wait := f.Interval
		switch {
		case err == nil:
			changed := cur == nil || !slices.Equal(cur, res.Prefixes)
			if changed {
				cur = res.Prefixes
				r.update(f, res, "load")
			}
			if changed || v != val {
				r.writeCache(f, res, v, log)
			}
			failures, val = 0, v
			logLoad(log, res)
		case errors.Is(err, ErrNotModified):
			failures, val = 0, v
			log.Debug("feed not modified", "prefixes", len(cur))
		default:
			failures++
			wait = r.backoff(f, failures, err)
			log.Warn("feed not loaded; keeping the previous list", "err", err,
				"prefixes", len(cur), "failures", failures, "retry_in", wait.Round(time.Second))
		}
		wait = jitter(wait)
		r.setStatus(f.Name, func(s *FeedStatus) {
			s.Failures, s.Next = failures, now.Add(wait)
			if err == nil || errors.Is(err, ErrNotModified) {
				s.Checked, s.LastError = now, ""
			} else {
				s.LastError = err.Error()
			}
		})
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (r *Runner) update(f Feed, res Result, from string) {
	r.setStatus(f.Name, func(s *FeedStatus) {
		s.Prefixes, s.Loaded = len(res.Prefixes), time.Now()
	})
	if r.OnUpdate != nil {
		r.OnUpdate(f.Name, res)
	}
	r.Log.Info("feed list updated", "feed", f.Name, "from", from, "prefixes", len(res.Prefixes))
}

func logLoad(log *slog.Logger, res Result) {
	if res.Bad > 0 || res.Refused > 0 || res.Truncated {
		args := []any{"lines", res.Lines, "entries", res.Entries, "bad", res.Bad, "refused", res.Refused}
		if res.FirstBad != "" {
			args = append(args, "first_bad", res.FirstBad)
		}
		for _, rf := range res.Refusals {
			args = append(args, "refusal", rf.String())
		}
		if res.Truncated {
			args = append(args, "truncated_at", MaxEntries)
		}
		log.Warn("feed has entries that were not used", args...)
	}
}

// backoff is the wait after the n-th failure in a row: RetryMin doubled
// each time, up to RetryMax and the feed's interval, or longer if the
// server asked for it with Retry-After.
func (r *Runner) backoff(f Feed, n int, err error) time.Duration {
	lo, hi := r.RetryMin, r.RetryMax
	if lo <= 0 {
		lo = time.Minute
	}
	if hi <= 0 {
		hi = time.Hour
	}
	hi = max(min(hi, f.Interval), lo)
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	if he := (*HTTPError)(nil); errors.As(err, &he) && he.RetryAfter > d {
		d = he.RetryAfter
	}
	return d
}

// jitter spreads d by ±10%, so that hosts started together do not all
// fetch at the same moment.
func jitter(d time.Duration) time.Duration {
	if d < 10*time.Millisecond {
		return d
	}
	return d - d/10 + rand.N(d/5)
}
