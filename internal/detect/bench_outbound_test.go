package detect

import (
	"cmp"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// The busy client the outbound benchmark models: a reverse proxy or API
// client opening 10 000 short connections a second to 16 upstream hosts on
// 16 ports each, all of them answered.
const (
	outboundConnRate = 10_000
	outboundLap      = 1 << 15 // connections before the stream repeats (3.3 s)
	ephemeralLow     = 32768   // net.ipv4.ip_local_port_range
	ephemeralN       = 60999 - ephemeralLow + 1
)

var (
	outboundLocal = netip.MustParseAddr("10.0.0.5")
	outboundPorts = [16]uint16{80, 443, 3306, 5432, 6379, 8080, 8443, 9000, 9090, 9200, 11211, 27017, 2379, 5672, 8500, 9092}
)

func outboundHost(i uint8) netip.Addr { return netip.AddrFrom4([4]byte{10, 20, 0, 1 + i}) }

// Segment kinds of an outbound connection as the packet sensor passes them:
// its filter keeps SYN, FIN and RST segments and drops pure ACKs and data
// (sensor/packet/filter.go).
const (
	segSYN    = iota // ours
	segSYNACK        // theirs
	segOurFIN        // FIN/ACK
	segTheirFIN
	segOurRST // RST/ACK
	nSegs
)

// outboundSeg is one segment of the stream, compact so the benchmark's own
// reading stays out of the way. at is within the lap; prev marks a segment
// of a connection begun in the previous lap (its late FIN, wrapped round).
type outboundSeg struct {
	at        int64
	seq, ack  uint32
	sport     uint16
	ipid      uint16
	host, dpt uint8
	kind      uint8
	prev      bool
}

// outboundStream is one lap of segments in time order, and the templates
// it fills in: one probe per segment kind, decoded by probe.Decode from a
// raw IPv4 header exactly as the live sensor decodes (Known, Opts, Payload,
// TTL and IP ID as it would set them).
type outboundStream struct {
	segs    []outboundSeg
	tmpl    [nSegs]probe.Probe
	perConn float64 // mean segments per connection
	lapLen  time.Duration
}

// Linux's SYN and SYN/ACK options (MSS, SACK-permitted, timestamps, NOP,
// window scale); later segments carry NOP, NOP, timestamps; a RST none.
var (
	synOpts = []byte{2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7}
	tsOpts  = []byte{1, 1, 8, 10, 0, 0, 0, 2, 0, 0, 0, 3}
)

// newOutboundStream builds one lap: per connection our SYN, their SYN/ACK
// one RTT later, then after 2–52 ms both sides' FIN/ACK, in either order;
// one connection in four ends with our RST/ACK after the FINs (a client
// closing with unread data, or SO_LINGER 0).
func newOutboundStream(tb testing.TB) *outboundStream {
	rng := rand.New(rand.NewPCG(3, 4))
	st := &outboundStream{lapLen: outboundLap * time.Second / outboundConnRate}
	lap := int64(st.lapLen)
	step := int64(time.Second) / outboundConnRate
	for i := 0; i < outboundLap; i++ {
		t0 := int64(i) * step
		h, dpt := uint8(rng.IntN(16)), uint8(rng.IntN(16))
		sport := uint16(ephemeralLow + rng.IntN(ephemeralN))
		rtt := int64(200*time.Microsecond) + int64(h)*int64(100*time.Microsecond)
		life := int64(2*time.Millisecond) + rng.Int64N(int64(50*time.Millisecond))
		isn, risn := rng.Uint32(), rng.Uint32()
		sent, recvd := uint32(200+rng.IntN(800)), uint32(500+rng.IntN(20000))
		add := func(at int64, kind uint8, seq, ack uint32) {
			s := outboundSeg{at: at, seq: seq, ack: ack, sport: sport, ipid: uint16(rng.Uint32()), host: h, dpt: dpt, kind: kind}
			if s.at >= lap {
				s.at -= lap
				s.prev = true
			}
			st.segs = append(st.segs, s)
		}
		add(t0, segSYN, isn, 0)
		add(t0+rtt, segSYNACK, risn, isn+1)
		ourFIN := func(at int64) { add(at, segOurFIN, isn+1+sent, risn+1+recvd) }
		theirFIN := func(at int64) { add(at, segTheirFIN, risn+1+recvd, isn+2+sent) }
		switch end := t0 + rtt + life; i % 4 {
		case 0, 1: // we close first
			ourFIN(end)
			theirFIN(end + rtt)
		case 2: // they close first
			theirFIN(end)
			ourFIN(end + rtt/2)
		case 3: // we close, then reset what still arrives
			ourFIN(end)
			theirFIN(end + rtt)
			add(end+rtt+rtt/4, segOurRST, isn+2+sent, risn+2+recvd)
		}
	}
	slices.SortStableFunc(st.segs, func(a, b outboundSeg) int { return cmp.Compare(a.at, b.at) })
	st.perConn = float64(len(st.segs)) / outboundLap
	for k := range st.tmpl {
		st.tmpl[k] = decodeSeg(tb, &outboundSeg{kind: uint8(k), sport: ephemeralLow}, 0, 0)
	}
	// The probes the benchmark fills in must be those the sensor decodes.
	for _, lapN := range []int{1, 7} {
		var p probe.Probe
		for i := range st.segs[:2000] {
			s := &st.segs[i]
			st.fill(&p, s, lapN)
			if want := decodeSeg(tb, s, lapN, p.Time.Sub(epoch)); p != want {
				tb.Fatalf("segment %d of lap %d:\nfilled  %+v\ndecoded %+v", i, lapN, p, want)
			}
		}
	}
	return st
}

// connLap is the lap of the connection s belongs to when it is read in lap n.
func (s *outboundSeg) connLap(n int) int {
	if s.prev {
		return n - 1
	}
	return n
}

// shifted returns s's ports and sequence numbers for the connection's lap,
// so that every lap is new connections (new ephemeral ports, new ISNs).
func (s *outboundSeg) shifted(n int) (sport uint16, seq, ack uint32) {
	c := s.connLap(n)
	sport = uint16(ephemeralLow + (int(s.sport)-ephemeralLow+c*7919)%ephemeralN)
	ours, theirs := uint32(c)*0x9e3779b9, uint32(c)*0x7f4a7c15
	switch s.kind {
	case segSYN, segOurFIN, segOurRST:
		seq, ack = s.seq+ours, s.ack+theirs
		if s.kind == segSYN {
			ack = 0
		}
	default:
		seq, ack = s.seq+theirs, s.ack+ours
	}
	return sport, seq, ack
}

func (s *outboundSeg) endpoints(sport uint16) (src, dst netip.AddrPort, out bool) {
	us := netip.AddrPortFrom(outboundLocal, sport)
	them := netip.AddrPortFrom(outboundHost(s.host), outboundPorts[s.dpt])
	switch s.kind {
	case segSYN, segOurFIN, segOurRST:
		return us, them, true
	}
	return them, us, false
}

// fill sets p to segment s read in lap n, as the sensor's framer fills its
// reused probe: the kind's template, then the fields that vary.
func (st *outboundStream) fill(p *probe.Probe, s *outboundSeg, n int) {
	*p = st.tmpl[s.kind]
	sport, seq, ack := s.shifted(n)
	p.Src, p.Dst, _ = s.endpoints(sport)
	p.Seq, p.Ack, p.IPID = seq, ack, s.ipid
	p.Time = epoch.Add(time.Duration(n)*st.lapLen + time.Duration(s.at))
}

// decodeSeg builds segment s of lap n as raw IPv4 and decodes it the way the
// packet sensor's framer does.
func decodeSeg(tb testing.TB, s *outboundSeg, n int, at time.Duration) probe.Probe {
	sport, seq, ack := s.shifted(n)
	src, dst, out := s.endpoints(sport)
	var f probe.TCPFlags
	var opts []byte
	switch s.kind {
	case segSYN:
		f, opts = probe.SYN, synOpts
	case segSYNACK:
		f, opts = probe.SYN|probe.ACK, synOpts
	case segOurFIN, segTheirFIN:
		f, opts = probe.FIN|probe.ACK, tsOpts
	case segOurRST:
		f = probe.RST | probe.ACK
	}
	var buf [64]byte
	raw := rawTCP4(buf[:0], src, dst, f, seq, ack, opts, s.ipid)
	var p probe.Probe
	p.Time = epoch.Add(at)
	p.Sensor = probe.SensorPacket
	p.Iface = "eth0"
	if err := probe.Decode(probe.LinkRaw, raw, &p); err != nil {
		tb.Fatal(err)
	}
	p.Direction = probe.DirInbound
	if out {
		p.Direction = probe.DirOutbound
	}
	return p
}

// rawTCP4 appends an IPv4 header (DF, TTL 64) and a TCP header with opts
// (whose length must be a multiple of 4) to b.
func rawTCP4(b []byte, src, dst netip.AddrPort, f probe.TCPFlags, seq, ack uint32, opts []byte, ipid uint16) []byte {
	tcpLen := 20 + len(opts)
	b = append(b, 0x45, 0)
	b = binary.BigEndian.AppendUint16(b, uint16(20+tcpLen))
	b = binary.BigEndian.AppendUint16(b, ipid)
	b = append(b, 0x40, 0, 64, byte(probe.TCP), 0, 0) // DF, TTL, protocol, checksum
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	b = append(b, s4[:]...)
	b = append(b, d4[:]...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	b = binary.BigEndian.AppendUint16(b, dst.Port())
	b = binary.BigEndian.AppendUint32(b, seq)
	b = binary.BigEndian.AppendUint32(b, ack)
	b = append(b, byte(tcpLen/4)<<4, byte(f))
	b = binary.BigEndian.AppendUint16(b, 502) // window, scaled
	b = append(b, 0, 0, 0, 0)                 // checksum, urgent pointer
	return append(b, opts...)
}

// BenchmarkOutboundConnections measures the detector's cost per successful
// outbound connection of a busy client (newOutboundStream) once the
// detector has reached its steady state: at 10 000 connections a second,
// settled attempts kept AnswerTimeout after their last packet make tens of
// thousands of entries, and every attempt's expiry is queued for
// RetransmitWindow. One op is one connection's segments (4.25 on average).
//
//	go test -run '^$' -bench Outbound -count 6 ./internal/detect/
func BenchmarkOutboundConnections(b *testing.B) {
	st := newOutboundStream(b)
	d, err := New(DefaultConfig(), func(f *Finding, u Update) {
		if u == Escalated {
			b.Fatalf("a busy client's own connections were judged %v: %s", f.Verdict, f.Reason)
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	var p probe.Probe
	i := 0
	feed := func(n int) {
		for ; n > 0; n-- {
			lapN, j := i/len(st.segs), i%len(st.segs)
			i++
			if s := &st.segs[j]; !s.prev || lapN > 0 {
				st.fill(&p, s, lapN)
				d.Observe(&p)
			}
		}
	}
	// Warm up past RetransmitWindow, so that attempts are forgotten at the
	// rate they begin, as in a daemon that has run a while.
	feed(int((DefaultConfig().RetransmitWindow+5*time.Second)/st.lapLen+1) * len(st.segs))
	b.ReportAllocs()
	b.ResetTimer()
	feed(int(float64(b.N) * st.perConn))
	b.StopTimer()
	b.ReportMetric(float64(d.attempts.len()), "attempts")
	if s := d.lookupSource(keyOf(outboundLocal)); s == nil || s.verdict != Benign || s.completed == 0 {
		b.Fatalf("the client's record is missing or not benign: %+v", s)
	}
}
