package triage

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeLog is a connection log in memory, answering as Lookup documents.
type fakeLog struct {
	mu      sync.Mutex
	conns   []Conn
	queries []Query
	err     error
}

func (f *fakeLog) Conns(ctx context.Context, q Query) ([]Conn, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.queries = append(f.queries, q)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if f.err != nil {
		return nil, f.err
	}
	var out []Conn
	for _, c := range f.conns {
		switch {
		case c.Outside.Addr() != q.Src,
			q.SrcPort != 0 && c.Outside.Port() != q.SrcPort,
			q.Dst.IsValid() && c.Dst.Addr() != q.Dst,
			q.DstPort != 0 && c.Dst.Port() != q.DstPort,
			q.Proto != 0 && c.Proto != q.Proto,
			c.End.Before(q.Since), c.Start.After(q.Until):
			continue
		}
		out = append(out, c)
		if len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

var (
	ours     = netip.MustParseAddr("203.0.113.9")
	reporter = netip.MustParseAddrPort("198.51.100.103:6881")
	client23 = netip.MustParseAddr("10.0.0.23")
)

func at(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return t
}

// registryLog holds what the NAT gateway logged for the registry case: the
// four BitTorrent connection attempts of 10.0.0.23, each retransmitted and
// unanswered, plus other traffic around them that must not match. shift
// moves every time (a log in another clock).
func registryLog(shift time.Duration) *fakeLog {
	conn := func(sport uint16, start, end string, pkts uint64) Conn {
		return Conn{
			Start: at(start).Add(shift), End: at(end).Add(shift), Proto: 6,
			Client:  netip.AddrPortFrom(client23, 6881+sport%7),
			Outside: netip.AddrPortFrom(ours, sport),
			Dst:     reporter, Outcome: "unanswered", OrigPackets: pkts, Iface: "eth1",
		}
	}
	f := &fakeLog{conns: []Conn{
		conn(52218, "2013-06-18 15:53:34", "2013-06-18 15:53:43", 3),
		conn(52518, "2013-06-18 15:54:59", "2013-06-18 15:55:08", 3),
		conn(52676, "2013-06-18 15:55:58", "2013-06-18 15:56:07", 3),
		conn(53190, "2013-06-18 16:00:39", "2013-06-18 16:00:39", 1),
	}}
	// Another customer behind the same address, same minutes, other peer.
	f.conns = append(f.conns, Conn{
		Start: at("2013-06-18 15:53:35").Add(shift), End: at("2013-06-18 15:58:00").Add(shift), Proto: 6,
		Client:  netip.MustParseAddrPort("10.0.0.42:40000"),
		Outside: netip.AddrPortFrom(ours, 52219),
		Dst:     netip.MustParseAddrPort("198.51.100.200:443"), Outcome: "established", OrigPackets: 40, ReplyPackets: 38,
	})
	// The same client's port reused for the same peer, a day earlier.
	f.conns = append(f.conns, conn(52218, "2013-06-17 15:53:34", "2013-06-17 15:53:43", 3))
	f.conns[len(f.conns)-1].Client = netip.MustParseAddrPort("10.0.0.99:1234")
	return f
}

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func run(t *testing.T, report string, log Lookup, opts Options) *Result {
	t.Helper()
	res, err := Run(context.Background(), strings.NewReader(report), t.Name(), log, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func text(t *testing.T, res *Result) string {
	t.Helper()
	var b strings.Builder
	if err := res.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
