package flowlog

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The benchmark mix: an access router NATting ~5 000 internal clients.
//
//   - clients: 5 000 IPv4 addresses in 10.0.0.0/18, NATted to 16 public
//     addresses (203.0.113.0/28); 40 % also have IPv6 (2001:db8:c::/48,
//     not translated) and make half their flows over it.
//   - destinations: 10 % DNS to two resolvers (UDP 53); 55 % a set of 2 000
//     popular servers, Zipf-distributed (s=1.1) like CDN traffic, TCP 443
//     (75 %), QUIC (15 %), TCP 80 (10 %); 20 % each client's own few
//     servers (mail, SSH, VPN: 443, 993, 22, 25, 8080); 14 % peer-to-peer
//     to random IPv4 peers, port 6881 for 30 % of them, else a random high
//     port, a third unanswered and a fifth refused; 1 % ICMP echo.
//   - times: flows end in increasing order (as conntrack reports them),
//     exponentially spaced at the given rate; DNS lasts 10-50 ms, most
//     others a lognormal around 2 s, 2 % up to 3 hours.
//   - counters: packets geometric (mean ~12), bytes by packet size;
//     unanswered flows 1-3 packets. NAT keeps the source port 90 % of the
//     time. 0.5 % are the router's own processes (pid, uid, comm).
//   - the flow of the operator's question: every 10 000th flow is client
//     10.0.3.7 connecting to 198.51.100.103:6881.
type flowGen struct {
	r        *rand.Rand
	zipf     *rand.Zipf
	t        float64 // ns: the end of the last flow
	step     float64 // mean ns between flows
	n        int
	clients  []netip.Addr
	clients6 []netip.Addr // invalid for clients without IPv6
	pub      []netip.Addr
	popular  []netip.Addr
	popular6 []netip.Addr
	dns      []netip.Addr
}

var (
	benchStart  = time.Date(2026, 6, 18, 0, 0, 0, 0, time.UTC)
	benchClient = netip.MustParseAddr("10.0.3.7")
	benchPeer   = netip.MustParseAddrPort("198.51.100.103:6881")
)

func newFlowGen(seed uint64, rate float64) *flowGen {
	r := rand.New(rand.NewPCG(seed, 0x5ca9))
	g := &flowGen{r: r, step: 1e9 / rate, t: float64(benchStart.UnixNano())}
	g.zipf = rand.NewZipf(r, 1.1, 1, 1999)
	used := map[uint32]bool{}
	for len(g.clients) < 5000 {
		v := 0x0a000000 | uint32(r.IntN(1<<14))
		if used[v] || v == 0x0a000307 {
			continue
		}
		used[v] = true
		g.clients = append(g.clients, addr4(v))
		var a6 netip.Addr
		if r.IntN(10) < 4 {
			a6 = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 0x0c, 6: byte(len(g.clients) >> 8), 7: byte(len(g.clients)), 8: 2, 15: byte(r.IntN(256))})
		}
		g.clients6 = append(g.clients6, a6)
	}
	g.clients[3] = benchClient // the client of the operator's question
	for i := range 16 {
		g.pub = append(g.pub, addr4(0xcb007100|uint32(i)))
	}
	for range 2000 {
		g.popular = append(g.popular, addr4(randPublic(r)))
		var b [16]byte
		binary.BigEndian.PutUint64(b[:], 0x2a00000000000000|r.Uint64()>>8)
		binary.BigEndian.PutUint64(b[8:], r.Uint64())
		g.popular6 = append(g.popular6, netip.AddrFrom16(b))
	}
	g.dns = []netip.Addr{netip.MustParseAddr("192.0.2.53"), netip.MustParseAddr("192.0.2.54")}
	return g
}

func addr4(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// randPublic is a random address outside 0/8, 10/8, 127/8 and 224/3.
func randPublic(r *rand.Rand) uint32 {
	for {
		v := r.Uint32()
		if o := v >> 24; o != 0 && o != 10 && o != 127 && o < 224 {
			return v
		}
	}
}

func (g *flowGen) next(f *Flow) {
	r := g.r
	g.n++
	g.t += r.ExpFloat64() * g.step
	end := int64(g.t)
	ci := r.IntN(len(g.clients))
	v6 := g.clients6[ci].IsValid() && r.IntN(2) == 0
	src := g.clients[ci]
	if v6 {
		src = g.clients6[ci]
	}
	*f = Flow{Proto: 6, Outcome: OutcomeEstablished, Iface: "br-lan"}
	if r.IntN(50) == 0 {
		f.Iface = "wg0"
	}
	var dst netip.Addr
	var dport uint16
	dur := time.Duration(math.Exp(r.NormFloat64()*1.2) * float64(2*time.Second))
	switch x := r.IntN(100); {
	case g.n%10000 == 0:
		src, v6, dst, dport = benchClient, false, benchPeer.Addr(), benchPeer.Port()
	case x < 10:
		v6 = false
		src = g.clients[ci]
		dst, dport, f.Proto = g.dns[r.IntN(2)], 53, 17
		dur = time.Duration(10+r.IntN(40)) * time.Millisecond
	case x < 65:
		i := g.zipf.Uint64()
		dst = g.popular[i]
		if v6 {
			dst = g.popular6[i]
		}
		switch y := r.IntN(20); {
		case y < 15:
			dport = 443
		case y < 18:
			dport, f.Proto = 443, 17
		default:
			dport = 80
		}
	case x < 85:
		h := mix64(uint64(ci)<<8 | uint64(r.IntN(6)))
		dst = addr4(uint32(h) | 0x01000000)
		if v6 {
			dst = netip.AddrFrom16([16]byte{0x2a, 0x01, 2: byte(h >> 56), 3: byte(h >> 48), 4: byte(h >> 40), 15: byte(h)})
		}
		dport = []uint16{443, 443, 993, 22, 25, 8080}[h%6]
	case x < 99:
		v6 = false
		src = g.clients[ci]
		dst = addr4(randPublic(r))
		dport = 6881
		if r.IntN(10) >= 3 {
			dport = uint16(1024 + r.IntN(64512))
		}
		if r.IntN(5) < 2 {
			f.Proto = 17
		}
		switch y := r.IntN(15); {
		case y < 5:
			f.Outcome = OutcomeUnanswered
		case y < 8:
			f.Outcome = OutcomeRefused
		}
	default:
		v6 = false
		src = g.clients[ci]
		dst, f.Proto = g.popular[r.IntN(20)], 1
	}
	if r.IntN(50) == 0 {
		dur = time.Duration(r.Int64N(int64(3 * time.Hour)))
	}
	if f.Outcome != OutcomeEstablished {
		dur = time.Duration(r.Int64N(int64(30 * time.Second)))
	}
	sport := uint16(32768 + r.IntN(28232))
	if f.Proto == 1 {
		sport, dport = uint16(r.IntN(65536)), 0
	}
	f.End = time.Unix(0, end).UTC()
	f.Start = f.End.Add(-dur)
	f.Src, f.Dst = netip.AddrPortFrom(src, sport), netip.AddrPortFrom(dst, dport)
	f.NATSrc, f.NATDst = f.Src, f.Dst
	if !v6 {
		nport := sport
		if r.IntN(10) == 0 && f.Proto != 1 {
			nport = uint16(1024 + r.IntN(64512))
		}
		f.NATSrc = netip.AddrPortFrom(g.pub[ci%len(g.pub)], nport)
	}
	switch f.Outcome {
	case OutcomeEstablished:
		p := 2 + uint64(r.ExpFloat64()*10)
		f.OrigPackets, f.ReplyPackets = p, p+uint64(r.IntN(int(p)))
		f.OrigBytes = p * uint64(52+r.IntN(200))
		f.ReplyBytes = f.ReplyPackets * uint64(52+r.IntN(1400))
	case OutcomeRefused:
		f.OrigPackets, f.OrigBytes, f.ReplyPackets, f.ReplyBytes = 1, 60, 1, 40
	case OutcomeUnanswered:
		p := 1 + uint64(r.IntN(3))
		f.OrigPackets, f.OrigBytes = p, p*60
	}
	if r.IntN(200) == 0 {
		f.PID, f.UID, f.Comm, f.Iface = uint32(300+r.IntN(3000)), uint32(r.IntN(3)*100), []string{"unbound", "chronyd", "apt-get"}[r.IntN(3)], ""
	}
}

// BenchmarkIngest appends the benchmark mix at 200 000 flows/s of flow
// time, as fast as it goes, and flushes: flows/s is the whole path
// (Append, sort, encode, compress, commit), B/flow what the directory
// holds afterwards (with the WAL), B/flow-closed after Close checkpoints.
// For a stable figure, run it long: -benchtime=4000000x.
func BenchmarkIngest(b *testing.B) {
	g := newFlowGen(1, 200000)
	pool := make([]Flow, 1<<18)
	for i := range pool {
		g.next(&pool[i])
	}
	span := pool[len(pool)-1].End.Sub(pool[0].End) + time.Millisecond
	dir := b.TempDir()
	l, err := Open(Options{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := range b.N {
		if i > 0 && i%len(pool) == 0 {
			b.StopTimer()
			for j := range pool {
				pool[j].Start, pool[j].End = pool[j].Start.Add(span), pool[j].End.Add(span)
			}
			b.StartTimer()
		}
		if err := l.Append(&pool[i%len(pool)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := l.Flush(); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	elapsed := time.Since(start)
	st := l.Stats()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	closed := l.Stats().DiskBytes
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "flows/s")
	b.ReportMetric(float64(st.DiskBytes)/float64(b.N), "B/flow")
	b.ReportMetric(float64(closed)/float64(b.N), "B/flow-closed")
}

// BenchmarkDecodeBlock is one block of the benchmark mix: inflating and
// decoding, per flow.
func BenchmarkDecodeBlock(b *testing.B) {
	g := newFlowGen(1, 1000)
	flows := make([]Flow, DefaultBatchFlows)
	for i := range flows {
		g.next(&flows[i])
	}
	var st strTable
	st.reset()
	recs := make([]rec, len(flows))
	for i := range flows {
		recs[i].fill(&flows[i], st.add)
	}
	sortInPlace(recs, nil)
	e := newEncoder()
	_, blk, _ := e.encode(recs[:DefaultBlockFlows], st.strs)
	raw := append([]byte(nil), e.raw...)
	block := append([]byte(nil), blk...)
	var d decoder
	b.Run("inflate", func(b *testing.B) {
		var buf []byte
		for range b.N {
			buf, _ = zdec().DecodeAll(block, buf[:0])
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*DefaultBlockFlows), "ns/flow")
	})
	b.Run("decode", func(b *testing.B) {
		for range b.N {
			if _, _, err := d.decodeRaw(raw); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*DefaultBlockFlows), "ns/flow")
	})
	b.Logf("block: %d bytes raw, %d stored", len(raw), len(block))
}

// Query benchmark: a log of SWD_FLOWLOG_BENCH_N flows (default 2 000 000)
// of the benchmark mix at SWD_FLOWLOG_BENCH_RATE flows/s of flow time
// (default 1 000, so 100 M flows span 28 hours in two daily partitions),
// built once per run in a temporary directory, or once for good in
// SWD_FLOWLOG_BENCH_DIR. SWD_FLOWLOG_BENCH_COLD=1 evicts the partition
// files from the page cache before each query (posix_fadvise), as for a
// query about last month.
var (
	benchOnce sync.Once
	benchDir  string
	benchTmp  string
	benchErr  error
	benchN    int
	benchRate float64
)

func envNumber(b *testing.B, name string, def float64) float64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || v <= 0 {
		b.Fatalf("%s=%q: want a positive number", name, s)
	}
	return v
}

func benchLog(b *testing.B) *Log {
	benchN = int(envNumber(b, "SWD_FLOWLOG_BENCH_N", 2_000_000))
	benchRate = envNumber(b, "SWD_FLOWLOG_BENCH_RATE", 1000)
	benchOnce.Do(func() {
		benchDir = os.Getenv("SWD_FLOWLOG_BENCH_DIR")
		if benchDir == "" {
			benchTmp, benchErr = os.MkdirTemp("", "flowlog-bench-")
			benchDir = benchTmp
		}
		if benchErr == nil {
			benchErr = buildBenchLog(b, benchDir, benchN, benchRate)
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	l, err := OpenReadOnly(benchDir)
	if err != nil {
		b.Fatal(err)
	}
	return l
}

// benchLayout names the way blocks are cut (3: long flows in batches of
// their own), so that a log built by older code is not reused.
const benchLayout = 3

// buildBenchLog fills dir unless a marker says it holds this log already.
func buildBenchLog(b *testing.B, dir string, n int, rate float64) error {
	marker := filepath.Join(dir, fmt.Sprintf("bench-n%d-rate%g-v%d-layout%d.done", n, rate, blockVersion, benchLayout))
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "flows-*")); len(files) > 0 {
		return fmt.Errorf("%s holds another log (no %s); empty it or name another directory", dir, filepath.Base(marker))
	}
	l, err := Open(Options{Dir: dir})
	if err != nil {
		return err
	}
	g := newFlowGen(2, rate)
	var f Flow
	start := time.Now()
	var genTime time.Duration
	for i := range n {
		t := time.Now()
		g.next(&f)
		genTime += time.Since(t)
		if err := l.Append(&f); err != nil {
			l.Close()
			return err
		}
		if i%10_000_000 == 0 && i > 0 {
			b.Logf("built %d M flows in %v", i/1_000_000, time.Since(start).Round(time.Second))
		}
	}
	if err := l.Flush(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	st := l.Stats()
	if err := l.Close(); err != nil {
		return err
	}
	closed := l.Stats().DiskBytes
	b.Logf("built %d flows (%v of flow time) in %v: %.0f flows/s appended (%.0f without the generator's %v); "+
		"%.1f bytes a flow after Flush, %.1f after Close (%d partitions, %.2f GB)",
		n, time.Duration(float64(n)/rate*1e9).Round(time.Minute), elapsed.Round(time.Millisecond),
		float64(n)/elapsed.Seconds(), float64(n)/(elapsed-genTime).Seconds(), genTime.Round(time.Millisecond),
		float64(st.DiskBytes)/float64(n), float64(closed)/float64(n), st.Partitions, float64(closed)/1e9)
	return os.WriteFile(marker, nil, 0o640)
}

// BenchmarkQuery: the operator's questions. dst+port/15min is "who
// connected to 198.51.100.103:6881 in these 15 minutes"; src/all is
// everything one internal client did; port/1h every flow to port 6881 in
// an hour. The windows end in the middle of the log. flows is the number
// of results.
func BenchmarkQuery(b *testing.B) {
	l := benchLog(b)
	defer l.Close()
	span := time.Duration(float64(benchN) / benchRate * 1e9)
	mid := benchStart.Add(span / 2)
	cold := os.Getenv("SWD_FLOWLOG_BENCH_COLD") == "1"
	peer := netip.PrefixFrom(benchPeer.Addr(), 32)
	for _, c := range []struct {
		name string
		f    Filter
	}{
		{"dst+port/15min", Filter{Dst: peer, Port: benchPeer.Port(), Since: mid.Add(-15 * time.Minute), Until: mid}},
		{"src/all", Filter{Src: netip.PrefixFrom(benchClient, 32)}},
		{"port/1h", Filter{Port: 6881, Since: mid.Add(-time.Hour), Until: mid}},
		{"dst+port/all", Filter{Dst: peer, Port: benchPeer.Port()}},
		{"srcnet/15min", Filter{Src: netip.MustParsePrefix("10.0.3.0/24"), Since: mid.Add(-15 * time.Minute), Until: mid}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var n int
			for range b.N {
				if cold {
					b.StopTimer()
					evict(b, l.Dir())
					b.StartTimer()
				}
				n = 0
				if err := l.Query(context.Background(), c.f, func(*Flow) error { n++; return nil }); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "flows")
			b.ReportMetric(float64(benchN), "logflows")
		})
	}
}

// evict drops the log's files from the page cache.
func evict(b *testing.B, dir string) {
	files, _ := filepath.Glob(filepath.Join(dir, "flows-*"))
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCrashChild); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	code := m.Run()
	if benchTmp != "" {
		os.RemoveAll(benchTmp)
	}
	os.Exit(code)
}
