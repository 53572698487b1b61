package flowlog

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Outcome is how a connection attempt was answered.
type Outcome uint8

// Outcomes, from conntrack's status bits and the packets it counted.
const (
	OutcomeUnknown     Outcome = iota
	OutcomeEstablished         // the handshake completed (conntrack ASSURED / SEEN_REPLY with payload)
	OutcomeRefused             // answered by a RST or an ICMP error, never established
	OutcomeUnanswered          // no reply packet at all
)

var outcomeNames = [...]string{"unknown", "established", "refused", "unanswered"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// ParseOutcome is the inverse of Outcome.String.
func ParseOutcome(s string) (Outcome, error) {
	for i, n := range outcomeNames {
		if n == s {
			return Outcome(i), nil
		}
	}
	return 0, fmt.Errorf("flowlog: unknown outcome %q (want unknown, established, refused or unanswered)", s)
}

// Flow is one connection as conntrack saw it when it ended.
type Flow struct {
	Start, End time.Time // End zero: still open when written (the daemon was stopping)
	Proto      uint8     // IP protocol number: 6, 17, 1, 58 ...
	// Src and Dst are the connection as the initiator sent it: for a client
	// behind our NAT, its internal address before translation.
	Src, Dst netip.AddrPort
	// NATSrc and NATDst are the connection as seen outside the NAT (the
	// reverse of conntrack's reply tuple); equal to Src and Dst when the
	// connection was not translated.
	NATSrc, NATDst                                   netip.AddrPort
	Outcome                                          Outcome
	OrigPackets, OrigBytes, ReplyPackets, ReplyBytes uint64 // 0 when conntrack accounting is off
	Iface                                            string // the interface the connection came in on; "" unknown
	PID                                              uint32 // the local process that made it; 0 unknown
	UID                                              uint32 // valid only when PID != 0
	Comm                                             string // process name; "" unknown
}

// StillOpen reports whether the connection had not ended when it was written.
func (f *Flow) StillOpen() bool { return f.End.IsZero() }

// MaxStringLen bounds Iface and Comm. The kernel's own limits are 16 bytes
// (IFNAMSIZ, TASK_COMM_LEN); the margin is for names from elsewhere.
const MaxStringLen = 256

// Times must lie in [minTime, maxTime): the format stores Unix nanoseconds
// in an int64, and keeps math.MaxInt64 to mean "still open".
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, math.MaxInt64-1)
)

// ErrInvalidFlow is wrapped by Append's error for a flow it refuses.
var ErrInvalidFlow = errors.New("invalid flow")

// check says why f cannot be stored, or nil.
func (f *Flow) check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("flowlog: %w: %s", ErrInvalidFlow, fmt.Sprintf(format, args...))
	}
	switch {
	case f.Start.IsZero():
		return bad("no start time")
	case f.Start.Before(minTime) || !f.Start.Before(maxTime):
		return bad("start time %v out of range (1970 to 2262)", f.Start)
	case !f.End.IsZero() && (f.End.Before(minTime) || !f.End.Before(maxTime)):
		return bad("end time %v out of range (1970 to 2262)", f.End)
	case f.Outcome > OutcomeUnanswered:
		return bad("unknown outcome %d", f.Outcome)
	case len(f.Iface) > MaxStringLen:
		return bad("interface name of %d bytes (at most %d)", len(f.Iface), MaxStringLen)
	case len(f.Comm) > MaxStringLen:
		return bad("process name of %d bytes (at most %d)", len(f.Comm), MaxStringLen)
	}
	return nil
}

// Filter selects flows for Query. The zero Filter matches every flow.
type Filter struct {
	// Src matches a flow whose Src or NATSrc address is in the prefix, so
	// both the internal client and our public NAT address find it. Zero:
	// any.
	Src netip.Prefix
	// Dst matches a flow whose Dst or NATDst address is in the prefix.
	// Zero: any.
	Dst netip.Prefix
	// Port matches Dst.Port or NATDst.Port. 0: any.
	Port uint16
	// Proto matches the IP protocol. 0: any.
	Proto uint8
	// Since and Until select flows whose lifetime overlaps [Since, Until];
	// a zero bound is open. A flow still open when written (End zero)
	// counts as lasting for ever.
	Since, Until time.Time
	// Limit stops the query after that many flows; 0 or less: no limit.
	Limit int
}

// norm is a Filter prepared for matching: prefixes masked, bounds as
// nanoseconds.
type norm struct {
	Filter
	since, until int64 // minNanos / maxNanos when open
	src, dst     ipRange
	dstExact     bool // Dst is a single address: the block filters can answer it
}

func (f Filter) norm() (norm, error) {
	n := norm{Filter: f, since: minNanos, until: maxNanos}
	for _, p := range []*netip.Prefix{&n.Src, &n.Dst} {
		if *p == (netip.Prefix{}) {
			continue
		}
		if !p.IsValid() {
			return n, fmt.Errorf("flowlog: invalid prefix %v in filter", *p)
		}
		*p = p.Masked()
	}
	if n.Src.IsValid() {
		n.src = prefixIPs(n.Src)
	}
	if n.Dst.IsValid() {
		n.dst = prefixIPs(n.Dst)
	}
	n.dstExact = n.Dst.IsValid() && n.Dst.IsSingleIP()
	if !f.Since.IsZero() {
		n.since = clampNanos(f.Since)
	}
	if !f.Until.IsZero() {
		n.until = clampNanos(f.Until)
	}
	return n, nil
}

// Open bounds of a time range.
const (
	minNanos = math.MinInt64
	maxNanos = math.MaxInt64
)

// clampNanos is t in Unix nanoseconds, saturated at the int64 range.
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64 + 1
	case !t.Before(maxTime):
		return math.MaxInt64 - 1
	}
	return t.UnixNano()
}

// match is the exact test; block filters only ever give false positives.
// (flowlog_test.go has the same test on Flow, written from the Filter's
// documentation, as the oracle it is checked against.)
func (n *norm) match(r *rec) bool {
	if n.Proto != 0 && r.proto != n.Proto {
		return false
	}
	if n.Port != 0 && r.dport != n.Port && r.ndport != n.Port {
		return false
	}
	if n.Src.IsValid() && !n.src.has(r.src) && !n.src.has(r.nsrc) {
		return false
	}
	if n.Dst.IsValid() && !n.dst.has(r.dst) && !n.dst.has(r.ndst) {
		return false
	}
	if r.start > n.until {
		return false
	}
	if !r.open && r.end < n.since {
		return false
	}
	return true
}

// ipRange is the addresses of a prefix.
type ipRange struct{ lo, hi ip }

func (p ipRange) has(a ip) bool { return a.cmp(p.lo) >= 0 && a.cmp(p.hi) <= 0 }
