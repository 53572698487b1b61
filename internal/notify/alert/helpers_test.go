package alert

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
)

var t0 = time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)

// finding is a vertical SYN scan from src.
func finding(src string) *detect.Finding {
	a := netip.MustParseAddr(src)
	return &detect.Finding{
		ID: src + "@" + t0.Format(time.RFC3339), Src: a, Direction: probe.DirInbound, Verdict: detect.Scan,
		ScanType: detect.TypeSYN, Class: detect.ClassVertical, Tool: "nmap",
		Ports: 1000, Hosts: 1, Packets: 2020, Attempts: 1000, Failed: 998, Open: 2,
		FirstSeen: t0, LastSeen: t0.Add(4 * time.Second), DetectedAt: t0.Add(time.Second), DetectedAtAttempt: 5,
		Reason: fmt.Sprintf("Vertical SYN scan of 1000 ports on 192.0.2.1 by %s: 998 of 1000 first contacts failed.", src),
		Evidence: detect.Evidence{
			Targets:     []netip.Addr{netip.MustParseAddr("192.0.2.1")},
			FailedPorts: []detect.PortProto{{Port: 23, Proto: probe.TCP}},
			ProbeTypes:  map[detect.ScanType]int{detect.TypeSYN: 1000},
			Outcomes:    map[string]int{"closed": 998, "open": 2},
		},
	}
}

// banOf is the detector's first ban of f's source, for an hour.
func banOf(f *detect.Finding) *decision.Decision {
	return &decision.Decision{ID: "d-" + f.Src.String(), Kind: decision.Ban, Target: decision.HostPrefix(f.Src),
		Created: t0, Expires: t0.Add(time.Hour), Reason: f.Reason, FindingID: f.ID, Offence: 1, By: "detector"}
}

// watchOf is a ban of f's source that a guard stopped.
func watchOf(f *detect.Finding, why string) *decision.Decision {
	d := banOf(f)
	d.Kind, d.NotActed, d.Expires = decision.Watch, why, time.Time{}
	return d
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// run starts a.Run and stops it when the test ends.
func run(t *testing.T, a *Alerter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		a.Run(ctx)
		close(done)
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
