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
func decode(b []byte, e *Event) error {
	if len(b) < nfgenmsgLen {
		return fmt.Errorf("message of %d bytes is shorter than its nfgenmsg header", len(b))
	}
	ad, err := netlink.NewAttributeDecoder(b[nfgenmsgLen:])
	if err != nil {
		return fmt.Errorf("reading attributes: %w", err)
	}
	ad.ByteOrder = binary.BigEndian // every ctnetlink integer is in network order
	var orig, reply bool
	for ad.Next() {
		switch ad.Type() {
		case ctaTupleOrig:
			orig = true
			ad.Nested(tupleDecoder(&e.Orig))
		case ctaTupleReply:
			reply = true
			ad.Nested(tupleDecoder(&e.Reply))
		case ctaStatus:
			e.Status = ad.Uint32()
		case ctaMark:
			e.Mark = ad.Uint32()
		case ctaZone:
			e.Zone = ad.Uint16()
		case ctaID:
			e.ID = ad.Uint32()
		case ctaCountersOrig:
			e.HaveCounters = true
			ad.Nested(countersDecoder(&e.OrigCounters))
		case ctaCountersReply:
			e.HaveCounters = true
			ad.Nested(countersDecoder(&e.ReplyCounters))
		case ctaProtoinfo:
			ad.Nested(func(ad *netlink.AttributeDecoder) error {
				for ad.Next() {
					if ad.Type() == ctaProtoinfoTCP {
						ad.Nested(func(ad *netlink.AttributeDecoder) error {
							for ad.Next() {
								if ad.Type() == ctaProtoinfoTCPState {
									e.TCPState = TCPState(ad.Uint8()) + 1
								}
							}
							return nil
						})
					}
				}
				return nil
			})
		case ctaTimestamp:
			ad.Nested(func(ad *netlink.AttributeDecoder) error {
				for ad.Next() {
					switch ad.Type() {
					case ctaTimestampStart:
						e.Start = nsTime(ad.Uint64())
					case ctaTimestampStop:
						e.Stop = nsTime(ad.Uint64())
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return err
	}
	switch {
	case !orig:
		return errors.New("no original tuple (CTA_TUPLE_ORIG)")
	case !reply:
		return errors.New("no reply tuple (CTA_TUPLE_REPLY)")
	}
	return nil
}

// countersDecoder returns the function reading a CTA_COUNTERS_* nest.
func countersDecoder(c *Counters) func(*netlink.AttributeDecoder) error {
	return func(ad *netlink.AttributeDecoder) error {
		for ad.Next() {
			switch ad.Type() {
			case ctaCountersPackets:
				c.Packets = ad.Uint64()
			case ctaCountersBytes:
				c.Bytes = ad.Uint64()
			case ctaCountersPackets32:
				c.Packets = uint64(ad.Uint32())
			case ctaCountersBytes32:
				c.Bytes = uint64(ad.Uint32())
			}
		}
		return nil
	}
}

// nsTime is a CLOCK_REALTIME nanosecond count as a time; 0 (not set) and
// values past the year 2262 are the zero time.
func nsTime(ns uint64) time.Time {
	if ns == 0 || ns > math.MaxInt64 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

// tupleDecoder returns the function reading a CTA_TUPLE_* nest into t.
func tupleDecoder(t *Tuple) func(*netlink.AttributeDecoder) error {
	return func(ad *netlink.AttributeDecoder) error {
		var src, dst netip.Addr
		var sport, dport uint16
		var proto bool
		for ad.Next() {
			switch ad.Type() {
			case ctaTupleIP:
				ad.Nested(func(ad *netlink.AttributeDecoder) error {
					return decodeIP(ad, &src, &dst)
				})
			case ctaTupleProto:
				proto = true
				ad.Nested(func(ad *netlink.AttributeDecoder) error {
					return decodeProto(ad, &t.Proto, &sport, &dport)
				})
			}
		}
		if err := ad.Err(); err != nil {
			return err
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
}

func decodeIP(ad *netlink.AttributeDecoder, src, dst *netip.Addr) error {
	for ad.Next() {
		var to *netip.Addr
		var size int
		switch ad.Type() {
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
		typ := ad.Type()
		ad.Do(func(b []byte) error {
			if len(b) != size {
				return fmt.Errorf("address attribute %d of %d bytes, want %d", typ, len(b), size)
			}
			*to, _ = netip.AddrFromSlice(b)
			return nil
		})
	}
	return nil
}

func decodeProto(ad *netlink.AttributeDecoder, num *uint8, sport, dport *uint16) error {
	for ad.Next() {
		switch ad.Type() {
		case ctaProtoNum:
			*num = ad.Uint8()
		case ctaProtoSrcPort:
			*sport = ad.Uint16()
		case ctaProtoDstPort:
			*dport = ad.Uint16()
		}
	}
	return nil
}
