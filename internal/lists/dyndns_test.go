package lists

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeResolver answers from a table that tests change between rounds.
type fakeResolver struct {
	mu      sync.Mutex
	answers map[string][]netip.Addr
	fail    map[string]error
	calls   map[string]int
	block   chan struct{} // if set, lookups wait for it or their deadline
	network string
}

func newFakeResolver() *fakeResolver {
	return &fakeResolver{answers: map[string][]netip.Addr{}, fail: map[string]error{}, calls: map[string]int{}}
}

func (f *fakeResolver) set(name string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.fail, name)
	f.answers[name] = nil
	for _, a := range addrs {
		f.answers[name] = append(f.answers[name], netip.MustParseAddr(a))
	}
}

func (f *fakeResolver) setErr(name string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail[name] = err
}

func (f *fakeResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.mu.Lock()
	f.calls[host]++
	f.network = network
	block := f.block
	answer, err := slices.Clone(f.answers[host]), f.fail[host]
	f.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("lookup without a deadline")
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if err != nil {
		return nil, err
	}
	if answer == nil {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return answer, nil
}

func addrs(ss ...string) []netip.Addr {
	out := []netip.Addr{}
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestDynDNS(t *testing.T) {
	res := newFakeResolver()
	res.set("home.example.net", "203.0.113.5", "2001:db8::5")
	res.set("office.example.net", "198.51.100.7", "::ffff:203.0.113.5", "0.0.0.0")
	var updates [][]netip.Addr
	d := &DynDNS{
		Names:    []string{"home.example.net", "office.example.net", "gone.example.net"},
		Resolver: res,
		Log:      testLog(t),
		OnUpdate: func(a []netip.Addr) { updates = append(updates, a) },
	}
	ctx := t.Context()

	// First round: the union, sorted, unmapped, deduplicated, without 0.0.0.0.
	if !d.Refresh(ctx) {
		t.Fatal("first round reported no change")
	}
	want := addrs("198.51.100.7", "203.0.113.5", "2001:db8::5")
	if len(updates) != 1 || !slices.Equal(updates[0], want) {
		t.Fatalf("updates %v, want %v", updates, want)
	}
	if res.network != "ip" {
		t.Errorf("looked up %q, want ip (A and AAAA)", res.network)
	}

	// Nothing changed: no callback.
	if d.Refresh(ctx) || len(updates) != 1 {
		t.Fatalf("unchanged round reported: %v", updates)
	}

	// The home address moves: reported.
	res.set("home.example.net", "203.0.113.99", "2001:db8::5")
	if !d.Refresh(ctx) || !slices.Equal(updates[1], addrs("198.51.100.7", "203.0.113.5", "203.0.113.99", "2001:db8::5")) {
		t.Fatalf("move: %v", updates)
	}

	// The office lookup fails: its last addresses stay, nothing is reported.
	res.setErr("office.example.net", &net.DNSError{Err: "server misbehaving", Name: "office.example.net", IsTemporary: true})
	if d.Refresh(ctx) || len(updates) != 2 {
		t.Fatalf("failure reported as a change: %v", updates)
	}
	cur := d.Current()
	if !slices.Equal(cur["office.example.net"], addrs("198.51.100.7", "203.0.113.5")) || len(cur) != 2 {
		t.Errorf("Current = %v", cur)
	}

	// An answer with no usable address counts as a failure too.
	res.set("office.example.net", "0.0.0.0", "::")
	if d.Refresh(ctx) || len(updates) != 2 {
		t.Fatalf("0.0.0.0 answer reported: %v", updates)
	}

	// It comes back with a new address: reported.
	res.set("office.example.net", "198.51.100.8")
	if !d.Refresh(ctx) || !slices.Equal(updates[2], addrs("198.51.100.8", "203.0.113.99", "2001:db8::5")) {
		t.Fatalf("return: %v", updates)
	}

	// A name taken out of the list takes its addresses with it.
	d.Names = []string{"home.example.net"}
	if !d.Refresh(ctx) || !slices.Equal(updates[3], addrs("203.0.113.99", "2001:db8::5")) {
		t.Fatalf("removed name: %v", updates)
	}
}

func TestDynDNSStale(t *testing.T) {
	res := newFakeResolver()
	res.set("a.example", "192.0.2.1")
	res.set("b.example", "192.0.2.2")
	var updates [][]netip.Addr
	d := &DynDNS{Names: []string{"a.example", "b.example"}, Resolver: res, Log: testLog(t), Stale: 30 * time.Millisecond,
		OnUpdate: func(a []netip.Addr) { updates = append(updates, a) }}
	d.Refresh(t.Context())
	res.setErr("a.example", errors.New("SERVFAIL"))
	if d.Refresh(t.Context()) {
		t.Fatal("kept addresses reported as a change")
	}
	time.Sleep(40 * time.Millisecond)
	if !d.Refresh(t.Context()) || !slices.Equal(updates[len(updates)-1], addrs("192.0.2.2")) {
		t.Fatalf("stale addresses not dropped: %v", updates)
	}
}

func TestDynDNSNothingResolved(t *testing.T) {
	res := newFakeResolver()
	called := false
	d := &DynDNS{Names: []string{"nx.example"}, Resolver: res, Log: testLog(t), OnUpdate: func([]netip.Addr) { called = true }}
	if d.Refresh(t.Context()) || called {
		t.Error("an empty first round called back")
	}
}

func TestDynDNSTimeout(t *testing.T) {
	res := newFakeResolver()
	res.set("slow.example", "192.0.2.1")
	res.set("fast.example", "192.0.2.2")
	d := &DynDNS{Names: []string{"slow.example", "fast.example"}, Resolver: res, Log: testLog(t), Timeout: 20 * time.Millisecond}
	d.Refresh(t.Context())
	res.block = make(chan struct{}) // every lookup now hangs until its deadline
	res.set("fast.example", "192.0.2.3")
	start := time.Now()
	d.Refresh(t.Context())
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("round took %v with a 20ms timeout", el)
	}
	if cur := d.Current(); !slices.Equal(cur["slow.example"], addrs("192.0.2.1")) || !slices.Equal(cur["fast.example"], addrs("192.0.2.2")) {
		t.Errorf("after timeouts: %v", cur)
	}
}

func TestDynDNSRun(t *testing.T) {
	res := newFakeResolver()
	res.set("a.example", "192.0.2.1")
	got := make(chan []netip.Addr, 10)
	d := &DynDNS{Names: []string{"a.example"}, Resolver: res, Log: testLog(t), Interval: 10 * time.Millisecond,
		OnUpdate: func(a []netip.Addr) { got <- a }}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { d.Run(ctx); close(done) }()
	if a := <-got; !slices.Equal(a, addrs("192.0.2.1")) {
		t.Errorf("first %v", a)
	}
	res.set("a.example", "192.0.2.9")
	select {
	case a := <-got:
		if !slices.Equal(a, addrs("192.0.2.9")) {
			t.Errorf("second %v", a)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("change not reported")
	}
	cancel()
	<-done
}
