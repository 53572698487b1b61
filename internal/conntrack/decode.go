package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/mdlayher/netlink"
)

// ctnetlink message types and attributes, from
// linux/netfilter/nfnetlink.h and nfnetlink_conntrack.h.
const (
	subsysCtnetlink = 1 // NFNL_SUBSYS_CTNETLINK

	msgCtNew    = 0 // IPCTNL_MSG_CT_NEW
	msgCtGet    = 1 // IPCTNL_MSG_CT_GET
	msgCtDelete = 2 // IPCTNL_MSG_CT_DELETE

	nfgenmsgLen = 4 // struct nfgenmsg: family, version, res_id

	ctaTupleOrig     = 1  // CTA_TUPLE_ORIG
	ctaTupleReply    = 2  // CTA_TUPLE_REPLY
	ctaStatus        = 3  // CTA_STATUS
	ctaProtoinfo     = 4  // CTA_PROTOINFO
	ctaMark          = 8  // CTA_MARK
	ctaCountersOrig  = 9  // CTA_COUNTERS_ORIG
	ctaCountersReply = 10 // CTA_COUNTERS_REPLY
	ctaID            = 12 // CTA_ID
	ctaZone          = 18 // CTA_ZONE
	ctaTimestamp     = 20 // CTA_TIMESTAMP

	ctaCountersPackets   = 1 // CTA_COUNTERS_PACKETS, u64
	ctaCountersBytes     = 2 // CTA_COUNTERS_BYTES, u64
	ctaCountersPackets32 = 3 // CTA_COUNTERS32_PACKETS (old kernels)
	ctaCountersBytes32   = 4 // CTA_COUNTERS32_BYTES

	ctaProtoinfoTCP      = 1 // CTA_PROTOINFO_TCP
	ctaProtoinfoTCPState = 1 // CTA_PROTOINFO_TCP_STATE, u8

	ctaTimestampStart = 1 // CTA_TIMESTAMP_START, u64 ns, CLOCK_REALTIME
	ctaTimestampStop  = 2 // CTA_TIMESTAMP_STOP

	ctaTupleIP    = 1 // CTA_TUPLE_IP
	ctaTupleProto = 2 // CTA_TUPLE_PROTO

	ctaIPv4Src = 1 // CTA_IP_V4_SRC
	ctaIPv4Dst = 2 // CTA_IP_V4_DST
	ctaIPv6Src = 3 // CTA_IP_V6_SRC
	ctaIPv6Dst = 4 // CTA_IP_V6_DST

	ctaProtoNum     = 1 // CTA_PROTO_NUM
	ctaProtoSrcPort = 2 // CTA_PROTO_SRC_PORT
	ctaProtoDstPort = 3 // CTA_PROTO_DST_PORT
)

// errNotConntrack marks a message that is not a conntrack event (another
// nfnetlink subsystem, a control message): skipped, not malformed.
var errNotConntrack = errors.New("not a conntrack message")

// msgType builds an nfnetlink message type.
func msgType(msg uint16) netlink.HeaderType {
	return netlink.HeaderType(subsysCtnetlink<<8 | msg)
}

// eventType tells the kind of event from a message's header: a new entry
// is announced as IPCTNL_MSG_CT_NEW with NLM_F_CREATE|NLM_F_EXCL, an update
// as IPCTNL_MSG_CT_NEW without, a destruction as IPCTNL_MSG_CT_DELETE.
func eventType(h netlink.Header) (EventType, error) {
	switch h.Type {
	case msgType(msgCtNew):
		if h.Flags&(netlink.Create|netlink.Excl) != 0 {
			return EventNew, nil
		}
		return EventUpdate, nil
	case msgType(msgCtDelete):
		return EventDestroy, nil
	}
	return 0, errNotConntrack
}

// decode fills e from a ctnetlink message body (nfgenmsg and attributes).
// It never panics; a body it cannot read is an error. Unknown attributes
// are skipped.
//
// It walks the attributes with attrs, not mdlayher/netlink's
// AttributeDecoder: that one allocates a decoder per nest and a closure
// per call, 46 allocations and ~3 µs for a DESTROY event, and the
// connection log decodes every connection's end (BenchmarkDecodeDestroy).
func decode(b []byte, e *Event) error {
	if len(b) < nfgenmsgLen {
		return fmt.Errorf("message of %d bytes is shorter than its nfgenmsg header", len(b))
	}
	var orig, reply bool
	a := attrs{b: b[nfgenmsgLen:]}
	for a.next() {
		switch a.typ {
		case ctaTupleOrig:
			orig = true
			a.fail(decodeTuple(a.val, &e.Orig))
		case ctaTupleReply:
			reply = true
			a.fail(decodeTuple(a.val, &e.Reply))
		case ctaStatus:
			e.Status = a.uint32()
		case ctaMark:
			e.Mark = a.uint32()
		case ctaZone:
			e.Zone = a.uint16()
		case ctaID:
			e.ID = a.uint32()
		case ctaCountersOrig:
			e.HaveCounters = true
			a.fail(decodeCounters(a.val, &e.OrigCounters))
		case ctaCountersReply:
			e.HaveCounters = true
			a.fail(decodeCounters(a.val, &e.ReplyCounters))
		case ctaProtoinfo:
			a.fail(decodeProtoinfo(a.val, &e.TCPState))
		case ctaTimestamp:
			ts := attrs{b: a.val}
			for ts.next() {
				switch ts.typ {
				case ctaTimestampStart:
					e.Start = nsTime(ts.uint64())
				case ctaTimestampStop:
					e.Stop = nsTime(ts.uint64())
				}
			}
			a.fail(ts.err)
		}
	}
	if a.err != nil {
		return a.err
	}
	switch {
	case !orig:
		return errors.New("no original tuple (CTA_TUPLE_ORIG)")
	case !reply:
		return errors.New("no reply tuple (CTA_TUPLE_REPLY)")
	}
	return nil
}

// attrs walks a run of netlink attributes (struct nlattr: length and type
// in host order, the value, padding to 4 bytes) without allocating. After
// next returns false, err says whether the run was malformed. Values are
// read by the typed getters, which check the length; the first error
// sticks and ends the walk.
type attrs struct {
	b   []byte
	typ uint16
	val []byte
	err error
}

const (
	nlaHeaderLen = 4
	nlaTypeMask  = 0x3fff // without NLA_F_NESTED and NLA_F_NET_BYTEORDER
)

func (a *attrs) next() bool {
	if a.err != nil || len(a.b) == 0 {
		return false
	}
	if len(a.b) < nlaHeaderLen {
		a.err = fmt.Errorf("attribute header cut short: %d bytes left", len(a.b))
		return false
	}
	n := int(binary.NativeEndian.Uint16(a.b))
	if n < nlaHeaderLen || n > len(a.b) {
		a.err = fmt.Errorf("attribute of length %d with %d bytes left", n, len(a.b))
		return false
	}
	a.typ = binary.NativeEndian.Uint16(a.b[2:]) & nlaTypeMask
	a.val = a.b[nlaHeaderLen:n]
	a.b = a.b[min((n+3)&^3, len(a.b)):]
	return true
}

// fail records err, if it is the first.
func (a *attrs) fail(err error) {
	if a.err == nil && err != nil {
		a.err = err
	}
}

func (a *attrs) sized(n int) bool {
	if len(a.val) != n {
		a.fail(fmt.Errorf("attribute %d of %d bytes, want %d", a.typ, len(a.val), n))
		return false
	}
	return true
}

// Every ctnetlink integer is in network order.

func (a *attrs) uint8() uint8 {
	if !a.sized(1) {
		return 0
	}
	return a.val[0]
}

func (a *attrs) uint16() uint16 {
	if !a.sized(2) {
		return 0
	}
	return binary.BigEndian.Uint16(a.val)
}

func (a *attrs) uint32() uint32 {
	if !a.sized(4) {
		return 0
	}
	return binary.BigEndian.Uint32(a.val)
}

func (a *attrs) uint64() uint64 {
	if !a.sized(8) {
		return 0
	}
	return binary.BigEndian.Uint64(a.val)
}

// decodeCounters reads a CTA_COUNTERS_* nest.
func decodeCounters(b []byte, c *Counters) error {
	a := attrs{b: b}
	for a.next() {
		switch a.typ {
		case ctaCountersPackets:
			c.Packets = a.uint64()
		case ctaCountersBytes:
			c.Bytes = a.uint64()
		case ctaCountersPackets32:
			c.Packets = uint64(a.uint32())
		case ctaCountersBytes32:
			c.Bytes = uint64(a.uint32())
		}
	}
	return a.err
}

// decodeProtoinfo reads the TCP state from a CTA_PROTOINFO nest.
func decodeProtoinfo(b []byte, state *TCPState) error {
	a := attrs{b: b}
	for a.next() {
		if a.typ != ctaProtoinfoTCP {
			continue
		}
		tcp := attrs{b: a.val}
		for tcp.next() {
			if tcp.typ == ctaProtoinfoTCPState {
				*state = TCPState(tcp.uint8()) + 1
			}
		}
		a.fail(tcp.err)
	}
	return a.err
}

// nsTime is a CLOCK_REALTIME nanosecond count as a time; 0 (not set) and
// values past the year 2262 are the zero time.
func nsTime(ns uint64) time.Time {
	if ns == 0 || ns > math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

// decodeTuple reads a CTA_TUPLE_* nest into t.
func decodeTuple(b []byte, t *Tuple) error {
	var src, dst netip.Addr
	var sport, dport uint16
	var proto bool
	a := attrs{b: b}
	for a.next() {
		switch a.typ {
		case ctaTupleIP:
			a.fail(decodeIP(a.val, &src, &dst))
		case ctaTupleProto:
			proto = true
			p := attrs{b: a.val}
			for p.next() {
				switch p.typ {
				case ctaProtoNum:
					t.Proto = p.uint8()
				case ctaProtoSrcPort:
					sport = p.uint16()
				case ctaProtoDstPort:
					dport = p.uint16()
				}
			}
			a.fail(p.err)
		}
	}
	if a.err != nil {
		return a.err
	}
	if !src.IsValid() || !dst.IsValid() || src.Is4() != dst.Is4() {
		return errors.New("tuple without a source and destination address of one family")
	}
	if !proto {
		return errors.New("tuple without a protocol (CTA_TUPLE_PROTO)")
	}
	t.Src = netip.AddrPortFrom(src, sport)
	t.Dst = netip.AddrPortFrom(dst, dport)
	return nil
}

// decodeIP reads a CTA_TUPLE_IP nest.
func decodeIP(b []byte, src, dst *netip.Addr) error {
	a := attrs{b: b}
	for a.next() {
		var to *netip.Addr
		var size int
		switch a.typ {
		case ctaIPv4Src:
			to, size = src, 4
		case ctaIPv4Dst:
			to, size = dst, 4
		case ctaIPv6Src:
			to, size = src, 16
		case ctaIPv6Dst:
			to, size = dst, 16
		default:
			continue
		}
		if len(a.val) != size {
			return fmt.Errorf("address attribute %d of %d bytes, want %d", a.typ, len(a.val), size)
		}
		*to, _ = netip.AddrFromSlice(a.val)
	}
	return a.err
}
