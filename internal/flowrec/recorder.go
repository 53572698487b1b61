// Package flowrec turns conntrack events into connection-log records: one
// flowlog.Flow per connection, written when the kernel reports its end,
// with its outcome, counters and NAT mapping.
//
// It owns the reading of an event's meaning (was the connection ever
// established? who started it, and as whom did it leave?). It must not
// know how flows are stored (flowlog does) nor where events come from
// (conntrack.Listener, or a test).
//
// # Why at the end
//
// A DESTROY event carries everything a record needs: both tuples (so the
// NAT mapping), the status bits (answered? established?), with
// nf_conntrack_acct the packets and bytes each way, and with
// nf_conntrack_timestamp the kernel's own start and stop times. Writing
// once per connection keeps the log append-only and compact. The price is
// delay: a connection appears when it ends, an unanswered SYN after the
// kernel's SYN_SENT timeout (net.netfilter.nf_conntrack_tcp_timeout_syn_sent,
// 120 s by default). Abuse reports arrive hours or days later.
//
// Without kernel timestamps the Recorder also takes NEW events and
// remembers each connection's start (bounded, Options.MaxOpen); a
// connection whose start it never saw (older than the daemon) is written
// with its start equal to its end, counted in Stats.NoStart.
package flowrec

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/scanwarden/scanwarden/internal/conntrack"
	"github.com/scanwarden/scanwarden/internal/flowlog"
)

// Sink receives finished flows (a *flowlog.Log).
type Sink interface {
	Append(f *flowlog.Flow) error
}

// Options configure a Recorder.
type Options struct {
	// TrackStarts remembers NEW events' times: needed when the kernel does
	// not stamp connections (nf_conntrack_timestamp off).
	TrackStarts bool
	// MaxOpen bounds the starts remembered; 0 means 1 << 20 (about 40 MiB),
	// four times the kernel's default nf_conntrack_max on a large host.
	MaxOpen int
	// Iface names the interface a connection came in on, from its
	// initiator's address; nil leaves it empty.
	Iface func(initiator netip.Addr) string
	// Process names the local process behind one of this host's own
	// connections; nil or ok false leaves it unknown.
	Process func(f *flowlog.Flow) (pid, uid uint32, comm string, ok bool)
	// IsLocal says whether an address is this host's (then the connection
	// is the host's own, and Process is asked).
	IsLocal func(netip.Addr) bool
}

// Stats count what a Recorder did.
type Stats struct {
	Events     uint64 // events handled
	Written    uint64 // flows handed to the sink
	Failed     uint64 // flows the sink refused
	NoStart    uint64 // flows written without a known start
	Evicted    uint64 // remembered starts dropped for room
	Remembered int    // starts remembered now
}

type startKey struct {
	id   uint32
	orig conntrack.Tuple
}

// Recorder builds flows from events. Handle is called from one goroutine;
// Stats from any.
type Recorder struct {
	sink   Sink
	opts   Options
	starts map[startKey]time.Time

	events, written, failed, noStart, evicted atomic.Uint64
	remembered                                atomic.Int64
}

// New returns a Recorder writing to sink.
func New(sink Sink, opts Options) *Recorder {
	if opts.MaxOpen <= 0 {
		opts.MaxOpen = 1 << 20
	}
	r := &Recorder{sink: sink, opts: opts}
	if opts.TrackStarts {
		r.starts = make(map[startKey]time.Time)
	}
	return r
}

// Handle takes one event.
func (r *Recorder) Handle(e *conntrack.Event) {
	r.events.Add(1)
	switch e.Type {
	case conntrack.EventNew:
		if r.starts == nil {
			return
		}
		if len(r.starts) >= r.opts.MaxOpen {
			// Go's map order is arbitrary: an arbitrary victim, at O(1).
			for k := range r.starts {
				delete(r.starts, k)
				r.evicted.Add(1)
				break
			}
		}
		r.starts[startKey{e.ID, e.Orig}] = e.Time
		r.remembered.Store(int64(len(r.starts)))
	case conntrack.EventDestroy:
		f := r.flow(e)
		if err := r.sink.Append(&f); err != nil {
			r.failed.Add(1)
			return
		}
		r.written.Add(1)
	}
}

// flow builds the record of a connection that ended.
func (r *Recorder) flow(e *conntrack.Event) flowlog.Flow {
	f := flowlog.Flow{
		Start: e.Start, End: e.Stop, Proto: e.Orig.Proto,
		Src: e.Orig.Src, Dst: e.Orig.Dst,
		// The reply tuple is the answer as it travels: from the remote to
		// the address the connection left with. Reversed, it is the
		// connection as seen outside.
		NATSrc: e.Reply.Dst, NATDst: e.Reply.Src,
		Outcome: outcome(e),
	}
	if f.End.IsZero() {
		f.End = e.Time
	}
	if r.starts != nil {
		k := startKey{e.ID, e.Orig}
		if t, ok := r.starts[k]; ok {
			if f.Start.IsZero() {
				f.Start = t
			}
			delete(r.starts, k)
			r.remembered.Store(int64(len(r.starts)))
		}
	}
	if f.Start.IsZero() || f.Start.After(f.End) {
		f.Start = f.End
		r.noStart.Add(1)
	}
	if e.HaveCounters {
		f.OrigPackets, f.OrigBytes = e.OrigCounters.Packets, e.OrigCounters.Bytes
		f.ReplyPackets, f.ReplyBytes = e.ReplyCounters.Packets, e.ReplyCounters.Bytes
	}
	if r.opts.Iface != nil {
		f.Iface = r.opts.Iface(f.Src.Addr())
	}
	if r.opts.Process != nil && r.opts.IsLocal != nil && r.opts.IsLocal(f.Src.Addr()) {
		if pid, uid, comm, ok := r.opts.Process(&f); ok {
			f.PID, f.UID, f.Comm = pid, uid, comm
		}
	}
	return f
}

// outcome reads whether a connection got anywhere. TCP: conntrack marks a
// connection assured once its handshake completes; answered but never
// assured is "refused" (a RST or an ICMP error; also the half-open probe of
// a SYN scan, whose SYN/ACK the prober resets); never answered is
// unanswered. Other protocols: any answer
// counts as established.
func outcome(e *conntrack.Event) flowlog.Outcome {
	answered := e.Status&conntrack.StatusSeenReply != 0 || (e.HaveCounters && e.ReplyCounters.Packets > 0)
	switch {
	case e.Orig.Proto == 6 && e.Status&conntrack.StatusAssured != 0:
		return flowlog.OutcomeEstablished
	case e.Orig.Proto == 6 && e.TCPState == conntrack.TCPEstablished:
		return flowlog.OutcomeEstablished
	case e.Orig.Proto == 6 && answered:
		return flowlog.OutcomeRefused
	case answered:
		return flowlog.OutcomeEstablished
	}
	return flowlog.OutcomeUnanswered
}

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	return Stats{
		Events: r.events.Load(), Written: r.written.Load(), Failed: r.failed.Load(),
		NoStart: r.noStart.Load(), Evicted: r.evicted.Load(), Remembered: int(r.remembered.Load()),
	}
}
