package nflog

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// Unit tests of the parser and decoder over crafted messages, against a
// fake host view:
//
//	this host: 10.0.0.1, fd00::1; links 2 eth0, 3 eth1

var testHost = &fakeHost{
	local: []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")},
	links: map[int]host.Link{2: {Index: 2, Name: "eth0"}, 3: {Index: 3, Name: "eth1"}},
}

// testDecoder reads groups 5 and 6 (the user's) and 7341 (ours).
func testDecoder(h Hosty) *decoder {
	d := newDecoder(h, []*group{
		{num: 5, outcome: probe.OutcomeDropped},
		{num: 6, outcome: probe.OutcomeDropped},
		{num: 7341, own: true, outcome: probe.OutcomeUnknown},
	})
	return d
}

type result struct {
	p probe.Probe
	m Meta
}

// decode runs datagrams through d and returns the probes.
func decode(d *decoder, datagrams ...[]byte) []result {
	var out []result
	for _, b := range datagrams {
		d.datagram(b, func(p *probe.Probe, m *Meta) {
			r := result{p: *p, m: *m}
			r.m.Prefix = append([]byte(nil), m.Prefix...)
			out = append(out, r)
		})
	}
	return out
}

func TestDecodeInputSYN(t *testing.T) {
	d := testDecoder(testHost)
	ts := time.Now().Add(-time.Second).Truncate(time.Microsecond)
	rs := decode(d, inputSYN(t, 5, 0, ts))
	if len(rs) != 1 {
		t.Fatalf("%d probes: %+v", len(rs), d.stats())
	}
	p, m := rs[0].p, rs[0].m
	if p.Src != netip.MustParseAddrPort("203.0.113.9:40000") || p.Dst != netip.MustParseAddrPort("10.0.0.1:22") ||
		p.Proto != probe.TCP || p.Flags != probe.SYN || p.Opts.MSS != 1460 || p.TTL != 47 {
		t.Errorf("packet fields: %+v", p)
	}
	if !p.Time.Equal(ts) || p.Direction != probe.DirInbound || p.Outcome != probe.OutcomeDropped ||
		p.Sensor != probe.SensorNFLog || p.Iface != "eth0" {
		t.Errorf("sensor fields: time %v (want %v) direction %v outcome %v sensor %v iface %q",
			p.Time, ts, p.Direction, p.Outcome, p.Sensor, p.Iface)
	}
	if m.Group != 5 || m.Hook != HookInput || m.HWProto != 0x0800 || string(m.Prefix) != "Firewall: *TCP_IN Blocked* " ||
		m.InIndex != 2 || !m.HasSeq || m.Seq != 0 || m.Family != familyIPv4 {
		t.Errorf("meta: %+v", m)
	}
	st := d.stats()
	if st.Messages != 1 || st.Probes != 1 || st.Prefixes["Firewall: *TCP_IN Blocked* "] != 1 {
		t.Errorf("stats: %+v", st)
	}
}

func TestDirectionAndIface(t *testing.T) {
	router := *testHost
	router.forward = true
	syn := func(src, dst string) []byte { return synPacket(t, src, dst, 40000, 80) }
	for _, c := range []struct {
		name    string
		h       Hosty
		hook    Hook
		in, out uint32
		pkt     []byte
		dir     probe.Direction
		iface   string
	}{
		{"input", testHost, HookInput, 2, 0, syn("203.0.113.9", "10.0.0.1"), probe.DirInbound, "eth0"},
		{"prerouting to us", testHost, HookPrerouting, 3, 0, syn("203.0.113.9", "10.0.0.1"), probe.DirInbound, "eth1"},
		{"prerouting to others", &router, HookPrerouting, 2, 0, syn("203.0.113.9", "198.51.100.7"), probe.DirForwarded, "eth0"},
		{"forward", &router, HookForward, 2, 3, syn("203.0.113.9", "198.51.100.7"), probe.DirForwarded, "eth0"},
		{"output", testHost, HookOutput, 0, 3, syn("10.0.0.1", "203.0.113.9"), probe.DirOutbound, "eth1"},
		{"postrouting from us", &router, HookPostrouting, 0, 2, syn("10.0.0.1", "203.0.113.9"), probe.DirOutbound, "eth0"},
		{"postrouting routed", &router, HookPostrouting, 0, 3, syn("203.0.113.9", "198.51.100.7"), probe.DirForwarded, "eth1"},
		{"postrouting spoofed", testHost, HookPostrouting, 0, 3, syn("192.0.2.1", "203.0.113.9"), probe.DirOutbound, "eth1"},
		{"unknown interface", testHost, HookInput, 42, 0, syn("203.0.113.9", "10.0.0.1"), probe.DirInbound, "if42"},
		{"no interface", testHost, HookInput, 0, 0, syn("203.0.113.9", "10.0.0.1"), probe.DirInbound, ""},
		{"unknown hook", testHost, 9, 2, 0, syn("203.0.113.9", "10.0.0.1"), probe.DirUnknown, "eth0"},
	} {
		attrs := []attr{hdrAttr(0x0800, c.hook), payloadAttr(c.pkt)}
		if c.in != 0 {
			attrs = append(attrs, u32Attr(attrIfIndexIn, c.in))
		}
		if c.out != 0 {
			attrs = append(attrs, u32Attr(attrIfIndexOut, c.out))
		}
		rs := decode(testDecoder(c.h), packetMsg(5, familyIPv4, attrs...))
		if len(rs) != 1 {
			t.Errorf("%s: %d probes", c.name, len(rs))
			continue
		}
		if p := rs[0].p; p.Direction != c.dir || p.Iface != c.iface {
			t.Errorf("%s: direction %v iface %q, want %v %q", c.name, p.Direction, p.Iface, c.dir, c.iface)
		}
	}
}

func TestDecodeNetdevEgress(t *testing.T) {
	msg := packetMsg(5, familyNetdev, hdrAttr(0x0800, 1), u32Attr(attrIfIndexOut, 2),
		payloadAttr(synPacket(t, "10.0.0.1", "203.0.113.9", 40000, 80)))
	rs := decode(testDecoder(testHost), msg)
	if len(rs) != 1 || rs[0].m.Hook != HookPostrouting || rs[0].p.Direction != probe.DirOutbound {
		t.Errorf("netdev egress: %+v", rs)
	}
}

func TestDecodeOwnGroupIPv6(t *testing.T) {
	d := testDecoder(testHost)
	rs := decode(d, packetMsg(7341, familyIPv6, hdrAttr(0x86dd, HookPrerouting), u32Attr(attrIfIndexIn, 3),
		prefixAttr("scanwarden"), payloadAttr(udpPacket6(t, "fd00::99", "fd00::1", 5353, 161))))
	if len(rs) != 1 {
		t.Fatalf("%d probes: %+v", len(rs), d.stats())
	}
	p := rs[0].p
	if p.Outcome != probe.OutcomeUnknown || p.Proto != probe.UDP || p.Dst != netip.MustParseAddrPort("[fd00::1]:161") ||
		p.Direction != probe.DirInbound || p.Iface != "eth1" || p.Payload != 5 {
		t.Errorf("own group probe: %+v", p)
	}
	if time.Since(p.Time) > time.Second {
		t.Errorf("no timestamp in the message, so the time of reading: %v", p.Time)
	}
}

func TestDecodeBatchAndSequence(t *testing.T) {
	d := testDecoder(testHost)
	now := time.Now()
	// Group 5: 0, 1, then 4 (2 and 3 lost); group 6 numbers on its own.
	dg := batch(inputSYN(t, 5, 0, now), inputSYN(t, 5, 1, now), inputSYN(t, 6, 0, now), inputSYN(t, 5, 4, now), inputSYN(t, 6, 1, now))
	if rs := decode(d, dg); len(rs) != 5 {
		t.Fatalf("%d probes from a batch of 5", len(rs))
	}
	st := d.stats()
	if st.Lost != 2 || st.Groups[0].Lost != 2 || st.Groups[1].Lost != 0 || st.Groups[0].Probes != 3 || st.Groups[1].Probes != 2 {
		t.Errorf("stats: %+v", st)
	}
	if st.OtherMessages != 0 || st.Datagrams != 1 || st.Messages != 5 {
		t.Errorf("the batch's NLMSG_DONE counted: %+v", st)
	}
}

// TestDecodeOdd feeds hostile and odd messages: each must be counted as
// what it is and never panic.
func TestDecodeOdd(t *testing.T) {
	good := inputSYN(t, 5, 0, time.Now())
	syn := synPacket(t, "203.0.113.9", "10.0.0.1", 40000, 22)
	hdr := hdrAttr(0x0800, HookInput)
	for _, c := range []struct {
		name                                  string
		datagram                              []byte
		probes, noPayload, ignored, malformed int
		otherMessages                         int
		firstProblem                          string
	}{
		{name: "empty datagram", datagram: nil},
		{name: "short header", datagram: good[:10], malformed: 1, firstProblem: "does not fit"},
		{name: "message length past the datagram", datagram: good[:len(good)-8], malformed: 1},
		{name: "message length below the header", datagram: shortLength(), malformed: 1},
		{name: "no nfgenmsg", datagram: nlmsg(msgPacket, 0, []byte{2, 0}), malformed: 1, firstProblem: "nfgenmsg"},
		{name: "attribute length past the message", datagram: truncateAttr(packetMsg(5, familyIPv4, hdr, payloadAttr(syn))), malformed: 1, firstProblem: "attribute length"},
		{name: "attribute length below its header", datagram: nlmsg(msgPacket, 0, []byte{2, 0, 0, 5, 2, 0, 1, 0}), malformed: 1},
		{name: "short packet header", datagram: packetMsg(5, familyIPv4, attr{attrPacketHdr, []byte{8, 0}}, payloadAttr(syn)), malformed: 1, firstProblem: "too short"},
		{name: "short timestamp", datagram: packetMsg(5, familyIPv4, hdr, attr{attrTimestamp, make([]byte, 8)}, payloadAttr(syn)), malformed: 1},
		{name: "short ifindex", datagram: packetMsg(5, familyIPv4, hdr, attr{attrIfIndexIn, []byte{0, 2}}, payloadAttr(syn)), malformed: 1},
		{name: "no packet header", datagram: packetMsg(5, familyIPv4, payloadAttr(syn)), malformed: 1, firstProblem: "no packet header"},
		{name: "group not bound", datagram: packetMsg(9, familyIPv4, hdr, payloadAttr(syn)), malformed: 1, firstProblem: "group 9"},
		{name: "no payload", datagram: packetMsg(5, familyIPv4, hdr, prefixAttr("x")), noPayload: 1},
		{name: "zero-length payload", datagram: packetMsg(5, familyIPv4, hdr, payloadAttr(nil)), noPayload: 1},
		{name: "ARP from a bridge chain", datagram: packetMsg(5, familyBridge, hdrAttr(0x0806, HookForward), payloadAttr(make([]byte, 28))), ignored: 1},
		{name: "not IP though it says so", datagram: packetMsg(5, familyIPv4, hdr, payloadAttr([]byte{0x11, 0x22, 0x33})), malformed: 1},
		{name: "IP header cut", datagram: packetMsg(5, familyIPv4, hdr, payloadAttr(syn[:16])), malformed: 1},
		{name: "cut after the flags: still a probe", datagram: packetMsg(5, familyIPv4, hdr, payloadAttr(syn[:34])), probes: 1},
		{name: "cut inside the ports", datagram: packetMsg(5, familyIPv4, hdr, payloadAttr(syn[:22])), malformed: 1},
		{name: "huge payload", datagram: packetMsg(5, familyIPv4, hdr, payloadAttr(append(syn, make([]byte, 65000)...))), probes: 1},
		{name: "no padding after the last attribute", datagram: unpadded(t), probes: 1},
		{name: "unknown attributes and flags", datagram: packetMsg(5, familyIPv4, attr{0x8000 | 99, []byte{1}}, attr{0x4000 | attrPacketHdr, hdr.v}, payloadAttr(syn)), probes: 1},
		{name: "acknowledgement and noop", datagram: append(nlmsg(nlmsgError, 0, make([]byte, 20)), nlmsg(nlmsgNoop, 0, nil)...), otherMessages: 1},
		{name: "good after bad in one datagram", datagram: append(packetMsg(5, familyIPv4, payloadAttr(syn)), good...), probes: 1, malformed: 1},
		{name: "good before a cut message", datagram: append(append([]byte(nil), good...), good[:30]...), probes: 1, malformed: 1},
	} {
		d := testDecoder(testHost)
		rs := decode(d, c.datagram)
		st := d.stats()
		if len(rs) != c.probes || int(st.NoPayload) != c.noPayload || int(st.Ignored) != c.ignored ||
			int(st.Malformed) != c.malformed || int(st.OtherMessages) != c.otherMessages {
			t.Errorf("%s: %d probes, %d without payload, %d ignored, %d malformed, %d other; want %d %d %d %d %d (first problem %q)",
				c.name, len(rs), st.NoPayload, st.Ignored, st.Malformed, st.OtherMessages,
				c.probes, c.noPayload, c.ignored, c.malformed, c.otherMessages, st.FirstProblem)
		}
		if !strings.Contains(st.FirstProblem, c.firstProblem) {
			t.Errorf("%s: first problem %q, want it to say %q", c.name, st.FirstProblem, c.firstProblem)
		}
	}
}

// truncateAttr makes the last attribute claim more bytes than the message
// has, keeping the netlink header's length consistent.
func truncateAttr(msg []byte) []byte {
	body := msg[nlmsgHdrLen:]
	// Walk to the last attribute.
	b, last := body[sizeofNfgenmsg:], 0
	for off := 0; off+4 <= len(b); {
		l := int(b[off]) | int(b[off+1])<<8
		last = off
		off += (l + 3) &^ 3
	}
	l := int(b[last]) | int(b[last+1])<<8
	l += 100
	b[last], b[last+1] = byte(l), byte(l>>8)
	return msg
}

// shortLength is a netlink header claiming 8 bytes, half of itself.
func shortLength() []byte {
	m := nlmsg(msgPacket, 0, nil)
	m[0] = 8
	return m
}

// unpadded is a message whose last attribute (a 3-byte prefix) has no
// padding, the netlink header counting only what is there.
func unpadded(t *testing.T) []byte {
	m := packetMsg(5, familyIPv4, hdrAttr(0x0800, HookInput), payloadAttr(synPacket(t, "203.0.113.9", "10.0.0.1", 1, 2)), attr{attrPrefix, []byte("ab\x00")})
	m = m[:len(m)-1]
	n := len(m)
	m[0], m[1], m[2], m[3] = byte(n), byte(n>>8), 0, 0
	return m
}

func TestTimestampPlausible(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	d := testDecoder(testHost)
	d.readAt = now
	for _, c := range []struct {
		ts   time.Time
		want time.Time
	}{
		{time.Time{}, now},
		{now.Add(-3 * time.Second), now.Add(-3 * time.Second)},
		{now.Add(-time.Hour), now},      // a stale or monotonic clock
		{now.Add(2 * time.Minute), now}, // from the future
		{time.Unix(5, 0), now},          // CLOCK_MONOTONIC, seconds since boot
		{now.Add(-9 * time.Minute), now.Add(-9 * time.Minute)},
	} {
		if got := d.timestamp(c.ts); !got.Equal(c.want) {
			t.Errorf("timestamp %v: %v, want %v", c.ts, got, c.want)
		}
	}
}

func TestPrefixCountsBounded(t *testing.T) {
	d := testDecoder(testHost)
	syn := synPacket(t, "203.0.113.9", "10.0.0.1", 40000, 22)
	for i := range maxPrefixes + 10 {
		decode(d, packetMsg(5, familyIPv4, hdrAttr(0x0800, HookInput), prefixAttr(fmt.Sprintf("p%d", i)), payloadAttr(syn)))
	}
	decode(d, packetMsg(5, familyIPv4, hdrAttr(0x0800, HookInput), prefixAttr("p0"), payloadAttr(syn)))
	st := d.stats()
	if len(st.Prefixes) != maxPrefixes || st.OtherPrefixes != 10 || st.Prefixes["p0"] != 2 {
		t.Errorf("%d prefixes, %d others, p0 %d", len(st.Prefixes), st.OtherPrefixes, st.Prefixes["p0"])
	}
}

// TestDecodeAllocs pins the per-message cost: no allocation for a batch
// of logged packets once their interfaces and prefix have been seen.
func TestDecodeAllocs(t *testing.T) {
	d := testDecoder(testHost)
	now := time.Now()
	dg := batch(inputSYN(t, 5, 0, now), inputSYN(t, 5, 1, now), inputSYN(t, 7341, 0, now),
		packetMsg(6, familyIPv6, hdrAttr(0x86dd, HookInput), u32Attr(attrIfIndexIn, 99), payloadAttr(udpPacket6(t, "fd00::9", "fd00::1", 1, 2))))
	out := func(*probe.Probe, *Meta) {}
	d.datagram(dg, out)
	if n := testing.AllocsPerRun(1000, func() { d.datagram(dg, out) }); n != 0 {
		t.Errorf("%v allocations per datagram of 4 messages", n)
	}
}

func TestConfigMessage(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("the expected bytes are a little-endian host's")
	}
	b := configMessage(7341, cmdBind, &settings{copyRange: 256, nlbufsiz: 16000, flush: 10 * time.Millisecond, qthresh: 64})
	want := []byte{
		0, 0, 0x1c, 0xad, // AF_UNSPEC, v0, group 7341
		5, 0, 1, 0, 1, 0, 0, 0, // CMD: bind
		10, 0, 2, 0, 0, 0, 1, 0, 2, 0, 0, 0, // MODE: range 256, copy packet
		8, 0, 3, 0, 0, 0, 0x3e, 0x80, // NLBUFSIZ 16000
		8, 0, 4, 0, 0, 0, 0, 1, // TIMEOUT 1/100 s
		8, 0, 5, 0, 0, 0, 0, 64, // QTHRESH
		6, 0, 6, 0, 0, 1, 0, 0, // FLAGS: SEQ
	}
	if string(b) != string(want) {
		t.Errorf("bind message\n got % x\nwant % x", b, want)
	}
	if b := configMessage(5, cmdUnbind, nil); string(b) != string([]byte{0, 0, 0, 5, 5, 0, 1, 0, 2, 0, 0, 0}) {
		t.Errorf("unbind message % x", b)
	}
}

func TestHold(t *testing.T) {
	s := &Sensor{}
	dg := batch(inputSYN(t, 5, 0, time.Now()), inputSYN(t, 5, 1, time.Now()))
	s.hold(dg, true)
	if len(s.pending) != 1 || s.pendingSize != len(dg) || &s.pending[0][0] == &dg[0] {
		t.Fatalf("held %d datagrams, %d bytes (a copy of %d wanted)", len(s.pending), s.pendingSize, len(dg))
	}
	s.pendingSize = maxPending // full: the next is counted, not kept
	s.hold(dg, true)
	s.hold(dg, false) // closing: never kept
	if len(s.pending) != 1 || s.discarded.Load() != 4 {
		t.Errorf("%d held, %d discarded; want 1 and 4 messages", len(s.pending), s.discarded.Load())
	}
}
