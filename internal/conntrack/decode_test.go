package conntrack

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

func TestDecode(t *testing.T) {
	v6 := Event{
		Orig: Tuple{Proto: unix.IPPROTO_UDP,
			Src: netip.MustParseAddrPort("[fd00:96:1::2]:5353"), Dst: netip.MustParseAddrPort("[fd00:96:2::2]:53")},
		Reply: Tuple{Proto: unix.IPPROTO_UDP,
			Src: netip.MustParseAddrPort("[fd00:96:2::2]:53"), Dst: netip.MustParseAddrPort("[fd00:96:2::1]:5353")},
	}
	icmp := Event{
		Orig: Tuple{Proto: unix.IPPROTO_ICMP,
			Src: netip.MustParseAddrPort("10.0.0.1:0"), Dst: netip.MustParseAddrPort("10.0.0.2:0")},
		Reply: Tuple{Proto: unix.IPPROTO_ICMP,
			Src: netip.MustParseAddrPort("10.0.0.2:0"), Dst: netip.MustParseAddrPort("10.0.0.1:0")},
	}
	// A DESTROY with accounting and timestamps on: a connection that got
	// no answer (3 SYNs, nothing back).
	ended := masqueraded()
	ended.TCPState = TCPSynSent
	ended.HaveCounters = true
	ended.OrigCounters = Counters{Packets: 3, Bytes: 180}
	ended.Start = time.Unix(1781000000, 123456789)
	ended.Stop = time.Unix(1781000007, 5)
	for _, tc := range []struct {
		name string
		in   Event
		nat  bool
	}{{"v4 masquerade", masqueraded(), true}, {"v6 masquerade", v6, true}, {"icmp plain", icmp, false}, {"ended", ended, true}} {
		t.Run(tc.name, func(t *testing.T) {
			var got Event
			if err := decode(buildBody(t, tc.in), &got); err != nil {
				t.Fatal(err)
			}
			want := tc.in
			want.Type = 0 // set from the header, not the body
			if got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if got.NATed() != tc.nat {
				t.Errorf("NATed() = %v, want %v", got.NATed(), tc.nat)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	good := buildBody(t, masqueraded())
	for _, tc := range []struct {
		name string
		body []byte
		want string
	}{
		{"empty", nil, "shorter"},
		{"no attributes", good[:4], "no original tuple"},
		{"truncated", good[:len(good)-3], ""},
		{"bad address length", func() []byte {
			ae := netlink.NewAttributeEncoder()
			ae.Nested(ctaTupleOrig, func(ae *netlink.AttributeEncoder) error {
				ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
					ae.Bytes(ctaIPv4Src, []byte{1, 2, 3})
					return nil
				})
				return nil
			})
			b, _ := ae.Encode()
			return append([]byte{2, 0, 0, 0}, b...)
		}(), "3 bytes"},
		{"status of 2 bytes", append(append([]byte(nil), good...), 6, 0, ctaStatus, 0, 0, 1, 0, 0), "attribute 3 of 2 bytes"},
		{"attribute longer than the message", append(append([]byte(nil), good...), 200, 0, ctaMark, 0, 0, 0, 0, 0), "length 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e Event
			err := decode(tc.body, &e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("decode: %v, want an error with %q", err, tc.want)
			}
		})
	}
}

func TestEventType(t *testing.T) {
	for _, tc := range []struct {
		h    netlink.Header
		want EventType
	}{
		{netlink.Header{Type: msgType(msgCtNew), Flags: netlink.Create | netlink.Excl}, EventNew},
		{netlink.Header{Type: msgType(msgCtNew)}, EventUpdate},
		{netlink.Header{Type: msgType(msgCtDelete)}, EventDestroy},
		{netlink.Header{Type: 2<<8 | 0}, 0}, // NFNL_SUBSYS_CTNETLINK_EXP
	} {
		got, err := eventType(tc.h)
		if got != tc.want || (tc.want == 0) != (err != nil) {
			t.Errorf("eventType(%+v) = %v, %v; want %v", tc.h, got, err, tc.want)
		}
	}
}
