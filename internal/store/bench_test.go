package store

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
)

const benchBans = 100_000

var (
	templateOnce sync.Once
	templateDir  string
	templateErr  error
)

// benchStore opens a copy of a store holding benchBans bans, filled once
// per run of the test binary.
func benchStore(b *testing.B) *Store {
	b.Helper()
	templateOnce.Do(func() {
		if templateDir, templateErr = os.MkdirTemp("", "scanwarden-bench-"); templateErr != nil {
			return
		}
		s, err := Open(templateDir)
		if err != nil {
			templateErr = err
			return
		}
		fillBans(b, s, benchBans)
		templateErr = s.Close() // checkpoints: one file to copy
	})
	if templateErr != nil {
		b.Fatal(templateErr)
	}
	dir := b.TempDir()
	if err := copyFile(filepath.Join(templateDir, DBName), filepath.Join(dir, DBName)); err != nil {
		b.Fatal(err)
	}
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	s.now = func() time.Time { return t0.Add(time.Hour) }
	b.Cleanup(func() { s.Close() })
	return s
}

// fillBans stores n bans of distinct IPv4 hosts (a tenth permanent, the
// rest for a day) in batches, as an import would.
func fillBans(b *testing.B, s *Store, n int) {
	b.Helper()
	batch := make([]*decision.Decision, 0, 5000)
	for i := range n {
		d := &decision.Decision{ID: fmt.Sprintf("fill-%07d", i), Kind: decision.Ban,
			Target: decision.HostPrefix(ipv4(uint32(0x0a000000 + i))), Created: t0.Add(time.Duration(i) * time.Millisecond),
			Reason: "vertical SYN scan of 1000 ports", By: "detector", Offence: 1, FindingID: fmt.Sprintf("f-%d", i)}
		if i%10 != 0 {
			d.Expires = d.Created.Add(24 * time.Hour)
		}
		batch = append(batch, d)
		if len(batch) == cap(batch) || i == n-1 {
			if err := s.SaveDecisions(batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
}

// BenchmarkSaveDecision is one ban per op, each its own committed (fsynced)
// transaction, into a store already holding 100 000 bans.
func BenchmarkSaveDecision(b *testing.B) {
	s := benchStore(b)
	b.ResetTimer()
	for i := range b.N {
		d := &decision.Decision{ID: fmt.Sprintf("bench-%d", i), Kind: decision.Ban,
			Target: decision.HostPrefix(ipv4(uint32(0xc0000000 + i))), Created: t0.Add(time.Hour),
			Expires: t0.Add(2 * time.Hour), Reason: "bench", By: "detector"}
		if err := s.SaveDecision(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaveDecisionUnban lifts a /24 per op (256 bans inside each).
func BenchmarkSaveDecisionUnban(b *testing.B) {
	s := benchStore(b)
	b.ResetTimer()
	for i := range b.N {
		d := &decision.Decision{ID: fmt.Sprintf("unban-%d", i), Kind: decision.Unban,
			Target: netip.PrefixFrom(ipv4(uint32(0x0a000000+(i%390)<<8)), 24), Created: t0.Add(time.Hour), By: "cli"}
		if err := s.SaveDecision(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkActiveBans reads 100 000 bans in force.
func BenchmarkActiveBans(b *testing.B) {
	s := benchStore(b)
	b.ResetTimer()
	for range b.N {
		ds, err := s.ActiveBans(t0.Add(time.Hour))
		if err != nil || len(ds) != benchBans {
			b.Fatalf("%d bans, %v", len(ds), err)
		}
	}
}

// BenchmarkGrep looks one address up among 100 000 bans.
func BenchmarkGrep(b *testing.B) {
	s := benchStore(b)
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Grep(ipv4(uint32(0x0a000000+i%benchBans)), 20); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOffences is the escalation lookup the policy makes per ban.
func BenchmarkOffences(b *testing.B) {
	s := benchStore(b)
	b.ResetTimer()
	for i := range b.N {
		if _, err := s.Offences(ipv4(uint32(0x0a000000+i%benchBans)), t0); err != nil {
			b.Fatal(err)
		}
	}
}
