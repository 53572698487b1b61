package triage

import (
	"math/bits"
	"net/netip"
	"strconv"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor"
	"github.com/scanwarden/scanwarden/internal/sensor/flowreport"
	"github.com/scanwarden/scanwarden/internal/sensor/input"
)

// maxHostsTracked bounds the distinct destination hosts counted across the
// report; past it the count is a lower bound.
const maxHostsTracked = 1 << 16

// maxSourcesTracked bounds the reported sources whose masking is
// remembered; the detector's own cap (maxSources) is the same order.
const maxSourcesTracked = maxSources

// attempt is one connection attempt of the report: the packets of one
// outside 4-tuple, each within the retransmission window of the one
// before, as the detector folds them.
type attempt struct {
	src         netip.AddrPort // as reported (a stand-in when masked)
	dst         netip.AddrPort
	proto       probe.Proto
	srcMasked   bool
	dstMasked   bool
	first, last time.Time // our clock
	packets     int
}

// srcInfo is what the report says about one source beyond the verdict.
type srcInfo struct {
	masked      bool
	first, last time.Time // the report's own times, in our clock
}

type flowKey struct {
	src, dst netip.AddrPort
	proto    probe.Proto
}

// report is the sensor.Source the detector reads. It passes the parser's
// probes through, moved to our clock (Options.Offset), and keeps what
// triage needs besides the verdict: the attempts to look up, the report's
// window, which sources were masked, and counts across all sources.
type report struct {
	sensor.Source
	ps     *flowreport.Parser // nil for kernel log lines
	format input.Format
	norm   *unquoter
	offset time.Duration
	window time.Duration // the detector's retransmission window

	attempts    []attempt
	open        map[flowKey]int // latest attempt of each flow, index in attempts
	maxAttempts int
	truncated   bool // attempts past maxAttempts were not kept

	first, last time.Time
	probes      int
	sources     map[netip.Addr]*srcInfo // by source (stand-in when masked)
	dstMasked   map[netip.Addr]bool     // destination stand-ins the reporter masked
	ports       [1024]uint64            // bitset of destination ports
	hosts       map[netip.Addr]struct{}
}

func (r *report) init(maxAttempts int) {
	r.maxAttempts = maxAttempts
	r.open = make(map[flowKey]int)
	r.sources = make(map[netip.Addr]*srcInfo)
	r.dstMasked = make(map[netip.Addr]bool)
	r.hosts = make(map[netip.Addr]struct{})
}

// Next reads the next probe and records it.
func (r *report) Next(p *probe.Probe) error {
	if err := r.Source.Next(p); err != nil {
		return err
	}
	p.Time = p.Time.Add(-r.offset)
	p.Src = netip.AddrPortFrom(p.Src.Addr().Unmap(), p.Src.Port())
	p.Dst = netip.AddrPortFrom(p.Dst.Addr().Unmap(), p.Dst.Port())
	var srcMasked, dstMasked bool
	if r.ps != nil {
		l := r.ps.Last()
		srcMasked, dstMasked = l.SrcRedacted, l.DstRedacted
	}
	r.note(p, srcMasked, dstMasked)
	return nil
}

func (r *report) note(p *probe.Probe, srcMasked, dstMasked bool) {
	if r.probes == 0 || p.Time.Before(r.first) {
		r.first = p.Time
	}
	if r.probes == 0 || p.Time.After(r.last) {
		r.last = p.Time
	}
	r.probes++
	si := r.sources[p.Src.Addr()]
	if si == nil && len(r.sources) < maxSourcesTracked {
		si = &srcInfo{first: p.Time, last: p.Time}
		r.sources[p.Src.Addr()] = si
	}
	if si != nil {
		si.masked = si.masked || srcMasked
		if p.Time.Before(si.first) {
			si.first = p.Time
		}
		if p.Time.After(si.last) {
			si.last = p.Time
		}
	}
	if dstMasked && len(r.dstMasked) < maxSourcesTracked {
		r.dstMasked[p.Dst.Addr()] = true
	}
	if p.Known&probe.KnownPorts != 0 {
		port := p.Dst.Port()
		r.ports[port/64] |= 1 << (port % 64)
	}
	if len(r.hosts) < maxHostsTracked {
		r.hosts[p.Dst.Addr()] = struct{}{}
	}
	r.fold(p, srcMasked, dstMasked)
}

// fold adds p to its attempt: the flow's latest one when p comes within
// the retransmission window of its packets, a new one otherwise. Reports
// are not always in time order (Hetzner lists newest first), so the window
// is measured either way.
func (r *report) fold(p *probe.Probe, srcMasked, dstMasked bool) {
	k := flowKey{src: p.Src, dst: p.Dst, proto: p.Proto}
	if i, ok := r.open[k]; ok {
		a := &r.attempts[i]
		if !p.Time.Before(a.first.Add(-r.window)) && !p.Time.After(a.last.Add(r.window)) {
			a.packets++
			if p.Time.Before(a.first) {
				a.first = p.Time
			}
			if p.Time.After(a.last) {
				a.last = p.Time
			}
			return
		}
	}
	if len(r.attempts) >= r.maxAttempts {
		r.truncated = true
		return
	}
	r.open[k] = len(r.attempts)
	r.attempts = append(r.attempts, attempt{
		src: p.Src, dst: p.Dst, proto: p.Proto,
		srcMasked: srcMasked, dstMasked: dstMasked,
		first: p.Time, last: p.Time, packets: 1,
	})
}

// portCount is the number of distinct destination ports in the report.
func (r *report) portCount() int {
	n := 0
	for _, w := range r.ports {
		n += bits.OnesCount64(w)
	}
	return n
}

// addrText renders an address of the report: a masked one as the reporter
// wrote it, masked octets as "x" ("x.x.x.103"), so that a stand-in can
// never be taken for a real address; IPv6 stand-ins (always wholly
// masked) as "x".
func addrText(a netip.Addr, masked bool) string {
	if !masked {
		return a.String()
	}
	if !a.Is4() {
		return "x"
	}
	var b []byte
	for i, o := range a.As4() {
		if i > 0 {
			b = append(b, '.')
		}
		if o == 0 {
			b = append(b, 'x')
		} else {
			b = strconv.AppendInt(b, int64(o), 10)
		}
	}
	return string(b)
}

func (r *report) srcText(a netip.Addr) string {
	si := r.sources[a]
	return addrText(a, si != nil && si.masked)
}

func (r *report) dstText(a netip.Addr) string { return addrText(a, r.dstMasked[a]) }
