package nft

import (
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/enforce"
)

// These tests run against the real kernel, as root, each in network
// namespaces of its own; they skip when not root or without nf_tables.

const goldenRuleset = `table inet scanwarden {
	set banned4 {
		type ipv4_addr
		flags interval,timeout
	}

	set banned6 {
		type ipv6_addr
		flags interval,timeout
	}

	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		ip saddr @banned4 counter packets 0 bytes 0 drop comment "scanwarden: drop packets from banned sources"
		ip6 saddr @banned6 counter packets 0 bytes 0 drop comment "scanwarden: drop packets from banned sources"
	}
}
`

const goldenForwardChain = `
	chain forward {
		type filter hook forward priority filter; policy accept;
		ip daddr @banned4 counter packets 0 bytes 0 drop comment "scanwarden: drop forwarded packets to banned addresses"
		ip6 daddr @banned6 counter packets 0 bytes 0 drop comment "scanwarden: drop forwarded packets to banned addresses"
	}
`

var countersRE = regexp.MustCompile(`packets \d+ bytes \d+`)

// ruleset lists the namespace's whole ruleset with counters zeroed.
func ruleset(tb testing.TB, ns *netns, args ...string) string {
	tb.Helper()
	return countersRE.ReplaceAllString(ns.nft(tb, append(args, "list", "ruleset")...), "packets 0 bytes 0")
}

func setup(tb testing.TB, ns *netns, cfg Config) *Enforcer {
	tb.Helper()
	cfg.NetNS = ns.fd
	e, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := e.Setup(context.Background()); err != nil {
		tb.Fatalf("Setup: %v", err)
	}
	return e
}

func apply(tb testing.TB, e *Enforcer, add []enforce.Ban, remove ...netip.Prefix) {
	tb.Helper()
	if err := e.Apply(context.Background(), add, remove); err != nil {
		tb.Fatalf("Apply: %v", err)
	}
}

func ban(p string, exp time.Time) enforce.Ban {
	return enforce.Ban{Prefix: netip.MustParsePrefix(p), Expires: exp}
}

// genID returns the nftables ruleset generation, which the kernel bumps
// once per committed batch.
func genID(tb testing.TB, ns *netns) uint32 {
	tb.Helper()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: ns.fd})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN), Flags: netlink.Request},
		Data:   []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil || len(msgs) != 1 {
		tb.Fatalf("NFT_MSG_GETGEN: %v (%d messages)", err, len(msgs))
	}
	ad, err := netlink.NewAttributeDecoder(msgs[0].Data[4:])
	if err != nil {
		tb.Fatal(err)
	}
	ad.ByteOrder = binary.BigEndian
	for ad.Next() {
		if ad.Type() == unix.NFTA_GEN_ID {
			return ad.Uint32()
		}
	}
	tb.Fatal("no NFTA_GEN_ID in reply")
	return 0
}

func TestSetupCreatesRuleset(t *testing.T) {
	ns := newNetns(t)
	setup(t, ns, Config{})
	if got := ruleset(t, ns); got != goldenRuleset {
		t.Errorf("ruleset:\n%s\nwant:\n%s", got, goldenRuleset)
	}

	ns2 := newNetns(t)
	setup(t, ns2, Config{Forward: true})
	want := strings.TrimSuffix(goldenRuleset, "}\n") + goldenForwardChain + "}\n"
	if got := ruleset(t, ns2); got != want {
		t.Errorf("ruleset with Forward:\n%s\nwant:\n%s", got, want)
	}
}

// TestSetupAdopts runs Setup again, and again from a new Enforcer as a
// restarted daemon would: nothing is sent, the rules keep their handles
// and the sets their elements.
func TestSetupAdopts(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	apply(t, e, []enforce.Ban{ban("10.1.2.3/32", time.Time{}), ban("fd00::1/128", time.Time{})})
	before := ruleset(t, ns, "-a")
	gen := genID(t, ns)

	setup(t, ns, Config{})
	if err := e.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ruleset(t, ns, "-a"); got != before {
		t.Errorf("after Setup twice:\n%s\nwant:\n%s", got, before)
	}
	if g := genID(t, ns); g != gen {
		t.Errorf("Setup on a good table sent %d batches, want none", g-gen)
	}
}

func TestSetupRepairs(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		keeps        bool   // banned4's element 10.1.2.3 survives
		golden       string // if not goldenRuleset
	}{
		{"extra rule and chain", `
			add rule inet scanwarden prerouting ip saddr 10.9.9.9 accept
			add chain inet scanwarden extra
			add rule inet scanwarden extra counter
			add rule inet scanwarden prerouting jump extra`, true, ""},
		{"duplicate rules", `
			add rule inet scanwarden prerouting ip saddr @banned4 counter drop comment "scanwarden: drop packets from banned sources"`, true, ""},
		{"missing rule", `
			flush chain inet scanwarden prerouting`, true, ""},
		{"wrong priority", `
			delete chain inet scanwarden prerouting
			add chain inet scanwarden prerouting { type filter hook input priority 0; }
			add rule inet scanwarden prerouting ip saddr @banned4 counter drop comment "scanwarden: drop packets from banned sources"`, true, ""},
		{"set without timeout flag", `
			delete chain inet scanwarden prerouting
			delete set inet scanwarden banned4
			add set inet scanwarden banned4 { type ipv4_addr; flags interval; elements = { 10.1.2.3 } }
			add set inet scanwarden stray { type inet_service; }`, false,
			// A set is listed in the order of creation.
			strings.Replace(goldenRuleset, "set banned4 {\n\t\ttype ipv4_addr\n\t\tflags interval,timeout\n\t}\n\n\tset banned6 {\n\t\ttype ipv6_addr",
				"set banned6 {\n\t\ttype ipv6_addr\n\t\tflags interval,timeout\n\t}\n\n\tset banned4 {\n\t\ttype ipv4_addr", 1)},
		{"dormant table", `
			add table inet scanwarden { flags dormant; }`, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetns(t)
			e := setup(t, ns, Config{})
			apply(t, e, []enforce.Ban{ban("10.1.2.3/32", time.Time{})})
			ns.nftScript(t, tc.script)
			if err := e.Setup(context.Background()); err != nil {
				t.Fatalf("Setup on a damaged table: %v", err)
			}
			got := ns.setElements(t, "scanwarden", "banned4")
			if _, kept := got["10.1.2.3"]; kept != tc.keeps {
				t.Errorf("element 10.1.2.3 kept = %v, want %v", kept, tc.keeps)
			}
			ns.nft(t, "flush", "set", "inet", "scanwarden", "banned4")
			want := tc.golden
			if want == "" {
				want = goldenRuleset
			}
			if got := ruleset(t, ns); got != want {
				t.Errorf("after repair:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestSetupForwardToggle(t *testing.T) {
	ns := newNetns(t)
	setup(t, ns, Config{Forward: true})
	setup(t, ns, Config{Forward: false})
	if got := ruleset(t, ns); got != goldenRuleset {
		t.Errorf("Forward turned off:\n%s\nwant:\n%s", got, goldenRuleset)
	}
}

// TestOtherTablesUntouched puts tables of other owners next to ours,
// including one with our name in another family and one hooked at the same
// place, and checks that nothing we do changes them.
func TestOtherTablesUntouched(t *testing.T) {
	ns := newNetns(t)
	ns.nftScript(t, `
table inet other {
	set s { type ipv4_addr; elements = { 10.1.2.3 } }
	chain c {
		type filter hook prerouting priority raw; policy accept;
		ip saddr @s counter accept
		ct state invalid drop
	}
}
table ip scanwarden {
	chain input { type filter hook input priority 0; tcp dport 22 accept; }
}
table ip6 filter {
	chain INPUT { type filter hook input priority 0; policy accept; ip6 saddr fd00::1 drop; }
}
`)
	others := func() string {
		return ns.nft(t, "-a", "list", "table", "inet", "other") +
			ns.nft(t, "-a", "list", "table", "ip", "scanwarden") +
			ns.nft(t, "-a", "list", "table", "ip6", "filter")
	}
	before := others()
	e := setup(t, ns, Config{Forward: true})
	apply(t, e, []enforce.Ban{ban("10.1.2.3/32", time.Time{}), ban("fd00::1/128", time.Now().Add(time.Hour))})
	ns.nftScript(t, `add rule inet scanwarden prerouting accept`)
	if err := e.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Bans(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Teardown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := others(); after != before {
		t.Errorf("other tables changed:\n%s\nwas:\n%s", after, before)
	}
	tables := ns.nft(t, "list", "tables")
	if want := "table inet other\ntable ip scanwarden\ntable ip6 filter\n"; tables != want {
		t.Errorf("tables after Teardown:\n%s\nwant:\n%s", tables, want)
	}
}

func TestTeardown(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{Forward: true})
	apply(t, e, []enforce.Ban{ban("10.1.2.3/32", time.Time{})})
	ctx := context.Background()
	if err := e.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := ns.nft(t, "list", "ruleset"); got != "" {
		t.Errorf("ruleset after Teardown: %q", got)
	}
	if err := e.Teardown(ctx); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
	if _, err := e.Bans(ctx); !errors.Is(err, ErrNotSetUp) {
		t.Errorf("Bans after Teardown: %v, want ErrNotSetUp", err)
	}
	if err := e.Apply(ctx, []enforce.Ban{ban("10.1.2.3/32", time.Time{})}, nil); !errors.Is(err, ErrNotSetUp) {
		t.Errorf("Apply after Teardown: %v, want ErrNotSetUp", err)
	}
	if _, _, err := e.Counters(ctx); !errors.Is(err, ErrNotSetUp) {
		t.Errorf("Counters after Teardown: %v, want ErrNotSetUp", err)
	}
}

func TestApplyAddsElements(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	now := time.Now()
	apply(t, e, []enforce.Ban{
		ban("10.1.2.3/32", now.Add(time.Hour)),
		ban("10.2.0.0/16", now.Add(10*time.Minute)),
		ban("10.3.0.0/24", time.Time{}),
		ban("::ffff:10.4.0.1/128", now.Add(time.Hour)), // the IPv4 address
		ban("255.255.255.255/32", time.Time{}),         // no end element: top of the space
		ban("fd00::1/128", now.Add(time.Hour)),
		ban("fd00:1::/48", time.Time{}),
		ban("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", now.Add(time.Hour)),
	})
	check := func(set string, want map[string]int) {
		t.Helper()
		got := ns.setElements(t, "scanwarden", set)
		if len(got) != len(want) {
			t.Errorf("set %s: %v, want %v", set, got, want)
		}
		for k, timeout := range want {
			el, ok := got[k]
			switch {
			case !ok:
				t.Errorf("set %s: no element %s (have %v)", set, k, got)
			case timeout == 0 && el.Timeout != 0:
				t.Errorf("set %s: %s has timeout %d, want none", set, k, el.Timeout)
			case timeout != 0 && (el.Timeout < timeout || el.Timeout > timeout+1 || el.Expires < timeout-2):
				t.Errorf("set %s: %s timeout %d expires %d, want %d", set, k, el.Timeout, el.Expires, timeout)
			}
		}
	}
	check("banned4", map[string]int{"10.1.2.3": 3600, "10.2.0.0/16": 600, "10.3.0.0/24": 0, "10.4.0.1": 3600, "255.255.255.255": 0})
	check("banned6", map[string]int{"fd00::1": 3600, "fd00:1::/48": 0, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff": 3600})
}

func TestApplyUpdatesTimeout(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	timeoutOf := func(set, key string) int {
		t.Helper()
		el, ok := ns.setElements(t, "scanwarden", set)[key]
		if !ok {
			t.Fatalf("no element %s in %s", key, set)
		}
		return el.Timeout
	}
	for _, step := range []struct {
		expires time.Duration // 0: permanent
		want    int
	}{
		{time.Hour, 3600},
		{2 * time.Hour, 7200},    // longer
		{30 * time.Minute, 1800}, // shorter: the caller's word is final
		{0, 0},                   // permanent
		{time.Hour, 3600},        // and back
	} {
		var exp time.Time
		if step.expires != 0 {
			exp = time.Now().Add(step.expires)
		}
		apply(t, e, []enforce.Ban{ban("10.1.2.3/32", exp), ban("10.5.0.0/16", exp), ban("fd00::5/128", exp)})
		for set, key := range map[string]string{"banned4": "10.1.2.3", "banned6": "fd00::5"} {
			if got := timeoutOf(set, key); got < step.want || got > step.want+1 {
				t.Errorf("after re-adding for %v: %s timeout %d, want %d", step.expires, key, got, step.want)
			}
		}
		if got := timeoutOf("banned4", "10.5.0.0/16"); got < step.want || got > step.want+1 {
			t.Errorf("after re-adding for %v: 10.5.0.0/16 timeout %d, want %d", step.expires, got, step.want)
		}
	}
	// Re-adding with an expiry already past lifts the ban.
	apply(t, e, []enforce.Ban{ban("10.1.2.3/32", time.Now().Add(-time.Second))})
	if _, ok := ns.setElements(t, "scanwarden", "banned4")["10.1.2.3"]; ok {
		t.Error("ban re-added with a past expiry is still there")
	}
}

func TestApplyTimeoutExpiresInKernel(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	now := time.Now()
	apply(t, e, []enforce.Ban{
		ban("10.1.2.3/32", now.Add(2*time.Second)),
		ban("10.7.0.0/16", now.Add(2*time.Second)),
		ban("fd00::1/128", now.Add(2*time.Second)),
		ban("10.9.9.9/32", now.Add(time.Hour)),
	})
	if got := len(ns.setElements(t, "scanwarden", "banned4")); got != 3 {
		t.Fatalf("banned4 has %d elements right after Apply, want 3", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v4, v6 := ns.setElements(t, "scanwarden", "banned4"), ns.setElements(t, "scanwarden", "banned6")
		if len(v4) == 1 && len(v6) == 0 {
			if _, ok := v4["10.9.9.9"]; !ok {
				t.Fatalf("the long ban went: %v", v4)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("2 s bans still there after 10 s: %v %v", v4, v6)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if waited := time.Since(now); waited < 1500*time.Millisecond {
		t.Errorf("bans expired after %v, before their 2 s", waited)
	}
	bans, err := e.Bans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(bans) != 1 || bans[0].Prefix.String() != "10.9.9.9/32" {
		t.Errorf("Bans after expiry: %v", bans)
	}
	// The expired elements do not get in the way of banning again.
	apply(t, e, []enforce.Ban{ban("10.1.2.3/32", time.Now().Add(time.Hour)), ban("10.7.0.0/16", time.Time{})})
	if got := len(ns.setElements(t, "scanwarden", "banned4")); got != 3 {
		t.Errorf("banned4 has %d elements after re-banning, want 3", got)
	}
}

func TestApplyRemove(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	exp := time.Now().Add(time.Hour)
	apply(t, e, []enforce.Ban{ban("10.1.2.3/32", exp), ban("10.2.0.0/16", exp), ban("fd00::1/128", exp)})

	// Absent entries, alone or mixed with real work, are no error.
	gen := genID(t, ns)
	apply(t, e, nil, netip.MustParsePrefix("10.9.9.9/32"), netip.MustParsePrefix("fd00::9/128"), netip.MustParsePrefix("10.1.2.0/24"))
	if g := genID(t, ns); g != gen {
		t.Errorf("removing absent entries sent %d batches, want none", g-gen)
	}
	apply(t, e, []enforce.Ban{ban("10.3.3.3/32", exp)},
		netip.MustParsePrefix("10.9.9.9/32"), netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("::ffff:10.2.0.0/112"), netip.MustParsePrefix("fd00::1/128"))
	v4 := ns.setElements(t, "scanwarden", "banned4")
	if _, ok := v4["10.3.3.3"]; !ok || len(v4) != 1 {
		t.Errorf("banned4 = %v, want only 10.3.3.3", v4)
	}
	if v6 := ns.setElements(t, "scanwarden", "banned6"); len(v6) != 0 {
		t.Errorf("banned6 = %v, want empty", v6)
	}
}

// TestApplyOneBatch checks that a large Apply is one transaction: the
// ruleset generation moves by one.
func TestApplyOneBatch(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	exp := time.Now().Add(time.Hour)
	var add []enforce.Ban
	for i := 0; i < 10_000; i++ {
		add = append(add,
			enforce.Ban{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), 32), Expires: exp},
			enforce.Ban{Prefix: netip.PrefixFrom(netip.AddrFrom16([16]byte{0: 0xfd, 1: 0x00, 14: byte(i >> 8), 15: byte(i)}), 128), Expires: exp})
	}
	gen := genID(t, ns)
	apply(t, e, add)
	if g := genID(t, ns); g != gen+1 {
		t.Errorf("Apply of %d bans took %d batches, want 1", len(add), g-gen)
	}
	if n4, n6 := len(ns.setElements(t, "scanwarden", "banned4")), len(ns.setElements(t, "scanwarden", "banned6")); n4 != 10_000 || n6 != 10_000 {
		t.Errorf("sets hold %d and %d elements, want 10000 each", n4, n6)
	}
	// Updating all of them and removing some is one batch too.
	exp = exp.Add(time.Hour)
	for i := range add {
		add[i].Expires = exp
	}
	gen = genID(t, ns)
	apply(t, e, add[:15_000], netip.MustParsePrefix("10.100.0.0/16"))
	if g := genID(t, ns); g != gen+1 {
		t.Errorf("update took %d batches, want 1", g-gen)
	}
}

func TestBansRoundTrip(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	now := time.Now()
	in := []enforce.Ban{
		ban("10.0.0.0/25", now.Add(time.Hour)), // adjacent to the next
		ban("10.0.0.128/25", now.Add(2*time.Hour)),
		ban("10.0.1.0/24", time.Time{}),
		ban("10.1.2.3/32", now.Add(90*time.Second)),
		ban("255.255.255.255/32", now.Add(time.Hour)),
		ban("0.0.0.0/32", time.Time{}),
		ban("fd00::/64", now.Add(time.Hour)),
		ban("fd00:0:0:1::/64", now.Add(time.Hour)), // adjacent
		ban("fd00::1:2/128", time.Time{}),          // inside fd00::/64, and outlasts it
	}
	apply(t, e, in)
	got, err := e.Bans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("Bans: %v\nwant %v", got, in)
	}
	want := map[netip.Prefix]time.Time{}
	for _, b := range in {
		want[b.Prefix] = b.Expires
	}
	for _, b := range got {
		exp, ok := want[b.Prefix]
		switch {
		case !ok:
			t.Errorf("unexpected ban %v", b)
		case exp.IsZero() != b.Expires.IsZero():
			t.Errorf("%v expires %v, want %v", b.Prefix, b.Expires, exp)
		case !exp.IsZero() && (b.Expires.Sub(exp) > time.Second || exp.Sub(b.Expires) > time.Second):
			t.Errorf("%v expires %v, want %v (within a second)", b.Prefix, b.Expires, exp)
		}
	}
	// Applying what Bans returned changes nothing.
	gen := genID(t, ns)
	apply(t, e, got)
	if g := genID(t, ns); g != gen {
		t.Errorf("re-applying Bans sent %d batches, want none", g-gen)
	}
}

func TestApplyNested(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	ctx := context.Background()
	now := time.Now()
	apply(t, e, []enforce.Ban{ban("10.0.0.5/32", now.Add(2*time.Hour))})
	apply(t, e, []enforce.Ban{ban("10.0.0.0/24", now.Add(time.Hour))}) // would overlap as is

	els := ns.setElements(t, "scanwarden", "banned4")
	if el := els["10.0.0.5"]; el.Timeout < 7200 || el.Comment != "" {
		t.Errorf("inner element %+v", el)
	}
	if el := els["10.0.0.128/25"]; el.Timeout < 3600 || el.Timeout > 3601 || el.Comment != "part of 10.0.0.0/24" {
		t.Errorf("outer piece 10.0.0.128/25: %+v (set %v)", el, els)
	}
	bans, err := e.Bans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(bans) != 2 || bans[0].Prefix.String() != "10.0.0.0/24" || bans[1].Prefix.String() != "10.0.0.5/32" {
		t.Errorf("Bans: %v", bans)
	}

	// Lifting the outer ban leaves the inner one alone.
	apply(t, e, nil, netip.MustParsePrefix("10.0.0.0/24"))
	if els := ns.setElements(t, "scanwarden", "banned4"); len(els) != 1 || els["10.0.0.5"].Timeout < 7200 {
		t.Errorf("after lifting the /24: %v", els)
	}

	// A shorter ban inside a longer one is absorbed.
	apply(t, e, []enforce.Ban{ban("10.0.0.0/16", time.Time{}), ban("10.0.9.9/32", now.Add(time.Hour))})
	els = ns.setElements(t, "scanwarden", "banned4")
	if _, ok := els["10.0.0.0/16"]; len(els) != 1 || !ok {
		t.Errorf("permanent /16 over two shorter bans: %v", els)
	}
}

// TestElementsFromNft checks that elements written by an operator with the
// nft command (ranges, nft's own interval encoding) read back as bans and
// do not upset Apply.
func TestElementsFromNft(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	ns.nft(t, "add", "element", "inet", "scanwarden", "banned4",
		`{ 10.50.0.1-10.50.0.9 timeout 1h, 10.60.0.0/16 comment "by hand", 10.70.0.1 timeout 1h }`)
	bans, err := e.Bans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bans {
		got = append(got, b.Prefix.String())
	}
	if want := "10.50.0.1/32 10.50.0.2/31 10.50.0.4/30 10.50.0.8/31 10.60.0.0/16 10.70.0.1/32"; strings.Join(got, " ") != want {
		t.Errorf("Bans: %s, want %s", strings.Join(got, " "), want)
	}
	apply(t, e, []enforce.Ban{ban("10.70.0.1/32", time.Time{}), ban("10.80.0.1/32", time.Time{})}, netip.MustParsePrefix("10.50.0.4/30"))
	els := ns.setElements(t, "scanwarden", "banned4")
	if _, ok := els["10.50.0.4/30"]; ok {
		t.Errorf("10.50.0.4/30 still there: %v", els)
	}
	if el, ok := els["10.60.0.0/16"]; !ok || el.Comment != "by hand" {
		t.Errorf("operator's element changed: %v", els)
	}
	if el, ok := els["10.70.0.1"]; !ok || el.Timeout != 0 {
		t.Errorf("10.70.0.1 not made permanent: %v", els)
	}
}

func TestApplyInvalid(t *testing.T) {
	e, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(context.Background(), []enforce.Ban{{}}, nil); err == nil {
		t.Error("Apply accepted a zero prefix")
	}
	if _, err := New(Config{Table: "a\x00b"}); err == nil {
		t.Error("New accepted a table name with a NUL")
	}
	if _, err := New(Config{Table: strings.Repeat("x", 256)}); err == nil {
		t.Error("New accepted a 256-byte table name")
	}
}

// TestNotPermitted runs a Setup without CAP_NET_ADMIN (a child test
// process whose bounding set lacks it) and checks the error says so.
func TestNotPermitted(t *testing.T) {
	if os.Getenv("SWNFT_CHILD") == "not-permitted" {
		e, _ := New(Config{})
		err := e.Setup(context.Background())
		if !errors.Is(err, ErrNotPermitted) || !errors.Is(err, os.ErrPermission) {
			t.Fatalf("Setup without CAP_NET_ADMIN: %v, want ErrNotPermitted", err)
		}
		t.Logf("error: %v", err)
		return
	}
	ns := newNetns(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("needs setpriv (util-linux) to drop CAP_NET_ADMIN")
	}
	cmd := exec.Command("ip", "netns", "exec", ns.name, "setpriv", "--bounding-set=-net_admin", "--",
		os.Args[0], "-test.run=^TestNotPermitted$", "-test.v")
	cmd.Env = append(os.Environ(), "SWNFT_CHILD=not-permitted")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "needs root or CAP_NET_ADMIN") {
		t.Errorf("child output lacks the explanation:\n%s", out)
	}
	if got := ns.nft(t, "list", "ruleset"); got != "" {
		t.Errorf("child without CAP_NET_ADMIN changed the ruleset: %q", got)
	}
}

// TestApplyNoticesOutsideChanges edits the set behind the enforcer's back
// (with nft, as an operator would) and checks that Apply and Bans see it
// instead of trusting their copy.
func TestApplyNoticesOutsideChanges(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	exp := time.Now().Add(time.Hour)
	apply(t, e, []enforce.Ban{ban("10.1.1.1/32", exp), ban("10.2.2.2/32", exp)})

	ns.nft(t, "delete", "element", "inet", "scanwarden", "banned4", "{ 10.1.1.1 }")
	apply(t, e, []enforce.Ban{ban("10.1.1.1/32", exp)}) // the same ban again
	if _, ok := ns.setElements(t, "scanwarden", "banned4")["10.1.1.1"]; !ok {
		t.Error("a ban deleted with nft and applied again is missing")
	}

	ns.nft(t, "add", "element", "inet", "scanwarden", "banned4", "{ 10.3.3.3 timeout 1h }")
	bans, err := e.Bans(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(bans) != 3 || bans[2].Prefix.String() != "10.3.3.3/32" {
		t.Errorf("Bans after nft add element: %v", bans)
	}

	// A commit to another table also makes the enforcer read again; the
	// result is the same.
	ns.nft(t, "add", "table", "inet", "other")
	apply(t, e, []enforce.Ban{ban("10.4.4.4/32", exp)}, netip.MustParsePrefix("10.2.2.2/32"))
	got := ns.setElements(t, "scanwarden", "banned4")
	for _, want := range []string{"10.1.1.1", "10.3.3.3", "10.4.4.4"} {
		if _, ok := got[want]; !ok {
			t.Errorf("missing %s: %v", want, got)
		}
	}
	if len(got) != 3 {
		t.Errorf("banned4 = %v", got)
	}
}

// TestApplyRacesTimeout lifts and re-imposes a ban in its last second,
// when the enforcer leaves the element to time out by itself.
func TestApplyRacesTimeout(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	exp := roundUp(time.Now().Add(2 * time.Second))
	apply(t, e, []enforce.Ban{ban("10.1.1.1/32", exp)})
	time.Sleep(time.Until(exp.Add(-500 * time.Millisecond)))
	apply(t, e, nil, netip.MustParsePrefix("10.1.1.1/32"))
	apply(t, e, []enforce.Ban{ban("10.1.1.1/32", time.Now().Add(time.Hour))})
	time.Sleep(time.Until(exp.Add(time.Second)))
	el, ok := ns.setElements(t, "scanwarden", "banned4")["10.1.1.1"]
	if !ok || el.Timeout < 3599 {
		t.Errorf("ban re-imposed in the last second of the old one: %+v, %v", el, ok)
	}
}

// TestKernelRejectsOverlap pins the kernel behaviour that decompose exists
// for: an interval set refuses an interval inside another.
func TestKernelRejectsOverlap(t *testing.T) {
	ns := newNetns(t)
	e := setup(t, ns, Config{})
	apply(t, e, []enforce.Ban{ban("10.0.0.0/24", time.Time{})})
	c, err := e.conn(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	set := e.families()[0].set
	if err := c.SetAddElements(set, []nftables.SetElement{
		{Key: []byte{10, 0, 0, 5}},
		{Key: []byte{10, 0, 0, 6}, IntervalEnd: true},
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Flush(); !errors.Is(err, unix.EEXIST) {
		t.Errorf("adding 10.0.0.5/32 inside 10.0.0.0/24: %v, want EEXIST", err)
	}
}
