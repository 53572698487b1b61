// Package policy turns findings into decisions: it applies the allow and
// ignore lists, the never-block guards, the decoy rule, the global ban-rate
// cap, escalation for repeat offenders and dry-run. A decision says what to
// do, for how long and why — including why nothing was done.
//
// It knows nothing of packets or firewalls: the host's guards and the
// offence history come in through small interfaces.
package policy

import (
	"fmt"
	"math"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// Decoys says what to do with a decoy group (nmap -D).
type Decoys string

// Decoy rules.
const (
	DecoysBanResponsive Decoys = "ban-responsive"
	DecoysBanAll        Decoys = "ban-all"
	DecoysBanNone       Decoys = "ban-none"
)

// Config is the policy's settings.
type Config struct {
	DryRun           bool
	BanOn            detect.Verdict
	Allow            []netip.Prefix
	Ignore           []netip.Prefix
	MaxBansPerMinute int
	BanTime          time.Duration
	Factor           float64       // ban time multiplier per repeat offence
	Period           time.Duration // offences counted within this period
	PermanentAfter   int           // the Nth offence is permanent; 0 never
	MaxBanTime       time.Duration
	Decoys           Decoys
}

// Guarder answers whether an address must never be blocked (loopback, own
// addresses, gateways, nameservers, live SSH peers), checking live state.
type Guarder interface {
	GuardNow(a netip.Addr) (reason string, guarded bool)
}

// History counts a source's earlier offences for escalation.
type History interface {
	Offences(a netip.Addr, since time.Time) (int, error)
}

// Policy decides. It is safe for concurrent use.
type Policy struct {
	cfg     Config
	guard   Guarder
	history History
	now     func() time.Time

	allow  atomic.Pointer[bart.Table[string]] // prefix -> where it came from
	ignore atomic.Pointer[bart.Table[string]]
	listMu sync.Mutex // serialises list updates (copy-on-write)

	rateMu sync.Mutex
	tokens float64
	filled time.Time
}

// New returns a policy. guard and history may be nil (tests, analyze).
func New(cfg Config, guard Guarder, history History) *Policy {
	p := &Policy{cfg: cfg, guard: guard, history: history, now: time.Now}
	allow, ignore := &bart.Table[string]{}, &bart.Table[string]{}
	for _, pf := range cfg.Allow {
		allow.Insert(pf.Masked(), "config")
	}
	for _, pf := range cfg.Ignore {
		ignore.Insert(pf.Masked(), "config")
	}
	p.allow.Store(allow)
	p.ignore.Store(ignore)
	p.tokens = float64(cfg.MaxBansPerMinute)
	p.filled = p.now()
	return p
}

// SetClock replaces the clock (tests).
func (p *Policy) SetClock(now func() time.Time) {
	p.now = now
	p.filled = now()
}

// Ignored reports whether a's packets should not even be analysed. It is
// called for every packet: a lock-free lookup in an immutable table.
func (p *Policy) Ignored(a netip.Addr) bool {
	_, ok := p.ignore.Load().Lookup(a.Unmap())
	return ok
}

// Allowed returns the allow-list prefix that covers a, if any.
func (p *Policy) Allowed(a netip.Addr) (netip.Prefix, bool) {
	pfx, _, ok := p.allow.Load().LookupPrefixLPM(decision.HostPrefix(a))
	return pfx, ok
}

// AddList adds a prefix to the allow or ignore list at run time.
func (p *Policy) AddList(list string, pfx netip.Prefix, origin string) error {
	t, err := p.list(list)
	if err != nil {
		return err
	}
	p.listMu.Lock()
	defer p.listMu.Unlock()
	t.Store(t.Load().InsertPersist(pfx.Masked(), origin))
	return nil
}

// RemoveList removes a prefix from a list; it reports whether it was there.
func (p *Policy) RemoveList(list string, pfx netip.Prefix) (bool, error) {
	t, err := p.list(list)
	if err != nil {
		return false, err
	}
	p.listMu.Lock()
	defer p.listMu.Unlock()
	cur := t.Load()
	if _, ok := cur.Get(pfx.Masked()); !ok {
		return false, nil
	}
	t.Store(cur.DeletePersist(pfx.Masked()))
	return true, nil
}

// ReplaceOrigin makes the entries of a list that came from origin exactly
// pfxs, in one atomic step: dynamic entries (host names re-resolved,
// countries from a GeoIP database) are replaced whole when they change, and
// an entry from elsewhere (the configuration, an admin) for the same prefix
// is left as it is.
func (p *Policy) ReplaceOrigin(list, origin string, pfxs []netip.Prefix) error {
	t, err := p.list(list)
	if err != nil {
		return err
	}
	want := make(map[netip.Prefix]bool, len(pfxs))
	for _, pf := range pfxs {
		want[pf.Masked()] = true
	}
	p.listMu.Lock()
	defer p.listMu.Unlock()
	next := t.Load().Clone()
	for pf, o := range t.Load().All() {
		if o == origin && !want[pf] {
			next.Delete(pf)
		}
	}
	for pf := range want {
		if _, ok := next.Get(pf); !ok {
			next.Insert(pf, origin)
		}
	}
	t.Store(next)
	return nil
}

// List returns a list's entries and where each came from.
func (p *Policy) List(list string) (map[netip.Prefix]string, error) {
	t, err := p.list(list)
	if err != nil {
		return nil, err
	}
	out := map[netip.Prefix]string{}
	for pfx, origin := range t.Load().All() {
		out[pfx] = origin
	}
	return out, nil
}

func (p *Policy) list(name string) (*atomic.Pointer[bart.Table[string]], error) {
	switch name {
	case "allow":
		return &p.allow, nil
	case "ignore":
		return &p.ignore, nil
	}
	return nil, fmt.Errorf("unknown list %q (want allow or ignore)", name)
}

// Decide returns the decision a finding leads to. ok is false when the
// finding asks for nothing (its verdict is below ban_on). A finding that
// asks for a ban but does not get one yields a Watch decision saying why.
func (p *Policy) Decide(f *detect.Finding) (d decision.Decision, ok bool) {
	if f.Verdict < p.cfg.BanOn {
		return d, false
	}
	now := p.now()
	src := f.Src.Unmap()
	d = decision.Decision{
		ID:        decision.NewID(),
		Kind:      decision.Ban,
		Target:    decision.HostPrefix(src),
		Created:   now,
		Reason:    f.Reason,
		FindingID: f.ID,
		By:        "detector",
	}
	watch := func(why string) (decision.Decision, bool) {
		d.Kind, d.NotActed, d.Expires = decision.Watch, why, time.Time{}
		return d, true
	}
	if f.Direction == probe.DirOutbound {
		// This host scanning others: banning its own address would cut it
		// off. Reported (alerts.on: watch), not acted upon.
		return watch("outbound: this host is the source; reported, not blocked")
	}
	if f.Direction == probe.DirForwarded && f.Client != nil && f.Client.NAT {
		// An internal client behind our NAT scanning others: a ban would
		// cut a customer or a household off. Reported, and restricted only
		// as outbound.response says.
		return watch("forwarded: an internal client behind this host's NAT; reported, not banned")
	}
	if why := notUnicast(src); why != "" {
		return watch(why)
	}
	if pfx, ok := p.Allowed(src); ok {
		return watch("allow list: " + pfx.String())
	}
	if p.guard != nil {
		if why, g := p.guard.GuardNow(src); g {
			return watch("guard: " + why)
		}
	}
	if why := p.decoyRule(f); why != "" {
		return watch(why)
	}
	// Escalation before the rate cap, so the log says what would have been.
	d.Offence = 1
	if p.history != nil {
		n, err := p.history.Offences(src, now.Add(-p.cfg.Period))
		if err == nil {
			d.Offence = n + 1
		}
	}
	if dur := p.banTime(d.Offence); dur > 0 {
		d.Expires = now.Add(dur)
	}
	if p.cfg.DryRun {
		// Keep the would-be expiry: the record says what a real run would do.
		d.DryRun, d.Kind, d.NotActed = true, decision.Watch, "dry-run"
		return d, true
	}
	if !p.take(now) {
		return watch(fmt.Sprintf("rate cap: at most %d new bans a minute", p.cfg.MaxBansPerMinute))
	}
	return d, true
}

// notUnicast refuses addresses no real scanner has: unspecified (and the
// 0.0.0.0/8 block redacted reports use), multicast, broadcast.
func notUnicast(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "no source address"
	case a.IsUnspecified(), a.Is4() && a.As4()[0] == 0:
		return "not a real source address (0.0.0.0/8)"
	case a.IsMulticast(), a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "not a unicast source address"
	}
	return ""
}

// decoyRule applies policy.decoys to a member of a decoy group.
func (p *Policy) decoyRule(f *detect.Finding) string {
	if len(f.Evidence.Decoys) == 0 {
		return ""
	}
	switch p.cfg.Decoys {
	case DecoysBanAll:
		return ""
	case DecoysBanNone:
		return fmt.Sprintf("decoys: one of %d sources probing in lockstep (policy.decoys: ban-none)", len(f.Evidence.Decoys)+1)
	}
	if f.Responsive {
		return ""
	}
	return fmt.Sprintf("decoys: one of %d sources probing in lockstep, and this one never answered our replies, so it is probably a spoofed decoy (policy.decoys: ban-responsive)", len(f.Evidence.Decoys)+1)
}

// banTime is how long the nth offence within the period is banned; 0 means
// permanent.
func (p *Policy) banTime(offence int) time.Duration {
	if p.cfg.PermanentAfter > 0 && offence >= p.cfg.PermanentAfter {
		return 0
	}
	d := float64(p.cfg.BanTime) * math.Pow(p.cfg.Factor, float64(offence-1))
	if max := float64(p.cfg.MaxBanTime); p.cfg.MaxBanTime > 0 && d > max {
		d = max
	}
	return time.Duration(d)
}

// take consumes one ban from a token bucket that refills MaxBansPerMinute a
// minute, with a burst of the same size.
func (p *Policy) take(now time.Time) bool {
	p.rateMu.Lock()
	defer p.rateMu.Unlock()
	rate := float64(p.cfg.MaxBansPerMinute)
	p.tokens = math.Min(rate, p.tokens+now.Sub(p.filled).Minutes()*rate)
	p.filled = now
	if p.tokens < 1 {
		return false
	}
	p.tokens--
	return true
}
