package conntrack

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Building ctnetlink message bodies as the kernel does
// (ctnetlink_fill_info), for the decoder's tests, fuzz seeds and benchmark.

func encodeTuple(ae *netlink.AttributeEncoder, t Tuple) error {
	ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
		src, dst := t.Src.Addr(), t.Dst.Addr()
		if src.Is4() {
			ae.Bytes(ctaIPv4Src, src.AsSlice())
			ae.Bytes(ctaIPv4Dst, dst.AsSlice())
		} else {
			ae.Bytes(ctaIPv6Src, src.AsSlice())
			ae.Bytes(ctaIPv6Dst, dst.AsSlice())
		}
		return nil
	})
	ae.Nested(ctaTupleProto, func(ae *netlink.AttributeEncoder) error {
		ae.Uint8(ctaProtoNum, t.Proto)
		if t.Proto == unix.IPPROTO_TCP || t.Proto == unix.IPPROTO_UDP {
			ae.Uint16(ctaProtoSrcPort, t.Src.Port())
			ae.Uint16(ctaProtoDstPort, t.Dst.Port())
		}
		return nil
	})
	return nil
}

// buildBody encodes e as a ctnetlink message body, with an unknown
// attribute (CTA_TIMEOUT) the decoder must skip.
func buildBody(t testing.TB, e Event) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Nested(ctaTupleOrig, func(ae *netlink.AttributeEncoder) error { return encodeTuple(ae, e.Orig) })
	ae.Nested(ctaTupleReply, func(ae *netlink.AttributeEncoder) error { return encodeTuple(ae, e.Reply) })
	ae.Uint32(ctaStatus, e.Status)
	ae.Uint32(7, 120) // CTA_TIMEOUT
	if e.TCPState != TCPNone {
		ae.Nested(ctaProtoinfo, func(ae *netlink.AttributeEncoder) error {
			ae.Nested(ctaProtoinfoTCP, func(ae *netlink.AttributeEncoder) error {
				ae.Uint8(ctaProtoinfoTCPState, uint8(e.TCPState-1))
				ae.Uint8(2, 7) // CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, skipped
				return nil
			})
			return nil
		})
	}
	if e.HaveCounters {
		for _, c := range []struct {
			typ uint16
			c   Counters
		}{{ctaCountersOrig, e.OrigCounters}, {ctaCountersReply, e.ReplyCounters}} {
			ae.Nested(c.typ, func(ae *netlink.AttributeEncoder) error {
				ae.Uint64(ctaCountersPackets, c.c.Packets)
				ae.Uint64(ctaCountersBytes, c.c.Bytes)
				return nil
			})
		}
	}
	if !e.Start.IsZero() {
		ae.Nested(ctaTimestamp, func(ae *netlink.AttributeEncoder) error {
			ae.Uint64(ctaTimestampStart, uint64(e.Start.UnixNano()))
			if !e.Stop.IsZero() {
				ae.Uint64(ctaTimestampStop, uint64(e.Stop.UnixNano()))
			}
			return nil
		})
	}
	ae.Uint32(ctaMark, e.Mark)
	ae.Uint32(ctaID, e.ID)
	ae.Uint16(ctaZone, e.Zone)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	family := byte(unix.AF_INET)
	if e.Orig.Src.Addr().Is6() {
		family = unix.AF_INET6
	}
	return append([]byte{family, 0, 0, 0}, b...)
}

// masqueraded is the event of a client 10.96.1.2:40001 behind a router
// masquerading as 10.96.2.1 connecting to 10.96.2.2:22.
func masqueraded() Event {
	return Event{
		Type: EventNew,
		Orig: Tuple{Proto: unix.IPPROTO_TCP,
			Src: netip.MustParseAddrPort("10.96.1.2:40001"), Dst: netip.MustParseAddrPort("10.96.2.2:22")},
		Reply: Tuple{Proto: unix.IPPROTO_TCP,
			Src: netip.MustParseAddrPort("10.96.2.2:22"), Dst: netip.MustParseAddrPort("10.96.2.1:61000")},
		Status:   StatusConfirmed | StatusSrcNAT | 1<<7, // IPS_SRC_NAT_DONE
		Mark:     0x2a,
		Zone:     7,
		ID:       0xdeadbeef,
		TCPState: TCPSynRecv,
	}
}
