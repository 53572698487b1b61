package nft

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestExtrasRulesetAndAdoption(t *testing.T) {
	ns := newNetns(t)
	cfg := Config{Feeds: []string{"drop", "custom-1"}, PortFlood: []PortFlood{{Port: 22, Hits: 5, Seconds: 300}},
		ConnLimit: []ConnLimit{{Port: 80, Limit: 20}}, LogGroup: 7341, Throttle: Throttle{Rate: 10, Burst: 5}}
	setup(t, ns, cfg)
	rs := ruleset(t, ns)
	for _, want := range []string{"set feed_drop_4", "set feed_custom-1_6", "ip saddr @feed_drop_4 counter packets 0 bytes 0 drop",
		"chain input", "hook input priority", "log group 7341", "tcp dport 22 ct state new update @flood_tcp22_4 { ip saddr limit rate over 60/hour }",
		"add @conn_tcp80_4 { ip saddr ct count over 20 }"} {
		if !strings.Contains(rs, want) {
			t.Errorf("ruleset lacks %q:\n%s", want, rs)
		}
	}
	gen := genID(t, ns)
	setup(t, ns, cfg)
	if g := genID(t, ns); g != gen {
		t.Errorf("adopting the table with feeds and limits sent %d batches", g-gen)
	}
}

// TestFeedLoadIsAtomic: while a 100 000-prefix feed is reloaded again and
// again, a reader never sees its set empty.
func TestFeedLoadIsAtomic(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{Feeds: []string{"big"}})
	prefixes := bigFeed()
	ctx := context.Background()
	t0 := time.Now()
	if err := e.LoadFeed(ctx, "big", prefixes); err != nil {
		t.Fatal(err)
	}
	t.Logf("loaded %d prefixes in %v (BenchmarkLoadFeed measures it)", len(prefixes), time.Since(t0))
	// Reload while watching: the set's element count never drops to 0.
	var empty, looks atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			out, err := ns.tryExec("nft", "list", "set", "inet", "scanwarden", "feed_big_4")
			if err == nil {
				looks.Add(1)
				if !strings.Contains(out, "12.0.0.1") && !strings.Contains(out, "11.0.0.0/24") {
					empty.Add(1)
				}
			}
		}
	}()
	for i := 0; i < 5; i++ {
		if err := e.LoadFeed(ctx, "big", prefixes[:len(prefixes)-i]); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if empty.Load() != 0 {
		t.Fatalf("the set was seen without its first entries %d times in %d looks during reloads", empty.Load(), looks.Load())
	}
	t.Logf("%d looks during 5 reloads, never empty", looks.Load())
}

// bigFeed is a 100 000-entry feed of distinct /32s and /24s, as DROP
// lists and DShield mixes are.
func bigFeed() []netip.Prefix {
	var prefixes []netip.Prefix
	for i := 0; len(prefixes) < 100_000; i++ {
		if i%10 == 0 {
			prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{11, byte(i >> 16), byte(i >> 8), 0}), 24))
		} else {
			prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{12, byte(i >> 16), byte(i >> 8), byte(i)}), 32))
		}
	}
	return mergeForTest(prefixes)
}

// mergeForTest drops prefixes inside others (the lists package merges for
// real; the test list is built without overlaps but /24s may cover /32s).
func mergeForTest(ps []netip.Prefix) []netip.Prefix {
	covered := map[netip.Prefix]bool{}
	for _, p := range ps {
		if p.Bits() == 24 {
			covered[p] = true
		}
	}
	var out []netip.Prefix
	for _, p := range ps {
		if p.Bits() == 32 && covered[netip.PrefixFrom(p.Addr(), 24).Masked()] {
			continue
		}
		out = append(out, p)
	}
	return out
}

// TestPortFloodAndConnLimit: a source's sixth new connection to port 2222
// within the period is dropped; a second source is not affected; a source
// holding 3 connections to port 8080 cannot open a fourth.
func TestPortFloodAndConnLimit(t *testing.T) {
	target, peer := newNetns(t), newNetns(t)
	veth(t, target, "t0", peer, "p0")
	target.ip(t, "addr", "add", "10.99.9.2/24", "dev", "t0")
	peer.ip(t, "addr", "add", "10.99.9.1/24", "dev", "p0")
	peer.ip(t, "addr", "add", "10.99.9.3/24", "dev", "p0")
	setup(t, target, Config{PortFlood: []PortFlood{{Port: 2222, Hits: 5, Seconds: 300}}, ConnLimit: []ConnLimit{{Port: 8080, Limit: 3}}})
	serve(t, target, 2222)
	for i := 1; i <= 6; i++ {
		ok := connect(t, peer, "10.99.9.1", "10.99.9.2", 2222)
		if want := i <= 5; ok != want {
			t.Fatalf("portflood: connection %d succeeded=%v, want %v", i, ok, want)
		}
	}
	expectConnect(t, peer, "10.99.9.3", "10.99.9.2", 2222, true)

	// connlimit: hold connections open.
	var ln net.Listener
	target.do(t, func() {
		var err error
		ln, err = net.Listen("tcp", "[::]:8080")
		if err != nil {
			t.Fatal(err)
		}
	})
	defer ln.Close()
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	var open []net.Conn
	for i := 0; i < 4; i++ {
		var c net.Conn
		var err error
		peer.do(t, func() {
			d := net.Dialer{Timeout: time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP("10.99.9.1")}}
			c, err = d.Dial("tcp", "10.99.9.2:"+strconv.Itoa(8080))
		})
		if want := i < 3; (err == nil) != want {
			t.Fatalf("connlimit: connection %d: err %v, want success %v", i+1, err, want)
		}
		if err == nil {
			open = append(open, c)
		}
	}
	for _, c := range open {
		c.Close()
	}
	_ = fmt.Sprint()
}
