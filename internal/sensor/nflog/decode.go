package nflog

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// decoder turns datagrams of log messages into probes. One goroutine uses it
// (Run's); its counters may be read from any goroutine. It allocates
// nothing per message once every group, prefix and unknown interface has
// been seen once.
type decoder struct {
	host   Hosty
	groups []*group // few: a linear scan beats a map
	p      probe.Probe
	m      Meta
	now    func() time.Time
	readAt time.Time // when the datagram being decoded was read

	unknown map[uint32]string // names made up for interfaces the host view does not know

	datagrams, messages, probes, ignored, noPayload, malformed, otherMsgs atomic.Uint64
	firstProblem                                                          atomic.Pointer[string]

	prefixMu      sync.Mutex
	prefixes      map[string]*uint64
	otherPrefixes uint64
}

// group is one bound log group and its counts.
type group struct {
	num     uint16
	own     bool
	outcome probe.Outcome

	messages, probes, lost atomic.Uint64
	seq                    uint32 // the next sequence number expected
	seqKnown               bool
}

const (
	// maxPrefixes bounds the per-prefix counts: a ruleset has a handful of
	// log prefixes; more distinct ones than this are counted together.
	maxPrefixes  = 64
	maxPrefixLen = 128 // NF_LOG_PREFIXLEN

	// A kernel timestamp is believed within this window around the time of
	// reading: a message waits in the socket for milliseconds, seconds
	// under a flood, never minutes; anything else is a clock problem.
	timestampPast = 10 * time.Minute
	timestampNext = time.Minute
)

func newDecoder(h Hosty, groups []*group) *decoder {
	return &decoder{host: h, groups: groups, now: time.Now, prefixes: map[string]*uint64{}}
}

func (d *decoder) group(num uint16) *group {
	for _, g := range d.groups {
		if g.num == num {
			return g
		}
	}
	return nil
}

// datagram handles every message of one datagram read from the socket,
// calling out for each probe.
func (d *decoder) datagram(b []byte, out func(*probe.Probe, *Meta)) {
	d.datagrams.Add(1)
	// One clock reading per datagram: the messages of a batch were read
	// together, and the clock was a third of the parsing time per message.
	d.readAt = d.now()
	for {
		m, rest, ok, bad := nextMessage(b)
		if bad {
			d.problem(func() string {
				return fmt.Sprintf("datagram %d: a netlink message header that does not fit (%d bytes left)", d.datagrams.Load(), len(b))
			})
		}
		if !ok {
			return
		}
		b = rest
		switch m.typ {
		case msgPacket:
		case nlmsgNoop, nlmsgDone: // a batch of several messages ends with NLMSG_DONE
			continue
		default:
			// NLMSG_ERROR (a late acknowledgement) or something new: not
			// ours to interpret while reading packets.
			d.otherMsgs.Add(1)
			continue
		}
		d.messages.Add(1)
		if g := d.message(m.body); g != nil {
			d.probes.Add(1)
			g.probes.Add(1)
			out(&d.p, &d.m)
		}
	}
}

// message turns one NFULNL_MSG_PACKET body into d.p and d.m and returns
// the probe's group, or nil when the message is not a probe (counted as
// ignored or malformed).
func (d *decoder) message(body []byte) *group {
	m := &d.m
	payload, err := parsePacket(body, m)
	if err != nil {
		d.problem(func() string { return fmt.Sprintf("message %d: %v", d.messages.Load(), err) })
		return nil
	}
	g := d.group(m.Group)
	if g == nil {
		// Only the kernel (or a root process) can send to our socket, and
		// the kernel sends only the groups we bound.
		d.problem(func() string {
			return fmt.Sprintf("message %d: group %d, which this sensor did not bind", d.messages.Load(), m.Group)
		})
		return nil
	}
	g.messages.Add(1)
	d.sequence(g, m)
	if len(m.Prefix) > 0 {
		d.countPrefix(m.Prefix)
	}
	if len(payload) == 0 {
		d.noPayload.Add(1)
		return nil
	}
	if m.HWProto != 0 && m.HWProto != 0x0800 && m.HWProto != 0x86dd {
		d.ignored.Add(1) // ARP and the like, logged by a bridge or netdev chain
		return nil
	}
	p := &d.p
	*p = probe.Probe{}
	if err := probe.DecodeIP(payload, p); err != nil && !(errors.Is(err, probe.ErrTruncated) && usable(p)) {
		d.problem(func() string {
			return fmt.Sprintf("message %d (group %d): %v", d.messages.Load(), m.Group, err)
		})
		return nil
	}
	p.Time = d.timestamp(m.Timestamp)
	p.Sensor = probe.SensorNFLog
	p.Outcome = g.outcome
	p.Direction = d.direction(m, p.Src.Addr(), p.Dst.Addr())
	var ifindex uint32
	switch {
	case p.Direction == probe.DirOutbound || m.InIndex == 0:
		ifindex = m.OutIndex
	default:
		ifindex = m.InIndex
	}
	p.Iface = d.ifname(ifindex)
	return g
}

// sequence counts the messages the kernel numbered but we never got: it
// drops a whole batch when our socket's buffer is full.
func (d *decoder) sequence(g *group, m *Meta) {
	if !m.HasSeq {
		return
	}
	if g.seqKnown {
		// Gaps of more than half the number space are reordering or a
		// forged message, not loss.
		if gap := m.Seq - g.seq; gap != 0 && gap < 1<<31 {
			g.lost.Add(uint64(gap))
		}
	}
	g.seq, g.seqKnown = m.Seq+1, true
}

// timestamp returns the kernel's receive time when it has one that is
// plausible, else the time of reading. Since Linux 5.18 the kernel sends a
// timestamp only at prerouting, input and forward, and only when it has
// one: when something on the host asked for packet timestamps (an
// AF_PACKET socket such as the packet sensor's does). The plausibility
// check keeps a wrong clock in a message from dating a probe.
func (d *decoder) timestamp(ts time.Time) time.Time {
	now := d.readAt
	if ts.IsZero() || ts.Before(now.Add(-timestampPast)) || ts.After(now.Add(timestampNext)) {
		return now
	}
	return ts
}

// direction says which way the packet went, from the hook it was logged at
// and the host's addresses. Input and output are definite: the kernel
// delivered the packet here or sent it from here. At prerouting a packet
// is inbound when addressed to this host and forwarded otherwise; at
// postrouting it is outbound when sent from one of the host's addresses,
// and otherwise forwarded on a router, or outbound from a host that does
// not forward (it can only have been made here, with a spoofed source: a
// scanner's decoys), as the packet sensor decides.
func (d *decoder) direction(m *Meta, src, dst netip.Addr) probe.Direction {
	switch m.Hook {
	case HookInput:
		return probe.DirInbound
	case HookOutput:
		return probe.DirOutbound
	case HookForward:
		return probe.DirForwarded
	case HookPrerouting:
		if d.host.IsLocal(dst) {
			return probe.DirInbound
		}
		return probe.DirForwarded
	case HookPostrouting:
		if d.host.IsLocal(src) || !d.host.Forwarding() {
			return probe.DirOutbound
		}
		return probe.DirForwarded
	}
	return probe.DirUnknown
}

func (d *decoder) ifname(ifindex uint32) string {
	if ifindex == 0 {
		return ""
	}
	if l, ok := d.host.LinkByIndex(int(ifindex)); ok {
		return l.Name
	}
	if n, ok := d.unknown[ifindex]; ok {
		return n
	}
	if d.unknown == nil || len(d.unknown) > 64 {
		d.unknown = map[uint32]string{} // interfaces come and go; stay small
	}
	n := "if" + strconv.FormatUint(uint64(ifindex), 10)
	d.unknown[ifindex] = n
	return n
}

func (d *decoder) countPrefix(prefix []byte) {
	if len(prefix) > maxPrefixLen {
		prefix = prefix[:maxPrefixLen]
	}
	d.prefixMu.Lock()
	defer d.prefixMu.Unlock()
	if c := d.prefixes[string(prefix)]; c != nil { // no allocation: a lookup
		*c++
		return
	}
	if len(d.prefixes) >= maxPrefixes {
		d.otherPrefixes++
		return
	}
	c := new(uint64)
	*c = 1
	d.prefixes[string(prefix)] = c
}

// problem counts a malformed message; the first is described in Stats.
// The description is made only then, so a flood of bad messages costs no
// formatting and no allocation.
func (d *decoder) problem(describe func() string) {
	d.malformed.Add(1)
	if d.firstProblem.Load() == nil {
		msg := describe()
		d.firstProblem.CompareAndSwap(nil, &msg)
	}
}

// usable reports whether a packet the copy range (or a rule's snaplen) cut
// short still tells who contacted whom: the rule the packet sensor and the
// capture reader apply.
func usable(p *probe.Probe) bool {
	if !p.Src.Addr().IsValid() {
		return false
	}
	switch p.Proto {
	case probe.TCP:
		return p.Known&probe.KnownPorts != 0 && (p.Known&probe.KnownFlags != 0 || p.Frag == probe.FragFirst)
	case probe.UDP:
		return p.Known&probe.KnownPorts != 0
	}
	return p.Frag == probe.FragLater || p.Inner.Valid
}
