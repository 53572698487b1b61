package nft

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/enforce"
)

// MinTimeout is the shortest ban worth writing. A ban with less than this
// left counts as over: Apply does not add it (and removes the entry if it
// was there, since the caller asked for that expiry), and Bans does not
// list it. A second is far below any ban length policy uses, and above the
// time a batch takes to reach the kernel, so an element never gets a
// timeout that is already past when the kernel sees it.
const MinTimeout = time.Second

// maxMessageBytes bounds the elements of one netlink message (by
// elementBytes' generous estimate). Their list is one netlink attribute,
// whose length field is 16 bits; the library does not check, so larger
// lists would be silently corrupted.
const maxMessageBytes = 48 << 10

// Apply implements enforce.Enforcer in one netlink batch (one transaction:
// all of it happens or none).
//
// It works from a copy of the sets' elements and the bans they carry,
// removes and adds the requested bans, and writes the element differences.
// So adding a ban that is present updates its expiry (its element is
// deleted and re-added in the same batch, which also works on kernels
// older than 6.10 that cannot update a timeout in place), removing an
// absent one does nothing, and a call that changes nothing sends nothing.
//
// The copy is read from the kernel (one dump per set) the first time, and
// again whenever the nftables ruleset generation shows a commit that was
// not ours: any change to any table in the namespace, since the kernel
// keeps one generation for all. A dump of 100 000 elements costs about a
// second of kernel time, so on a host where another program commits often
// (kube-proxy, a firewall manager) large sets make Apply slower. Elements
// timing out do not change the generation; the copy knows their expiries.
// Changes to single addresses that no other ban covers touch only their
// own elements; others recompute the whole set in memory.
//
// Batch bans: the kernel's commit of an interval set takes time in
// proportion to the set's size, whatever the batch holds (about 12 ms at
// 100 000 elements on Linux 6.18, against 0.1 ms for an empty set), so
// 1 000 bans in one call cost little more than one.
//
// Addresses: a prefix is masked; an IPv4-mapped IPv6 prefix is the IPv4
// prefix it means. A single address is a /32 or /128, stored as the
// interval [addr, addr+1).
//
// Nested prefixes: the kernel rejects overlapping intervals, so a ban inside
// another is not written as is. If it ends no later than the outer one it
// is absorbed (no element; Bans does not list it; lifting the outer ban
// lifts it). If it outlasts the outer one it keeps its element, and the
// outer ban becomes the prefixes around it, tagged "part of OUTER" so that
// Bans reports the outer ban. Adjacent prefixes are separate intervals.
//
// Expiries are kept to the second, rounded up; bans with less than
// MinTimeout left are treated as over.
//
// If the sets are not what the copy says (an element timed out a moment
// before the write, or someone edited the set between read and write), the
// kernel rejects the batch; Apply then reads the sets again and retries,
// up to three times.
func (e *Enforcer) Apply(ctx context.Context, add []enforce.Ban, remove []netip.Prefix) error {
	var ch [2]changes // by family: 0 IPv4, 1 IPv6
	for _, p := range remove {
		q, ok := normalize(p)
		if !ok {
			return fmt.Errorf("removing ban: invalid prefix %v", p)
		}
		c := &ch[familyIndex(q)]
		c.remove = append(c.remove, q)
	}
	for _, b := range add {
		q, ok := normalize(b.Prefix)
		if !ok {
			return fmt.Errorf("adding ban: invalid prefix %v", b.Prefix)
		}
		c := &ch[familyIndex(q)]
		c.add = append(c.add, enforce.Ban{Prefix: q, Expires: b.Expires})
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		err = e.apply(ctx, ch)
		var c *conflictError
		if !errors.As(err, &c) {
			return err
		}
	}
	return err
}

// changes are the requested changes for one family.
type changes struct {
	add    []enforce.Ban
	remove []netip.Prefix
}

func familyIndex(p netip.Prefix) int {
	if p.Addr().Is4() {
		return 0
	}
	return 1
}

// conflictError is a batch the kernel rejected because the elements were
// not what we had just read.
type conflictError struct{ err error }

func (c *conflictError) Error() string { return c.err.Error() }
func (c *conflictError) Unwrap() error { return c.err }

// apply makes one attempt at an Apply.
func (e *Enforcer) apply(ctx context.Context, ch [2]changes) error {
	nl, err := e.dial(ctx)
	if err != nil {
		return err
	}
	defer nl.Close()
	gen, err := generation(nl)
	if err != nil {
		return e.wrap("reading the ruleset generation of", err)
	}
	fams := e.families()
	var diffs [2]elementDiff
	size := 0
	for i, f := range fams {
		if len(ch[i].add) == 0 && len(ch[i].remove) == 0 {
			continue
		}
		st, err := e.state(nl, i, f, gen)
		if err != nil {
			return err
		}
		diffs[i] = st.plan(ch[i], time.Now())
		size += diffs[i].estimate()
	}
	if diffs[0].empty() && diffs[1].empty() {
		for i, d := range diffs {
			if d.bans != nil {
				e.sets[i].commit(d) // bookkeeping only: bans already over
			}
		}
		return nil
	}

	// A connection with buffers sized for the batch.
	w, err := e.conn(ctx, size+64<<10)
	if err != nil {
		return err
	}
	now := time.Now()
	for i, d := range diffs {
		if err := queue(w, fams[i].set, d, now); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		e.forget()
		werr := e.wrap(fmt.Sprintf("writing %s to", describe(fams, diffs)), err)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EEXIST) {
			return &conflictError{werr}
		}
		return werr
	}
	after, gerr := generation(nl)
	for i, st := range e.sets {
		switch {
		case st == nil:
		case !st.valid || st.gen != gen:
			e.sets[i] = nil // a stale copy we did not use
		default:
			if diffs[i].bans != nil {
				st.commit(diffs[i])
			}
			// Our batch was the only commit since gen: the copy
			// still holds. Otherwise someone else changed the
			// ruleset meanwhile, and the next call reads again.
			if gerr != nil || after != gen+1 {
				e.sets[i] = nil
			} else {
				st.gen = after
			}
		}
	}
	return nil
}

// state returns the copy of set i, reading it if it is missing or the
// ruleset has changed since it was made.
func (e *Enforcer) state(nl *netlink.Conn, i int, f family, gen uint32) (*setState, error) {
	if st := e.sets[i]; st != nil && st.valid && st.gen == gen {
		return st, nil
	}
	e.sets[i] = nil
	before := time.Now()
	raw, err := dumpSet(nl, e.table.Name, f.set.Name)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("nftables set inet %s %s: %w", e.table.Name, f.set.Name, ErrNotSetUp)
	}
	if err != nil {
		return nil, e.wrap(fmt.Sprintf("reading set %q of", f.set.Name), err)
	}
	st, err := newSetState(raw, int(f.addrLength), before)
	if err != nil {
		return nil, fmt.Errorf("reading set %q of nftables table inet %s: %w", f.set.Name, e.table.Name, err)
	}
	// If the ruleset changed between the generation and the dump, the
	// next call finds a newer generation and reads again.
	st.valid, st.gen = true, gen
	e.sets[i] = st
	return st, nil
}

// forget drops the copies of the sets; the next call reads them.
func (e *Enforcer) forget() { e.sets = [2]*setState{} }

func (d elementDiff) estimate() int {
	n := 0
	for _, h := range d.del {
		n += 2 * elementBytes(h.start, "")
	}
	for _, p := range d.add {
		n += 2 * elementBytes(p.prefix.Addr(), ownerComment(p))
	}
	return n
}

func describe(fams [2]family, diffs [2]elementDiff) string {
	var parts []string
	for i, d := range diffs {
		if !d.empty() {
			parts = append(parts, fmt.Sprintf("set %q (%d intervals out, %d in)", fams[i].set.Name, len(d.del), len(d.add)))
		}
	}
	return strings.Join(parts, " and ")
}

// Bans implements enforce.Enforcer. Expiries are to the second; see Apply
// for how nested bans show.
func (e *Enforcer) Bans(ctx context.Context) ([]enforce.Ban, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	nl, err := e.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	gen, err := generation(nl)
	if err != nil {
		return nil, e.wrap("reading the ruleset generation of", err)
	}
	var out []enforce.Ban
	now := time.Now()
	for i, f := range e.families() {
		st, err := e.state(nl, i, f, gen)
		if err != nil {
			return nil, err
		}
		for p, exp := range st.live(now) {
			out = append(out, enforce.Ban{Prefix: p, Expires: exp})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].Prefix, out[j].Prefix
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c < 0
		}
		return a.Bits() < b.Bits()
	})
	return out, nil
}

// elementBytes is a generous estimate of one element's netlink encoding:
// attribute headers, flags, key, timeout and comment.
func elementBytes(a netip.Addr, comment string) int {
	return 48 + a.BitLen()/8 + len(comment)
}

// queue adds the batch messages for one set to w, in messages of at most
// maxMessageBytes: deletes first, so that a re-added element and an
// interval that replaces several do not collide with what they replace.
func queue(w *nftables.Conn, s *nftables.Set, d elementDiff, now time.Time) error {
	var batch []nftables.SetElement
	size := 0
	flush := func(send func(*nftables.Set, []nftables.SetElement) error, what string) error {
		if len(batch) == 0 {
			return nil
		}
		if err := send(s, batch); err != nil {
			return fmt.Errorf("%s %d elements of set %q: %w", what, len(batch), s.Name, err)
		}
		batch, size = nil, 0
		return nil
	}
	for _, h := range d.del {
		batch = append(batch, nftables.SetElement{Key: h.start.AsSlice()})
		if h.hasEnd {
			batch = append(batch, nftables.SetElement{Key: h.end.AsSlice(), IntervalEnd: true})
		}
		if size += 2 * elementBytes(h.start, ""); size >= maxMessageBytes {
			if err := flush(w.SetDeleteElements, "deleting"); err != nil {
				return err
			}
		}
	}
	if err := flush(w.SetDeleteElements, "deleting"); err != nil {
		return err
	}
	for _, p := range d.add {
		sp := spanOf(p.prefix)
		el := nftables.SetElement{Key: sp.start.AsSlice(), Comment: ownerComment(p)}
		if !p.expires.IsZero() {
			el.Timeout = max(p.expires.Sub(now), MinTimeout)
		}
		batch = append(batch, el)
		if sp.end.IsValid() {
			batch = append(batch, nftables.SetElement{Key: sp.end.AsSlice(), IntervalEnd: true})
		}
		if size += 2 * elementBytes(sp.start, el.Comment); size >= maxMessageBytes {
			if err := flush(w.SetAddElements, "adding"); err != nil {
				return err
			}
		}
	}
	return flush(w.SetAddElements, "adding")
}
