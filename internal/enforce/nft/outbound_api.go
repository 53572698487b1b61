package nft

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// ErrOutboundOff: RestrictOutbound was called on an Enforcer whose
// configuration does not enable outbound restrictions.
var ErrOutboundOff = errors.New("outbound restrictions are not enabled (Config.Outbound.Enable)")

// OutboundRule restricts one source's new outbound connections. Exactly one
// of UID, CgroupPath (or CgroupID) and Client says whose.
type OutboundRule struct {
	// UID restricts the sockets this user owns (meta skuid: the fsuid of
	// the process that created the socket, raw sockets included).
	UID *uint32
	// CgroupPath restricts the sockets created by processes in this cgroup
	// v2 or below it: a path relative to the v2 root, such as
	// "system.slice/foo.service".
	CgroupPath string
	// CgroupID is the cgroup's id (its inode number in the v2
	// hierarchy). OutboundRestrictions fills it in; when set on input it
	// is used instead of resolving CgroupPath (a cgroup that no longer
	// exists can still be lifted by id).
	CgroupID uint64
	// Client restricts new connections a router forwards from this
	// address.
	Client netip.Addr
	Mode   OutboundMode
	// Until is when the kernel lifts the restriction by itself; zero
	// means never. Kept to the second.
	Until time.Time
	// Reason is stored with the restriction (an element comment of at
	// most 128 bytes) and read back by OutboundRestrictions.
	Reason string
}

func (r OutboundRule) String() string {
	var who string
	switch {
	case r.UID != nil:
		who = fmt.Sprintf("uid %d", *r.UID)
	case r.CgroupPath != "":
		who = fmt.Sprintf("cgroup %q", r.CgroupPath)
	case r.CgroupID != 0:
		who = fmt.Sprintf("cgroup id %d", r.CgroupID)
	default:
		who = "client " + r.Client.String()
	}
	return r.Mode.String() + " " + who
}

// outSubject is a rule's source as a set key.
type outSubject struct {
	kind outKind
	key  []byte // nil: a cgroup path that does not exist (LiftOutbound only)
	path string // cgroup path, cleaned
}

// subject checks r and turns its source into a set key. A cgroup path is
// resolved to its id; when it does not exist, lifting gets a subject
// without a key (the elements are then found by their comments).
func (e *Enforcer) subject(r OutboundRule, lifting bool) (outSubject, error) {
	n := 0
	for _, set := range []bool{r.UID != nil, r.CgroupPath != "" || r.CgroupID != 0, r.Client.IsValid()} {
		if set {
			n++
		}
	}
	if n != 1 {
		return outSubject{}, fmt.Errorf("outbound rule: need exactly one of UID, CgroupPath and Client, got %d", n)
	}
	switch {
	case r.UID != nil:
		return outSubject{kind: kindUID, key: uidKey(*r.UID)}, nil
	case r.Client.IsValid():
		a := r.Client.Unmap().WithZone("")
		if a.Is4() {
			return outSubject{kind: kindClient4, key: a.AsSlice()}, nil
		}
		return outSubject{kind: kindClient6, key: a.AsSlice()}, nil
	}
	s := outSubject{kind: kindCgroup}
	if r.CgroupPath != "" {
		p, level, err := cleanCgroupPath(r.CgroupPath)
		if err != nil {
			return s, err
		}
		s.path = p
		root, depth, err := e.cgroupRoot()
		if err != nil {
			return s, err
		}
		if level+depth > int(e.cfg.Outbound.CgroupLevels) {
			return s, fmt.Errorf("cgroup %q is at level %d; the rules match levels 1 to %d (Outbound.CgroupLevels)",
				p, level+depth, e.cfg.Outbound.CgroupLevels)
		}
		if r.CgroupID == 0 {
			id, err := cgroupID(root, p)
			if errors.Is(err, unix.ENOENT) && lifting {
				return s, nil
			}
			if err != nil {
				return s, err
			}
			s.key = cgroupKey(id)
			return s, nil
		}
	}
	s.key = cgroupKey(r.CgroupID)
	return s, nil
}

// RestrictOutbound restricts a source's new outbound connections until
// r.Until, in one transaction. It is idempotent: restricting a source that
// already is restricted in that mode keeps the later of the two expiries
// (and the reason that goes with it), so a repeated finding extends a
// restriction and never shortens it; to shorten one, lift it first. A
// source may be both throttled and blocked; the block wins while it lasts.
// An Until less than MinTimeout away restricts nothing.
func (e *Enforcer) RestrictOutbound(ctx context.Context, r OutboundRule) error {
	if !e.outboundOn() {
		return ErrOutboundOff
	}
	if r.Mode != OutboundBlock && r.Mode != OutboundThrottle {
		return fmt.Errorf("restricting outbound: invalid mode %v", r.Mode)
	}
	s, err := e.subject(r, false)
	if err != nil {
		return fmt.Errorf("restricting outbound: %w", err)
	}
	now := time.Now()
	until := roundUp(r.Until)
	if ended(until, now) {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	set := e.outSet(s.kind, r.Mode)
	elems, err := e.dumpOut(ctx, set.Name)
	if err != nil {
		return err
	}
	for _, el := range elems {
		if bytes.Equal(el.key, s.key) && lasts(el, until, now) {
			return nil
		}
	}
	el := nftables.SetElement{Key: s.key, Comment: outComment(s, r.Reason)}
	if !until.IsZero() {
		el.Timeout = max(until.Sub(now), MinTimeout)
	}
	c, err := e.conn(ctx, 0)
	if err != nil {
		return err
	}
	// Add (a no-op if present), delete, add: the element ends up with the
	// new timeout whether or not it was there, even if it timed out since
	// the dump, and on kernels before 6.10 that cannot update a timeout in
	// place.
	if err := replaceElem(c, set, s.key, &el); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return e.wrap(fmt.Sprintf("restricting outbound (%v) in", r), err)
	}
	return nil
}

// LiftOutbound lifts a restriction in one transaction; lifting one that is
// not there is not an error. A Mode of 0 lifts both modes. A cgroup path
// lifts the element of the cgroup's id and those whose comment names the
// path (a cgroup removed and created again has a new id).
func (e *Enforcer) LiftOutbound(ctx context.Context, r OutboundRule) error {
	if !e.outboundOn() {
		return nil
	}
	modes := outModes[:]
	switch r.Mode {
	case 0:
	case OutboundBlock, OutboundThrottle:
		modes = []OutboundMode{r.Mode}
	default:
		return fmt.Errorf("lifting outbound: invalid mode %v", r.Mode)
	}
	s, err := e.subject(r, true)
	if err != nil {
		return fmt.Errorf("lifting outbound: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.conn(ctx, 0)
	if err != nil {
		return err
	}
	n := 0
	for _, m := range modes {
		set := e.outSet(s.kind, m)
		keys := [][]byte{}
		if s.key != nil {
			keys = append(keys, s.key)
		}
		if s.path != "" {
			elems, err := e.dumpOut(ctx, set.Name)
			if err != nil {
				return err
			}
			for _, el := range elems {
				if p, _ := parseOutComment(kindCgroup, el.comment); p == s.path &&
					!slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, el.key) }) {
					keys = append(keys, el.key)
				}
			}
		}
		for _, k := range keys {
			if err := replaceElem(c, set, k, nil); err != nil {
				return err
			}
			n++
		}
	}
	if n == 0 {
		return nil
	}
	if err := c.Flush(); err != nil {
		return e.wrap(fmt.Sprintf("lifting outbound (%v) in", r), err)
	}
	return nil
}

// replaceElem queues add, delete and, with el, add again: the delete never
// fails, as the key is there by then.
func replaceElem(c *nftables.Conn, set *nftables.Set, key []byte, el *nftables.SetElement) error {
	err := errors.Join(
		c.SetAddElements(set, []nftables.SetElement{{Key: key, Timeout: MinTimeout}}),
		c.SetDeleteElements(set, []nftables.SetElement{{Key: key}}))
	if el != nil {
		err = errors.Join(err, c.SetAddElements(set, []nftables.SetElement{*el}))
	}
	if err != nil {
		return fmt.Errorf("set %q: %w", set.Name, err)
	}
	return nil
}

// lasts reports whether an element lasts at least until until (to the
// second).
func lasts(el rawElem, until, now time.Time) bool {
	if el.timeout == 0 {
		return true
	}
	return !until.IsZero() && !now.Add(el.expires).Before(until.Add(-time.Second))
}

// OutboundRestrictions returns the restrictions the kernel holds, to
// reconcile with after a restart; Until is to the second, restrictions
// with less than MinTimeout left are not listed. Elements an operator
// added with nft are listed too (cgroups then by the path found for their
// id under the v2 root, or by id alone if it no longer exists).
func (e *Enforcer) OutboundRestrictions(ctx context.Context) ([]OutboundRule, error) {
	if !e.outboundOn() {
		return nil, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []OutboundRule
	unnamed := map[uint64][]int{} // cgroup ids without a path in their comment → indexes in out
	for k := range outKinds {
		for _, m := range outModes {
			now := time.Now()
			elems, err := e.dumpOut(ctx, outSetName(outKind(k), m))
			if err != nil {
				return nil, err
			}
			for _, el := range elems {
				if el.timeout != 0 && el.expires < MinTimeout {
					continue
				}
				r := OutboundRule{Mode: m}
				if el.timeout != 0 {
					// Written on whole seconds; the kernel keeps
					// jiffies, a few ms either way (as newSetState).
					r.Until = now.Add(el.expires).Round(time.Second)
				}
				if err := fromKey(&r, outKind(k), el); err != nil {
					return nil, err
				}
				if outKind(k) == kindCgroup && r.CgroupPath == "" {
					unnamed[r.CgroupID] = append(unnamed[r.CgroupID], len(out))
				}
				out = append(out, r)
			}
		}
	}
	if len(unnamed) > 0 {
		if root, _, err := e.cgroupRoot(); err == nil {
			for id, p := range findCgroups(root, int(e.cfg.Outbound.CgroupLevels), unnamed) {
				for _, i := range unnamed[id] {
					out[i].CgroupPath = p
				}
			}
		}
	}
	slices.SortFunc(out, compareRules)
	return out, nil
}

// fromKey fills in r's source and reason from an element of a kind k set.
func fromKey(r *OutboundRule, k outKind, el rawElem) error {
	want := int(outKinds[k].key.Bytes)
	if len(el.key) != want {
		return fmt.Errorf("outbound set of %s: element key of %d bytes, want %d", outKinds[k].whose, len(el.key), want)
	}
	path, reason := parseOutComment(k, el.comment)
	r.Reason = reason
	switch k {
	case kindUID:
		uid := keyUID(el.key)
		r.UID = &uid
	case kindCgroup:
		r.CgroupID, r.CgroupPath = keyCgroup(el.key), path
	default:
		r.Client, _ = netip.AddrFromSlice(el.key)
	}
	return nil
}

func compareRules(a, b OutboundRule) int {
	kind := func(r OutboundRule) int {
		switch {
		case r.UID != nil:
			return 0
		case r.Client.IsValid():
			return 2
		}
		return 1
	}
	if c := cmp.Compare(kind(a), kind(b)); c != 0 {
		return c
	}
	if a.UID != nil && b.UID != nil {
		if c := cmp.Compare(*a.UID, *b.UID); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(a.CgroupID, b.CgroupID); c != 0 {
		return c
	}
	if c := a.Client.Compare(b.Client); c != 0 {
		return c
	}
	return cmp.Compare(a.Mode, b.Mode)
}

// dumpOut returns the elements of one of the outbound sets.
func (e *Enforcer) dumpOut(ctx context.Context, set string) ([]rawElem, error) {
	nl, err := e.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	elems, err := dumpSet(nl, e.table.Name, set)
	if errors.Is(err, syscall.ENOENT) {
		return nil, fmt.Errorf("nftables set %q of table inet %s: %w", set, e.table.Name, ErrNotSetUp)
	}
	if err != nil {
		return nil, e.wrap(fmt.Sprintf("listing set %q of", set), err)
	}
	return elems, nil
}

// Element comments: the reason, and for a cgroup first its path
// ("cgroup=PATH REASON"), so that OutboundRestrictions can name a cgroup
// that no longer exists and LiftOutbound find its elements by path. nft
// accepts comments of up to 128 bytes; a path that does not fit, or has
// white space in it, is left out (found by id instead).
const (
	maxCommentBytes = 128
	cgroupTag       = "cgroup="
)

func outComment(s outSubject, reason string) string {
	reason = strings.TrimSpace(reason)
	if s.kind == kindCgroup && s.path != "" && !strings.ContainsAny(s.path, " \t\n") &&
		len(cgroupTag)+len(s.path) <= maxCommentBytes {
		reason = strings.TrimSpace(cgroupTag + s.path + " " + reason)
	}
	return truncateUTF8(reason, maxCommentBytes)
}

func parseOutComment(k outKind, c string) (path, reason string) {
	if k != kindCgroup {
		return "", c
	}
	rest, ok := strings.CutPrefix(c, cgroupTag)
	if !ok {
		return "", c
	}
	path, reason, _ = strings.Cut(rest, " ")
	return path, reason
}

func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
