package daemon

import (
	"context"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/report"
)

// memStore is an in-memory Store with the real store's semantics for what
// the daemon relies on: the latest decision about a target wins.
type memStore struct {
	mu        sync.Mutex
	findings  map[string]report.JSONFinding
	decisions []decision.Decision
	lists     map[string]map[netip.Prefix]ListEntry
}

func newMemStore() *memStore {
	return &memStore{findings: map[string]report.JSONFinding{}, lists: map[string]map[netip.Prefix]ListEntry{"allow": {}, "ignore": {}}}
}

func (s *memStore) SaveFinding(f *detect.Finding) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.findings[f.ID] = report.ToJSON(f)
	return nil
}

func (s *memStore) SaveDecision(d *decision.Decision) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.decisions = append(s.decisions, *d)
	return nil
}

func (s *memStore) ActiveBans(now time.Time) ([]decision.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	latest := map[netip.Prefix]decision.Decision{}
	for _, d := range s.decisions {
		if d.Kind == decision.Watch {
			continue
		}
		latest[d.Target.Masked()] = d
	}
	var out []decision.Decision
	for _, d := range latest {
		if d.Active(now) {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *memStore) Offences(a netip.Addr, since time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, d := range s.decisions {
		if d.Kind == decision.Ban && d.By == "detector" && d.Target.Contains(a) && !d.Created.Before(since) {
			n++
		}
	}
	return n, nil
}

func (s *memStore) FindingsFor(a netip.Addr, limit int) ([]report.JSONFinding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []report.JSONFinding
	for _, f := range s.findings {
		if f.Src == a.String() {
			out = append(out, f)
		}
	}
	return out, nil
}

func (s *memStore) Findings(since time.Time, limit int) ([]report.JSONFinding, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []report.JSONFinding
	for _, f := range s.findings {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastSeen > out[j].LastSeen })
	return out, nil
}

func (s *memStore) Decisions(target netip.Prefix, limit int) ([]decision.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []decision.Decision
	for _, d := range s.decisions {
		if d.Target == target {
			out = append(out, d)
		}
	}
	return out, nil
}

func (s *memStore) DecisionsAbout(a netip.Addr, limit int) ([]decision.Decision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []decision.Decision
	for i := len(s.decisions) - 1; i >= 0; i-- {
		if s.decisions[i].Target.Contains(a) {
			out = append(out, s.decisions[i])
		}
	}
	return out, nil
}

func (s *memStore) AddListEntry(list string, p netip.Prefix, comment, by string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lists[list][p] = ListEntry{Prefix: p, Comment: comment, By: by, Added: at}
	return nil
}

func (s *memStore) RemoveListEntry(list string, p netip.Prefix) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.lists[list][p]
	delete(s.lists[list], p)
	return ok, nil
}

func (s *memStore) ListEntries(list string) ([]ListEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ListEntry
	for _, e := range s.lists[list] {
		out = append(out, e)
	}
	return out, nil
}

func (s *memStore) Prune(time.Time) error { return nil }
func (s *memStore) Close() error          { return nil }

// fakeHost answers from fixed sets.
type fakeHost struct {
	mu        sync.Mutex
	local     map[netip.Addr]bool
	listening map[netip.AddrPort]bool
	guards    map[netip.Addr]string
}

func (h *fakeHost) IsLocal(a netip.Addr) bool { h.mu.Lock(); defer h.mu.Unlock(); return h.local[a] }
func (h *fakeHost) Listening(_ probe.Proto, ap netip.AddrPort) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.listening[ap]
}
func (h *fakeHost) GuardNow(a netip.Addr) (string, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r, ok := h.guards[a]
	return r, ok
}
func (h *fakeHost) Addresses() []netip.Prefix {
	var out []netip.Prefix
	for a := range h.local {
		out = append(out, decision.HostPrefix(a))
	}
	return out
}
func (h *fakeHost) Gateways() []netip.Addr {
	var out []netip.Addr
	for a, why := range h.guards {
		if why == "default gateway" {
			out = append(out, a)
		}
	}
	return out
}
func (h *fakeHost) Nameservers() []netip.Addr { return nil }
func (h *fakeHost) SSHPeers() []netip.Addr    { return nil }
func (h *fakeHost) ListenerCount() int        { return len(h.listening) }

// chanSensor delivers the probes sent on its channel.
type chanSensor struct {
	in chan probe.Probe
	n  atomic.Uint64
}

func (s *chanSensor) Run(ctx context.Context, out func(*probe.Probe)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case p := <-s.in:
			s.n.Add(1)
			out(&p)
		}
	}
}
func (s *chanSensor) Stats() SensorStats   { return SensorStats{Packets: s.n.Load(), Probes: s.n.Load()} }
func (s *chanSensor) Interfaces() []string { return nil }
func (s *chanSensor) Close() error         { return nil }
