package lists

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Resolver looks up a host name's addresses; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// DynDNS keeps the addresses of host names current (dynamic DNS allow
// entries, CSF's csf.dyndns): it resolves every name (A and AAAA) every
// Interval and reports the whole set of addresses whenever it changes.
//
// A name whose lookup fails keeps its last good addresses, for at most
// Stale: a DNS outage must not lock an admin out, but a dynamic address is
// handed to someone else sooner or later.
type DynDNS struct {
	Names    []string      // not to be changed while a round runs
	Interval time.Duration // between rounds; 0: 10m
	Timeout  time.Duration // per name; 0: 10s
	Stale    time.Duration // how long failing names keep addresses; 0: 24h
	Resolver Resolver      // nil: net.DefaultResolver
	// OnUpdate receives every address of every name, sorted and without
	// duplicates, after each round that changed the set (and after the
	// first that found any). Never called concurrently.
	OnUpdate func(addrs []netip.Addr)
	Log      *slog.Logger

	round    sync.Mutex // one round at a time
	mu       sync.Mutex // guards names
	names    map[string]resolved
	reported []netip.Addr
	once     bool
}

type resolved struct {
	addrs []netip.Addr
	at    time.Time // of the last successful lookup
}

// concurrentLookups bounds the lookups in flight, so a long list does not
// flood the resolver.
const concurrentLookups = 8

// Run resolves the names now and then every Interval until ctx is done.
func (d *DynDNS) Run(ctx context.Context) {
	interval := d.Interval
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		d.Refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Refresh runs one round of lookups and reports the set if it changed. It
// says whether it did.
func (d *DynDNS) Refresh(ctx context.Context) bool {
	d.round.Lock()
	defer d.round.Unlock()
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	results := d.lookupAll(ctx)
	if ctx.Err() != nil {
		return false // a round cut short by shutdown says nothing
	}
	all, changed := d.apply(results, time.Now(), log)
	if changed && d.OnUpdate != nil {
		d.OnUpdate(all)
	}
	return changed
}

// apply records a round's results and returns the set of addresses and
// whether it differs from the one reported last.
func (d *DynDNS) apply(results []lookupResult, now time.Time, log *slog.Logger) ([]netip.Addr, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.names == nil {
		d.names = map[string]resolved{}
	}
	stale := d.Stale
	if stale <= 0 {
		stale = 24 * time.Hour
	}
	for i, name := range d.Names {
		r := results[i]
		old, had := d.names[name]
		switch {
		case r.err == nil:
			d.names[name] = resolved{r.addrs, now}
			if had && !slices.Equal(old.addrs, r.addrs) {
				log.Info("dyndns name moved", "name", name, "addrs", r.addrs, "was", old.addrs)
			}
		case had && now.Sub(old.at) > stale:
			delete(d.names, name)
			log.Warn("dyndns name not resolved; dropping its stale addresses", "name", name, "err", r.err,
				"addrs", old.addrs, "last_resolved", old.at)
		case had:
			log.Warn("dyndns name not resolved; keeping its last addresses", "name", name, "err", r.err, "addrs", old.addrs)
		default:
			log.Warn("dyndns name not resolved", "name", name, "err", r.err)
		}
	}
	for name := range d.names { // names no longer configured
		if !slices.Contains(d.Names, name) {
			delete(d.names, name)
		}
	}
	all := d.union()
	if d.once && slices.Equal(all, d.reported) || !d.once && len(all) == 0 {
		return all, false
	}
	d.once, d.reported = true, all
	return slices.Clone(all), true
}

type lookupResult struct {
	addrs []netip.Addr
	err   error
}

func (d *DynDNS) lookupAll(ctx context.Context) []lookupResult {
	res := make([]lookupResult, len(d.Names))
	var r Resolver = net.DefaultResolver
	if d.Resolver != nil {
		r = d.Resolver
	}
	timeout := d.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	sem := make(chan struct{}, concurrentLookups)
	var wg sync.WaitGroup
	for i, name := range d.Names {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			addrs, err := r.LookupNetIP(ctx, "ip", name)
			res[i] = lookupResult{usable(addrs), err}
			if err == nil && len(res[i].addrs) == 0 {
				res[i].err = &net.DNSError{Err: "no usable address", Name: name, IsNotFound: true}
			}
		})
	}
	wg.Wait()
	return res
}

// usable returns addrs unmapped, without zones, sorted and deduplicated,
// without the unspecified address (0.0.0.0 and ::, which DNS sinkholes
// and some dynamic-DNS services answer for a host that is offline).
func usable(addrs []netip.Addr) []netip.Addr {
	out := make([]netip.Addr, 0, len(addrs))
	for _, a := range addrs {
		if a = a.Unmap().WithZone(""); a.IsValid() && !a.IsUnspecified() {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out)
}

func (d *DynDNS) union() []netip.Addr {
	var all []netip.Addr
	for _, r := range d.names {
		all = append(all, r.addrs...)
	}
	slices.SortFunc(all, netip.Addr.Compare)
	return slices.Compact(all)
}

// Current returns each name's addresses in use (including the last good
// ones of names that now fail), for status and explanations.
func (d *DynDNS) Current() map[string][]netip.Addr {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string][]netip.Addr, len(d.names))
	for name, r := range d.names {
		out[name] = slices.Clone(r.addrs)
	}
	return out
}
