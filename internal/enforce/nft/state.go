package nft

import (
	"bytes"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// This file holds what the enforcer knows of one set's contents, and how a
// change to the bans becomes a change to the elements. No netlink here.

// ownerPrefix starts the comment of an element that carries out part of a
// wider ban (see decompose); `nft list set` shows it to the operator.
const ownerPrefix = "part of "

// held is an interval the kernel holds: a start element and, unless the
// interval runs to the top of the address space or to the next start, an
// end element.
type held struct {
	span
	hasEnd  bool
	expires time.Time // zero: no timeout
	comment string
}

type spanKey struct {
	start, end netip.Addr
	hasEnd     bool
}

func (h held) key() spanKey { return spanKey{h.start, h.end, h.hasEnd} }

func pieceKey(p netip.Prefix) spanKey {
	s := spanOf(p)
	return spanKey{s.start, s.end, s.end.IsValid()}
}

// heldOf is the interval a piece becomes once written.
func heldOf(p piece) held {
	s := spanOf(p.prefix)
	return held{span: s, hasEnd: s.end.IsValid(), expires: p.expires, comment: ownerComment(p)}
}

// setState is a copy of one set's contents: the intervals and the bans
// they carry out. It is valid while the ruleset generation is gen.
type setState struct {
	valid bool
	gen   uint32
	elems map[spanKey]held
	bans  map[netip.Prefix]time.Time
}

// newSetState reads the elements of a dump. Expiries are the kernel's
// remaining time added to before (the time just before the dump), rounded
// to the nearest second: we write them on whole seconds, and a dump takes
// far less than half a second.
func newSetState(raw []rawElem, addrLen int, before time.Time) (*setState, error) {
	// The kernel dumps interval sets in descending key order, the end of
	// an interval after the start of the next when they share a key.
	// Sort ascending, ends first on a tie, and pair each start with the
	// element after it.
	sort.Slice(raw, func(i, j int) bool {
		if c := bytes.Compare(raw[i].key, raw[j].key); c != 0 {
			return c < 0
		}
		return raw[i].end && !raw[j].end
	})
	st := &setState{elems: make(map[spanKey]held, len(raw)/2)}
	for i, el := range raw {
		if el.end {
			continue // read with its start; a lone end (nft adds one at 0.0.0.0) means nothing
		}
		start, ok := netip.AddrFromSlice(el.key)
		if !ok || len(el.key) != addrLen {
			return nil, fmt.Errorf("element key %x is not an address", el.key)
		}
		h := held{span: span{start: start}, comment: el.comment}
		if i+1 < len(raw) {
			h.end, _ = netip.AddrFromSlice(raw[i+1].key)
			h.hasEnd = raw[i+1].end
		}
		if el.timeout != 0 {
			h.expires = before.Add(el.expires).Round(time.Second)
		}
		st.elems[h.key()] = h
	}
	st.bans = bansOf(st.elems)
	return st, nil
}

// bansOf works out the bans a set's intervals carry out.
func bansOf(elems map[spanKey]held) map[netip.Prefix]time.Time {
	out := make(map[netip.Prefix]time.Time, len(elems))
	put := func(p netip.Prefix, exp time.Time) {
		if old, ok := out[p]; !ok || outlasts(exp, old) {
			out[p] = exp
		}
	}
	for _, h := range elems {
		if owner, ok := ownerOf(h); ok {
			put(owner, h.expires)
			continue
		}
		for _, p := range h.prefixes() {
			put(p, h.expires)
		}
	}
	return out
}

// live returns the bans that are not over at now.
func (st *setState) live(now time.Time) map[netip.Prefix]time.Time {
	out := make(map[netip.Prefix]time.Time, len(st.bans))
	for p, exp := range st.bans {
		if !ended(exp, now) {
			out[p] = exp
		}
	}
	return out
}

// ownerOf returns the wider ban an interval is part of, from its comment.
func ownerOf(h held) (netip.Prefix, bool) {
	s, ok := strings.CutPrefix(h.comment, ownerPrefix)
	if !ok {
		return netip.Prefix{}, false
	}
	owner, err := netip.ParsePrefix(s)
	if err != nil || owner != owner.Masked() || !owner.Contains(h.start) {
		return netip.Prefix{}, false
	}
	if h.end.IsValid() && !owner.Contains(h.end.Prev()) {
		return netip.Prefix{}, false
	}
	return owner, true
}

func ownerComment(p piece) string {
	if !p.owner.IsValid() {
		return ""
	}
	return ownerPrefix + p.owner.String()
}

// ended reports whether a ban ending at exp is over for our purposes.
func ended(exp, now time.Time) bool {
	return !exp.IsZero() && exp.Sub(now) < MinTimeout
}

// expired reports whether the kernel has timed an element out (it may
// not have garbage-collected it yet, but no longer matches, lists or
// deletes it).
func expired(exp, now time.Time) bool {
	return !exp.IsZero() && !exp.After(now)
}

// roundUp rounds an expiry up to the whole second; zero stays zero.
func roundUp(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	r := t.Truncate(time.Second)
	if r.Before(t) {
		r = r.Add(time.Second)
	}
	return r
}

// elementDiff is what one set needs: intervals to delete, pieces to add,
// and the bans the set carries out afterwards.
type elementDiff struct {
	del  []held
	add  []piece
	bans func(map[netip.Prefix]time.Time) // updates setState.bans after the write
}

func (d *elementDiff) empty() bool { return len(d.del) == 0 && len(d.add) == 0 }

// commit updates st to what the kernel holds once d is written.
func (st *setState) commit(d elementDiff) {
	for _, h := range d.del {
		delete(st.elems, h.key())
	}
	for _, p := range d.add {
		h := heldOf(p)
		st.elems[h.key()] = h
	}
	d.bans(st.bans)
}

// plan works out the element changes that carry out removes then adds.
// Changes to single addresses that no other ban covers, the daemon's usual
// case, touch only their own elements; anything else recomputes the
// whole set.
func (st *setState) plan(c changes, now time.Time) elementDiff {
	if d, ok := st.planHosts(c, now); ok {
		return d
	}
	state := st.live(now)
	for _, p := range c.remove {
		delete(state, p)
	}
	for _, b := range c.add {
		exp := roundUp(b.Expires)
		if ended(exp, now) {
			delete(state, b.Prefix)
			continue
		}
		state[b.Prefix] = exp
	}
	have := make([]held, 0, len(st.elems))
	var gone []held
	for _, h := range st.elems {
		if expired(h.expires, now) {
			gone = append(gone, h) // the kernel no longer has it: forget it, do not delete it
			continue
		}
		have = append(have, h)
	}
	d := diff(have, decompose(state))
	for _, h := range gone {
		delete(st.elems, h.key())
	}
	d.bans = func(bans map[netip.Prefix]time.Time) {
		clear(bans)
		for p, exp := range state {
			bans[p] = exp
		}
	}
	return d
}

// planHosts handles changes that are all to single addresses not inside
// any other (unexpired) ban: each is then exactly one element of its own.
func (st *setState) planHosts(c changes, now time.Time) (elementDiff, bool) {
	want := map[netip.Prefix]time.Time{} // zero Time with ok=false: remove
	order := make([]netip.Prefix, 0, len(c.add)+len(c.remove))
	present := map[netip.Prefix]bool{}
	note := func(p netip.Prefix, exp time.Time, keep bool) bool {
		if !p.IsSingleIP() || st.covered(p, now) {
			return false
		}
		if _, seen := present[p]; !seen {
			order = append(order, p)
		}
		present[p] = keep
		want[p] = exp
		return true
	}
	for _, p := range c.remove {
		if !note(p, time.Time{}, false) {
			return elementDiff{}, false
		}
	}
	for _, b := range c.add {
		exp := roundUp(b.Expires)
		if !note(b.Prefix, exp, !ended(exp, now)) {
			return elementDiff{}, false
		}
	}
	var d elementDiff
	for _, p := range order {
		k := pieceKey(p)
		h, had := st.elems[k]
		if had && expired(h.expires, now) {
			delete(st.elems, k)
			had = false
		}
		if !present[p] {
			// An element about to time out is left to the kernel (a
			// delete could race with the timeout and fail the
			// batch), and stays in the copy until it does, so that
			// banning the address again replaces it.
			if had && !ended(h.expires, now) {
				d.del = append(d.del, h)
			}
			continue
		}
		pc := piece{prefix: p, expires: want[p]}
		if had && h.expires.Equal(pc.expires) && commentFits(h.comment, pc) {
			continue
		}
		if had {
			d.del = append(d.del, h)
		}
		d.add = append(d.add, pc)
	}
	d.bans = func(bans map[netip.Prefix]time.Time) {
		for _, p := range order {
			if present[p] {
				bans[p] = want[p]
			} else {
				delete(bans, p)
			}
		}
	}
	return d, true
}

// covered reports whether a ban other than p itself, not yet timed out,
// contains p.
func (st *setState) covered(p netip.Prefix, now time.Time) bool {
	for bits := 0; bits < p.Bits(); bits++ {
		q := netip.PrefixFrom(p.Addr(), bits).Masked()
		if exp, ok := st.bans[q]; ok && !expired(exp, now) {
			return true
		}
	}
	return false
}

// diff returns the intervals to delete and the pieces to add so that the
// set holds exactly want. An interval that already matches a piece (same
// bounds, same expiry to the second, same owner) is left alone.
func diff(have []held, want []piece) elementDiff {
	wanted := make(map[spanKey]piece, len(want))
	for _, p := range want {
		wanted[pieceKey(p.prefix)] = p
	}
	var d elementDiff
	for _, h := range have {
		k := h.key()
		p, ok := wanted[k]
		if !h.hasEnd && h.end.IsValid() {
			ok = false // a start followed by a start: never ours
		}
		if ok && p.expires.Equal(h.expires) && commentFits(h.comment, p) {
			delete(wanted, k)
			continue
		}
		d.del = append(d.del, h)
	}
	for _, p := range want {
		if _, ok := wanted[pieceKey(p.prefix)]; ok {
			d.add = append(d.add, p)
		}
	}
	return d
}

// commentFits reports whether an element's comment is right for p: the
// owner tag if p has one, and otherwise anything but an owner tag (an
// operator's own comment on an element is left alone).
func commentFits(comment string, p piece) bool {
	if p.owner.IsValid() {
		return comment == ownerComment(p)
	}
	return !strings.HasPrefix(comment, ownerPrefix)
}
