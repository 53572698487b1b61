package packet

import (
	"encoding/binary"
	"hash/maphash"
	"sync/atomic"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// A router that masquerades shows a forwarded packet twice: arriving on the
// inside interface from the client (forwarded: reported there), and leaving
// the outside one with the router's own address as its source, which alone
// would look like this host scanning. Source NAT rewrites addresses and
// ports, not what identifies the packet itself — destination, destination
// port, TCP sequence and acknowledgement numbers and flags, the IPv4 ID and
// length — so the leaving copy is recognised by those and skipped.
//
// The cache is shared by the sensor's sockets (the two legs may be read by
// different ones when interfaces are listed), lock-free: a slot holds a
// signature's hash and when it was seen; a lost race costs one miss, and a
// miss is only the outbound sighting the daemon also maps back through
// conntrack.
type forwardedSeen struct {
	seed  maphash.Seed
	sig   [forwardedSlots]atomic.Uint64
	when  [forwardedSlots]atomic.Int64
	hits  atomic.Uint64
	store atomic.Uint64
}

const (
	forwardedSlots = 1 << 14 // signatures of the last ~16 k forwarded packets
	// forwardedWithin is how long after the inside sighting the leaving one
	// can come: the packet's transit through the router, microseconds,
	// with room for a busy queue.
	forwardedWithin = time.Second
)

func newForwardedSeen() *forwardedSeen { return &forwardedSeen{seed: maphash.MakeSeed()} }

// signature hashes what NAT leaves alone. ok is false for packets not worth
// the bookkeeping (fragments' tails, ICMP without an ID to tell them apart).
func (c *forwardedSeen) signature(p *probe.Probe) (uint64, bool) {
	var b [40]byte
	a := p.Dst.Addr().As16()
	copy(b[:16], a[:])
	b[16] = byte(p.Proto)
	binary.BigEndian.PutUint16(b[17:], p.Dst.Port())
	binary.BigEndian.PutUint16(b[19:], p.Payload)
	switch p.Proto {
	case probe.TCP:
		binary.BigEndian.PutUint32(b[21:], p.Seq)
		binary.BigEndian.PutUint32(b[25:], p.Ack)
		b[29] = byte(p.Flags)
	case probe.UDP:
		// IPv6 has no ID: destination, port and length only, over the
		// short window below.
		binary.BigEndian.PutUint16(b[21:], p.IPID)
	default:
		return 0, false
	}
	if p.Known&probe.KnownPorts == 0 {
		return 0, false
	}
	return maphash.Bytes(c.seed, b[:30]), true
}

// forwarded records a packet seen arriving to be forwarded.
func (c *forwardedSeen) forwarded(p *probe.Probe) {
	h, ok := c.signature(p)
	if !ok {
		return
	}
	i := h & (forwardedSlots - 1)
	c.sig[i].Store(h)
	c.when[i].Store(p.Time.UnixNano())
	c.store.Add(1)
}

// leaving reports whether p, leaving with one of our addresses as its
// source, is the translated copy of a packet seen arriving just before.
func (c *forwardedSeen) leaving(p *probe.Probe) bool {
	h, ok := c.signature(p)
	if !ok {
		return false
	}
	i := h & (forwardedSlots - 1)
	if c.sig[i].Load() != h {
		return false
	}
	d := p.Time.UnixNano() - c.when[i].Load()
	if d < -int64(forwardedWithin) || d > int64(forwardedWithin) {
		return false
	}
	c.hits.Add(1)
	return true
}
