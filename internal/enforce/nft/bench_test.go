package nft

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/enforce"
)

// Benchmarks against the real kernel, as root, in namespaces of their own.
// See docs/benchmarks.md for figures and the commands that produced them.

// hostBans returns n distinct /32 bans in 10.0.0.0/8 from first on, every
// other address (so no two are adjacent), expiring at exp.
func hostBans(first netip.Addr, n int, exp time.Time) []enforce.Ban {
	out := make([]enforce.Ban, n)
	a := first
	for i := range out {
		out[i] = enforce.Ban{Prefix: netip.PrefixFrom(a, 32), Expires: exp}
		a = a.Next().Next()
	}
	return out
}

func prefixesOf(bans []enforce.Ban) []netip.Prefix {
	out := make([]netip.Prefix, len(bans))
	for i, b := range bans {
		out[i] = b.Prefix
	}
	return out
}

// BenchmarkApply measures ban insertion: one Apply of a batch of distinct
// /32 bans with timeouts, into an empty set or one already holding 100 000
// bans (Apply reads the set it changes, so its size counts). Reported as
// bans/s; the removal after each batch is not timed.
func BenchmarkApply(b *testing.B) {
	ns := newNetns(b)
	e := setup(b, ns, Config{})
	ctx := context.Background()
	for _, tc := range []struct{ batch, held int }{
		{1, 0}, {1_000, 0}, {10_000, 0}, {1, 100_000}, {1_000, 100_000}, {10_000, 100_000},
	} {
		b.Run(fmt.Sprintf("batch=%d/held=%d", tc.batch, tc.held), func(b *testing.B) {
			exp := time.Now().Add(time.Hour)
			if err := e.Teardown(ctx); err != nil {
				b.Fatal(err)
			}
			if err := e.Setup(ctx); err != nil {
				b.Fatal(err)
			}
			apply(b, e, hostBans(netip.MustParseAddr("10.128.0.0"), tc.held, exp))
			batch := hostBans(netip.MustParseAddr("10.0.0.0"), tc.batch, exp)
			remove := prefixesOf(batch)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := e.Apply(ctx, batch, nil); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				apply(b, e, nil, remove...)
				b.StartTimer()
			}
			b.ReportMetric(float64(tc.batch*b.N)/b.Elapsed().Seconds(), "bans/s")
		})
	}
}

// BenchmarkBans measures listing a set of 100 000 bans: from the
// enforcer's copy (nothing changed since it was made) and read afresh (a
// dump of the set, as after any other program's commit).
func BenchmarkBans(b *testing.B) {
	ns := newNetns(b)
	e := setup(b, ns, Config{})
	apply(b, e, hostBans(netip.MustParseAddr("10.128.0.0"), 100_000, time.Now().Add(time.Hour)))
	for _, fresh := range []bool{false, true} {
		b.Run(fmt.Sprintf("held=100000/read=%v", fresh), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if fresh {
					e.forget()
				}
				bans, err := e.Bans(context.Background())
				if err != nil || len(bans) != 100_000 {
					b.Fatalf("Bans: %d, %v", len(bans), err)
				}
			}
		})
	}
}

// BenchmarkPacketPath measures what a large ban list costs every packet
// that is NOT banned, which must walk it all: 100 000 banned addresses as
// one nftables set versus as 100 000 iptables rules (`-A INPUT -s ADDR -j
// DROP`, loaded with iptables-restore, through both the nft and the legacy
// backends), against no rules at all, in one run.
//
// A client in one namespace sends UDP to a server in another over a veth
// pair, from an address in no ban. veth hands a packet to the receiving
// stack in the sender's own softirq, so the receiver's netfilter work is
// on the timed path. Two modes, ns/op per packet:
//
//   - flood: the client sends as fast as it can to a socket nobody reads
//     (the packets are dropped after the firewall, when the socket buffer
//     is full): the CPU cost of a packet's path, firewall included.
//   - echo: the server echoes each packet, 32 in flight: a round trip,
//     with the scheduling noise of two processes.
func BenchmarkPacketPath(b *testing.B) {
	const n = 100_000
	client, server := newNetns(b), newNetns(b)
	veth(b, client, "vc", server, "vs")
	client.ip(b, "addr", "add", "10.77.0.2/24", "dev", "vc")
	server.ip(b, "addr", "add", "10.77.0.1/24", "dev", "vs")
	echo, sink := udpPair(b, client, server)
	banned := hostBans(netip.MustParseAddr("10.128.0.0"), n, time.Now().Add(time.Hour))
	run := func(rules string) {
		b.Run(rules+"/mode=flood", func(b *testing.B) { flood(b, sink) })
		b.Run(rules+"/mode=echo", func(b *testing.B) { pingPong(b, echo) })
	}

	run("rules=none")

	e := setup(b, server, Config{})
	apply(b, e, banned)
	run(fmt.Sprintf("rules=nft-set-%d", n))
	if err := e.Teardown(context.Background()); err != nil {
		b.Fatal(err)
	}

	var rules strings.Builder
	rules.WriteString("*filter\n:INPUT ACCEPT [0:0]\n")
	for _, ban := range banned {
		fmt.Fprintf(&rules, "-A INPUT -s %s -j DROP\n", ban.Prefix.Addr())
	}
	rules.WriteString("COMMIT\n")
	for _, backend := range []string{"nft", "legacy"} {
		restore := "iptables-" + backend + "-restore"
		if _, err := exec.LookPath(restore); err != nil {
			b.Logf("no %s: skipping iptables with the %s backend", restore, backend)
			continue
		}
		iptablesRestore(b, server, restore, rules.String())
		run(fmt.Sprintf("rules=iptables-%s-%d", backend, n))
		iptablesRestore(b, server, restore, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n") // flush
	}
}

func iptablesRestore(b *testing.B, ns *netns, restore, rules string) {
	b.Helper()
	f := b.TempDir() + "/rules"
	if err := os.WriteFile(f, []byte(rules), 0o600); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	ns.exec(b, restore, f)
	b.Logf("%s of %d bytes: %v", restore, len(rules), time.Since(start).Round(time.Millisecond))
}

// udpPair starts a UDP echo server on 10.77.0.1:9000 in server, and a
// socket on port 9001 that nobody reads, and returns client sockets in
// client connected to each.
func udpPair(b *testing.B, client, server *netns) (echo, sink *net.UDPConn) {
	b.Helper()
	var srv, drop net.PacketConn
	server.do(b, func() {
		var err error
		if srv, err = net.ListenPacket("udp4", "10.77.0.1:9000"); err != nil {
			b.Fatal(err)
		}
		if drop, err = net.ListenPacket("udp4", "10.77.0.1:9001"); err != nil {
			b.Fatal(err)
		}
	})
	b.Cleanup(func() { srv.Close(); drop.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := srv.ReadFrom(buf)
			if err != nil {
				return
			}
			srv.WriteTo(buf[:n], from)
		}
	}()
	client.do(b, func() {
		var err error
		local := &net.UDPAddr{IP: net.IPv4(10, 77, 0, 2)}
		if echo, err = net.DialUDP("udp4", local, &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 9000}); err != nil {
			b.Fatal(err)
		}
		if sink, err = net.DialUDP("udp4", local, &net.UDPAddr{IP: net.IPv4(10, 77, 0, 1), Port: 9001}); err != nil {
			b.Fatal(err)
		}
	})
	b.Cleanup(func() { echo.Close(); sink.Close() })
	return echo, sink
}

// flood sends b.N packets without waiting for anything.
func flood(b *testing.B, conn *net.UDPConn) {
	payload := make([]byte, 32)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := conn.Write(payload); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
}

// pingPong sends b.N packets, window at a time, and waits for their echoes.
func pingPong(b *testing.B, conn *net.UDPConn) {
	const window = 32
	payload := make([]byte, 32)
	buf := make([]byte, 2048)
	lost := 0
	b.ResetTimer()
	for sent := 0; sent < b.N; {
		w := min(window, b.N-sent)
		for i := 0; i < w; i++ {
			if _, err := conn.Write(payload); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < w; i++ {
			conn.SetReadDeadline(time.Now().Add(2 * time.Second))
			if _, err := conn.Read(buf); err != nil {
				lost += w - i
				break
			}
		}
		sent += w
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pkts/s")
	if lost > b.N/100 {
		b.Errorf("%d of %d packets lost", lost, b.N)
	}
	// Drain late echoes so they do not count for the next run.
	for {
		conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := conn.Read(buf); err != nil {
			break
		}
	}
}

// BenchmarkLoadFeed measures reloading a blocklist feed of 100 000
// prefixes (/32s and /24s, as DROP lists and DShield mixes are) into its
// interval set: one transaction that replaces the whole set.
func BenchmarkLoadFeed(b *testing.B) {
	ns := newNetns(b)
	e := setup(b, ns, Config{Feeds: []string{"big"}})
	prefixes := bigFeed()
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if err := e.LoadFeed(ctx, "big", prefixes); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(prefixes)*b.N)/b.Elapsed().Seconds(), "prefixes/s")
}
