// Package sensor defines what every sensor gives the detector: a stream of
// probes and counts of what it read and what it had to skip. Each kind of
// sensor (capture files, kernel log lines, abuse reports, live packets,
// NFLOG, bait ports, conntrack) lives in its own package below this one.
//
// Sensors know nothing of detection, policy or blocking.
package sensor

import (
	"fmt"
	"sync/atomic"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Source yields probes one at a time. Next fills p (which the caller owns and
// reuses, so reading allocates nothing per probe) and returns io.EOF when the
// source is exhausted. Lines or frames that are not probes are counted in
// Stats and skipped, never returned as errors; an error from Next means the
// source itself failed (an unreadable file, a broken capture header).
type Source interface {
	Next(p *probe.Probe) error
	Stats() *Stats
	Name() string
	Close() error
}

// Stats counts what a source read. Counters are atomic so a live daemon may
// read them while the sensor runs.
type Stats struct {
	Read      atomic.Uint64 // packets or lines read
	Probes    atomic.Uint64 // probes returned
	Ignored   atomic.Uint64 // not probes and not faults: ARP, other log lines, comments
	Malformed atomic.Uint64 // faults: truncated packets, garbled lines

	// FirstProblem describes the first malformed input (file:line or packet
	// number), so a user can look at it.
	firstProblem atomic.Pointer[string]
}

// Problem records a malformed item; the first one is kept as an example.
func (s *Stats) Problem(format string, args ...any) {
	s.Malformed.Add(1)
	if s.firstProblem.Load() == nil {
		msg := fmt.Sprintf(format, args...)
		s.firstProblem.CompareAndSwap(nil, &msg)
	}
}

// FirstProblem returns the first recorded problem, or "".
func (s *Stats) FirstProblem() string {
	if p := s.firstProblem.Load(); p != nil {
		return *p
	}
	return ""
}

// String summarises the counts for a human.
func (s *Stats) String() string {
	out := fmt.Sprintf("%d read, %d probes, %d ignored, %d malformed",
		s.Read.Load(), s.Probes.Load(), s.Ignored.Load(), s.Malformed.Load())
	if p := s.FirstProblem(); p != "" {
		out += " (first: " + p + ")"
	}
	return out
}
