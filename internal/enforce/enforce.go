// Package enforce defines what an enforcer does: put bans into the kernel
// (or wherever the enforcer puts them), take them out, say what it holds,
// and clean up after itself. Implementations live in subpackages (nft, and
// later hostsdeny, route, hook); Fake is for tests.
//
// Enforcers know nothing of packets or detection.
package enforce

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"time"
)

// Ban is one entry an enforcer holds: a prefix blocked until Expires (zero
// for never). Enforcers that support timeouts let the kernel expire the
// entry itself, so bans end on time even if the daemon is not running.
type Ban struct {
	Prefix  netip.Prefix
	Expires time.Time
}

// Enforcer puts bans into effect.
type Enforcer interface {
	// Name identifies the enforcer in logs ("nftables").
	Name() string
	// Setup creates what the enforcer needs (tables, sets, rules) or adopts
	// what a previous run left, without touching anything that is not its
	// own. It is idempotent.
	Setup(ctx context.Context) error
	// Apply adds and removes entries in one batch. Adding an entry that is
	// present updates its expiry; removing an absent one is not an error.
	Apply(ctx context.Context, add []Ban, remove []netip.Prefix) error
	// Bans lists what the enforcer holds now, with remaining expiries.
	Bans(ctx context.Context) ([]Ban, error)
	// Teardown removes everything the enforcer created.
	Teardown(ctx context.Context) error
}

// Fake is an in-memory Enforcer for tests. It expires entries against Now.
type Fake struct {
	mu      sync.Mutex
	bans    map[netip.Prefix]time.Time
	Now     func() time.Time
	Applied int // Apply calls, to check batching
	SetUp   bool
	Err     error // returned by every call when set
}

// NewFake returns an empty fake.
func NewFake() *Fake { return &Fake{bans: map[netip.Prefix]time.Time{}, Now: time.Now} }

// Name implements Enforcer.
func (f *Fake) Name() string { return "fake" }

// Setup implements Enforcer.
func (f *Fake) Setup(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.SetUp = true
	return f.Err
}

// Apply implements Enforcer.
func (f *Fake) Apply(_ context.Context, add []Ban, remove []netip.Prefix) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	f.Applied++
	for _, p := range remove {
		delete(f.bans, p.Masked())
	}
	for _, b := range add {
		f.bans[b.Prefix.Masked()] = b.Expires
	}
	return nil
}

// Bans implements Enforcer.
func (f *Fake) Bans(context.Context) ([]Ban, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	now := f.Now()
	var out []Ban
	for p, exp := range f.bans {
		if !exp.IsZero() && !now.Before(exp) {
			delete(f.bans, p)
			continue
		}
		out = append(out, Ban{Prefix: p, Expires: exp})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Prefix.Addr().Less(out[j].Prefix.Addr()) })
	return out, nil
}

// Teardown implements Enforcer.
func (f *Fake) Teardown(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bans = map[netip.Prefix]time.Time{}
	f.SetUp = false
	return f.Err
}
