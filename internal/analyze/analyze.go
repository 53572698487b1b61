// Package analyze runs the detector over files, offline: it opens every
// input, merges their probes in time order, feeds the detector on the files'
// own clock and returns the findings. `scanwarden analyze` and the scenario
// tests both run through here, so a test verdict is a user's verdict.
package analyze

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor"
	"github.com/scanwarden/scanwarden/internal/sensor/input"
)

// Options configures a run.
type Options struct {
	Detect detect.Config
	Input  input.Options
}

// DefaultOptions returns the detector's defaults, adjusted for offline use:
// nothing is forgotten for being idle (a file's quiet hours are not a reason
// to drop a source from the report); the source cap still bounds memory.
func DefaultOptions() Options {
	c := detect.DefaultConfig()
	c.IdleForget = time.Duration(math.MaxInt64)
	c.SlowMemory = time.Duration(math.MaxInt64)
	c.MaxSources = 2_000_000
	return Options{Detect: c}
}

// InputReport says what was read from one input.
type InputReport struct {
	Name   string
	Format input.Format
	Stats  *sensor.Stats
	Err    error // a failure part-way through; what came before was used
}

// Result is the outcome of a run.
type Result struct {
	Findings []detect.Finding // worst first
	Inputs   []InputReport
	Detector detect.Stats
	// DroppedBenign counts benign sources evicted from tracking because the
	// source cap was reached; they are not in Findings.
	DroppedBenign int
}

// OpenError is an input that could not be opened or recognised at all.
type OpenError struct {
	Name string
	Err  error
}

func (e *OpenError) Error() string { return e.Err.Error() }
func (e *OpenError) Unwrap() error { return e.Err }

// Run analyses the named inputs ("-" is standard input). It opens all of them
// first, so an unreadable file is reported before any work is done.
func Run(paths []string, opts Options) (*Result, error) {
	var srcs []sensor.Source
	res := &Result{}
	defer func() {
		for _, s := range srcs {
			s.Close()
		}
	}()
	stdin := 0
	for _, p := range paths {
		if p == "-" {
			if stdin++; stdin > 1 {
				return nil, &OpenError{Name: p, Err: errors.New("standard input (-) given more than once")}
			}
		}
		s, format, err := input.Open(p, opts.Input)
		if err != nil {
			return nil, &OpenError{Name: p, Err: err}
		}
		srcs = append(srcs, s)
		res.Inputs = append(res.Inputs, InputReport{Name: s.Name(), Format: format, Stats: s.Stats()})
	}
	return res, RunSources(srcs, opts, res)
}

// RunSources analyses already-open sources into res.
func RunSources(srcs []sensor.Source, opts Options, res *Result) error {
	if len(res.Inputs) != len(srcs) {
		res.Inputs = res.Inputs[:0]
		for _, s := range srcs {
			res.Inputs = append(res.Inputs, InputReport{Name: s.Name(), Stats: s.Stats()})
		}
	}
	var retired []detect.Finding
	d, err := detect.New(opts.Detect, func(f *detect.Finding, u detect.Update) {
		if u != detect.Retired {
			return
		}
		if f.Verdict == detect.Benign {
			res.DroppedBenign++
			return
		}
		retired = append(retired, *f)
	})
	if err != nil {
		return err
	}
	m := &merger{}
	for i, s := range srcs {
		m.add(s, i, res)
	}
	for {
		p, ok := m.next(res)
		if !ok {
			break
		}
		d.Observe(p)
	}
	d.Flush()
	res.Findings = append(d.Snapshot(), retired...)
	detect.SortFindings(res.Findings)
	res.Detector = d.Stats()
	return nil
}

// merger yields probes from several sources in time order: each source is in
// time order already (captures and logs are written as things happen), so a
// heap of each source's next probe is a k-way merge.
type merger struct {
	h    probeHeap
	last probe.Probe
}

type head struct {
	p   probe.Probe
	src sensor.Source
	idx int
}

type probeHeap []*head

func (h probeHeap) Len() int { return len(h) }
func (h probeHeap) Less(i, j int) bool {
	if t1, t2 := h[i].p.Time, h[j].p.Time; !t1.Equal(t2) {
		return t1.Before(t2)
	}
	return h[i].idx < h[j].idx
}
func (h probeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *probeHeap) Push(x any)   { *h = append(*h, x.(*head)) }
func (h *probeHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

func (m *merger) add(s sensor.Source, idx int, res *Result) {
	hd := &head{src: s, idx: idx}
	if m.fill(hd, res) {
		heap.Push(&m.h, hd)
	}
}

// fill reads the source's next probe into hd; false at the end.
func (m *merger) fill(hd *head, res *Result) bool {
	err := hd.src.Next(&hd.p)
	if err == nil {
		return true
	}
	if err != io.EOF {
		res.Inputs[hd.idx].Err = err
	}
	return false
}

// next returns the earliest pending probe. The probe is valid until the
// following call.
func (m *merger) next(res *Result) (*probe.Probe, bool) {
	if len(m.h) == 0 {
		return nil, false
	}
	if len(m.h) == 1 { // the common case: one file, no heap work
		hd := m.h[0]
		m.last = hd.p
		if !m.fill(hd, res) {
			m.h = m.h[:0]
		}
		return &m.last, true
	}
	hd := m.h[0]
	m.last = hd.p
	if m.fill(hd, res) {
		heap.Fix(&m.h, 0)
	} else {
		heap.Pop(&m.h)
	}
	return &m.last, true
}

// Err returns the first mid-stream read error among the inputs, if any.
func (r *Result) Err() error {
	var errs []error
	for _, in := range r.Inputs {
		if in.Err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", in.Name, in.Err))
		}
	}
	return errors.Join(errs...)
}
