package route

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/enforce"
)

var ctx = context.Background()

func newEnforcer(t *testing.T, ns *netns, cfg Config) *Enforcer {
	t.Helper()
	cfg.NetNS = ns.fd
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

func bans(ps ...string) []enforce.Ban {
	var out []enforce.Ban
	for _, p := range ps {
		out = append(out, enforce.Ban{Prefix: netip.MustParsePrefix(p)})
	}
	return out
}

func prefixes(ps ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func listed(t *testing.T, e *Enforcer) []string {
	t.Helper()
	bs, err := e.Bans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := []string{}
	for _, b := range bs {
		if !b.Expires.IsZero() {
			t.Errorf("%v has an expiry", b.Prefix)
		}
		out = append(out, b.Prefix.String())
	}
	return out
}

func apply(t *testing.T, e *Enforcer, add []enforce.Ban, remove []netip.Prefix) {
	t.Helper()
	if err := e.Apply(ctx, add, remove); err != nil {
		t.Fatal(err)
	}
}

// routes is `ip route show` for both families and every table, one route
// a line, for comparing.
func routes(t *testing.T, ns *netns) string {
	return ns.run(t, "ip", "-4", "route", "show", "table", "all") + ns.run(t, "ip", "-6", "route", "show", "table", "all")
}

// TestBlocksTCP: with a blackhole route to the peer, the server's SYN/ACK
// cannot be routed back and the peer cannot connect; without it, it can.
func TestBlocksTCP(t *testing.T) {
	p := newPair(t)
	e := newEnforcer(t, p.server, Config{})
	for _, tc := range []struct {
		network, listen, peer string
	}{
		{"tcp4", "10.231.0.1:0", "10.231.0.2/32"},
		{"tcp6", "[fd00:231::1]:0", "fd00:231::2/128"},
	} {
		t.Run(tc.network, func(t *testing.T) {
			port := p.listen(t, tc.network, tc.listen)
			host, _, _ := net.SplitHostPort(tc.listen)
			addr := net.JoinHostPort(strings.Trim(host, "[]"), port)
			if err := p.connect(tc.network, addr, 2*time.Second); err != nil {
				t.Fatalf("before the ban: %v", err)
			}

			apply(t, e, bans(tc.peer), nil)
			out := p.server.run(t, "ip", "route", "show", "proto", "251", "type", "blackhole", "table", "main")
			if tc.network == "tcp6" {
				out = p.server.run(t, "ip", "-6", "route", "show", "proto", "251", "type", "blackhole", "table", "main")
			}
			if !strings.Contains(out, strings.TrimSuffix(strings.TrimSuffix(tc.peer, "/32"), "/128")) {
				t.Errorf("ip route does not show the blackhole route:\n%s", out)
			}
			err := p.connect(tc.network, addr, time.Second)
			if err == nil {
				t.Fatal("the banned peer connected")
			}
			if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
				t.Errorf("the connection failed, but not by going unanswered: %v", err)
			}

			apply(t, e, nil, prefixes(tc.peer))
			if err := p.connect(tc.network, addr, 2*time.Second); err != nil {
				t.Fatalf("after the ban was lifted: %v", err)
			}
		})
	}
}

func TestApplyBansTeardown(t *testing.T) {
	ns := newNetns(t)
	// Routes that are not ours: a static blackhole in the same table, one
	// of another daemon's protocol, and ours in another table.
	ns.run(t, "ip", "route", "add", "blackhole", "198.51.100.0/24", "proto", "static")
	ns.run(t, "ip", "route", "add", "blackhole", "203.0.113.0/24", "proto", "bird")
	ns.run(t, "ip", "-6", "route", "add", "blackhole", "2001:db8:99::/48", "proto", "static")
	ns.run(t, "ip", "route", "add", "blackhole", "192.0.2.99", "proto", "251", "table", "100")
	others := routes(t, ns)

	e := newEnforcer(t, ns, Config{})
	if got := listed(t, e); len(got) != 0 {
		t.Fatalf("Bans in a fresh namespace: %v", got)
	}
	apply(t, e, bans("192.0.2.7/32", "192.0.2.9/24", "2001:db8::7/128", "2001:db8:1::/48", "::ffff:10.9.9.9/128"), nil)
	want := []string{"10.9.9.9/32", "192.0.2.0/24", "192.0.2.7/32", "2001:db8::7/128", "2001:db8:1::/48"}
	if got := listed(t, e); !slices.Equal(got, want) {
		t.Errorf("Bans: %v, want %v", got, want)
	}

	// Idempotent: the same again, and removing what is not there.
	apply(t, e, bans("192.0.2.7/32", "2001:db8::7/128"), prefixes("192.0.2.100/32", "2001:db8:5::/64"))
	apply(t, e, bans("192.0.2.7/32"), nil)
	if got := listed(t, e); !slices.Equal(got, want) {
		t.Errorf("Bans after repeating: %v, want %v", got, want)
	}

	apply(t, e, nil, prefixes("192.0.2.0/24", "2001:db8::7/128"))
	if got := listed(t, e); !slices.Equal(got, []string{"10.9.9.9/32", "192.0.2.7/32", "2001:db8:1::/48"}) {
		t.Errorf("Bans after removal: %v", got)
	}

	if err := e.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := routes(t, ns); got != others {
		t.Errorf("Teardown touched other routes:\n%s\nwant:\n%s", got, others)
	}
	if got := listed(t, e); len(got) != 0 {
		t.Errorf("Bans after Teardown: %v", got)
	}
	if err := e.Teardown(ctx); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
}

// TestConflict: a ban whose route key is taken by someone else's route
// fails without touching that route, and does not stop the others.
func TestConflict(t *testing.T) {
	ns := newNetns(t)
	ns.run(t, "ip", "route", "add", "unreachable", "198.51.100.0/24", "proto", "static")
	ns.run(t, "ip", "-6", "route", "add", "unreachable", "2001:db8:99::/48", "proto", "static")
	before := routes(t, ns)
	e := newEnforcer(t, ns, Config{})
	err := e.Apply(ctx, bans("198.51.100.0/24", "2001:db8:99::/48", "192.0.2.7/32"), nil)
	if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "198.51.100.0/24") || !strings.Contains(err.Error(), "2001:db8:99::/48") {
		t.Fatalf("Apply over another's route: %v", err)
	}
	if got := listed(t, e); !slices.Equal(got, []string{"192.0.2.7/32"}) {
		t.Errorf("Bans: %v", got)
	}
	apply(t, e, nil, prefixes("198.51.100.0/24", "2001:db8:99::/48", "192.0.2.7/32"))
	if got := routes(t, ns); got != before {
		t.Errorf("another's route was changed:\n%s\nwant:\n%s", got, before)
	}
}

// TestRepairsType: a route of ours someone turned into another type is
// made a blackhole again.
func TestRepairsType(t *testing.T) {
	ns := newNetns(t)
	e := newEnforcer(t, ns, Config{})
	apply(t, e, bans("192.0.2.7/32", "2001:db8::7/128"), nil)
	ns.run(t, "ip", "route", "replace", "unreachable", "192.0.2.7", "proto", "251")
	ns.run(t, "ip", "-6", "route", "replace", "prohibit", "2001:db8::7", "proto", "251")
	apply(t, e, bans("192.0.2.7/32", "2001:db8::7/128"), nil)
	out := ns.run(t, "ip", "route", "show", "proto", "251") + ns.run(t, "ip", "-6", "route", "show", "proto", "251")
	if strings.Count(out, "blackhole") != 2 || strings.Contains(out, "unreachable") || strings.Contains(out, "prohibit") {
		t.Errorf("routes:\n%s", out)
	}
}

func TestOtherTableAndProtocol(t *testing.T) {
	ns := newNetns(t)
	e := newEnforcer(t, ns, Config{Table: 1000, Protocol: 200})
	main := newEnforcer(t, ns, Config{})
	apply(t, e, bans("192.0.2.7/32", "2001:db8::7/128"), nil)
	out := ns.run(t, "ip", "route", "show", "table", "1000") + ns.run(t, "ip", "-6", "route", "show", "table", "1000")
	if !strings.Contains(out, "blackhole 192.0.2.7 proto 200") || !strings.Contains(out, "blackhole 2001:db8::7 dev lo proto 200") {
		t.Errorf("table 1000:\n%s", out)
	}
	if got := listed(t, main); len(got) != 0 {
		t.Errorf("the main-table enforcer lists %v", got)
	}
	if err := main.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, e); len(got) != 2 {
		t.Errorf("after the other's Teardown: %v", got)
	}
}

func TestManyInOneApply(t *testing.T) {
	ns := newNetns(t)
	e := newEnforcer(t, ns, Config{})
	var add []enforce.Ban
	for i := range 1000 {
		add = append(add, enforce.Ban{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 50, byte(i >> 8), byte(i)}), 32)})
		add = append(add, enforce.Ban{Prefix: netip.PrefixFrom(netip.AddrFrom16([16]byte{0xfd, 0, 0x50, 15: byte(i)}), 128)})
	}
	apply(t, e, add, nil)
	apply(t, e, add, nil) // all present: one dump resolves them
	if got := listed(t, e); len(got) != 1000+256 {
		t.Errorf("%d routes, want %d", len(got), 1000+256)
	}
	if err := e.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, e); len(got) != 0 {
		t.Errorf("%d routes left", len(got))
	}
}

// TestNotPermitted: without CAP_NET_ADMIN, Setup says so. Capabilities are
// per thread, so the test drops it on a thread of its own, which then
// exits.
func TestNotPermitted(t *testing.T) {
	ns := newNetns(t)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		e, err := New(Config{NetNS: ns.fd})
		if err != nil {
			errc <- err
			return
		}
		errc <- e.Setup(ctx)
	}()
	err := <-errc
	if !errors.Is(err, ErrNotPermitted) {
		t.Fatalf("Setup without CAP_NET_ADMIN: %v", err)
	}
	t.Log(err)
}

func TestNew(t *testing.T) {
	e, err := New(Config{})
	if err != nil || e.cfg.Table != unix.RT_TABLE_MAIN || e.cfg.Protocol != 251 {
		t.Errorf("defaults: %v %+v", err, e)
	}
	for _, cfg := range []Config{{Protocol: 4}, {Protocol: 2}, {Table: 255}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	e, _ := New(Config{Table: 1000})
	for _, s := range []string{"192.0.2.7/32", "0.0.0.0/0", "2001:db8::/32", "::/0"} {
		p := netip.MustParsePrefix(s)
		m := e.request(unix.RTM_NEWROUTE, p)
		r, err := parseRoute(m.Data)
		if err != nil || r.dst != p || r.table != 1000 || r.protocol != 251 || r.typ != unix.RTN_BLACKHOLE {
			t.Errorf("%s: %+v %v", s, r, err)
		}
	}
}

var _ enforce.Enforcer = (*Enforcer)(nil)
