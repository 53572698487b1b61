// Package detect turns probes into findings: it folds packets into
// connection attempts, learns each attempt's outcome from the answers (or
// their absence), weighs every source's first contacts with a sequential
// hypothesis test and weighted counts, classifies what it sees, and says in
// one sentence why it decided.
//
// The same detector runs offline over files (on their own timestamps) and
// live in the daemon; it knows nothing of firewalls, policy or storage. It
// is not safe for concurrent use: one goroutine feeds it.
package detect

import (
	"net/netip"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Detector holds the state of every tracked source and attempt.
type Detector struct {
	cfg  Config
	th   thresholds
	trw  trw
	sink func(*Finding, Update)

	now      int64            // ns; the latest probe time seen
	still    int              // probes in a row that did not move now (see stillRun)
	sources  map[uint64]int32 // keyed by seed.addr; see attemptTable for why
	seed     hashSeed
	slab     sourceSlab
	freeSrc  []int32
	attempts *attemptTable
	answerQ  queue // pending first contacts awaiting an answer
	expireQ  queue // every attempt, for forgetting after RetransmitWindow
	settledQ queue // answered attempts, forgotten after AnswerTimeout
	sweepAt  int   // next slab slot the idle sweep looks at
	lastTick int64
	targets  *targets
	seen     seenPairs

	stats Stats
}

// Stats counts what the detector did; for status output and benchmarks.
type Stats struct {
	Probes       uint64
	Attempts     uint64
	Retransmits  uint64
	Answers      uint64
	Evicted      uint64 // sources evicted because the table was full
	Forgotten    uint64 // sources dropped after going idle
	AttemptsShed uint64 // attempts resolved early because the attempt table was full
	Ignored      uint64 // probes that are neither contacts nor answers
}

// New returns a detector. sink, if not nil, is called synchronously whenever
// a source's verdict rises (to suspicious, then to scan: Escalated) and when
// a source with attempts stops being tracked (Retired); the Finding is the
// caller's to keep.
func New(cfg Config, sink func(*Finding, Update)) (*Detector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	d := &Detector{
		cfg:      cfg,
		th:       cfg.thresholds(),
		trw:      cfg.trw(),
		sink:     sink,
		sources:  make(map[uint64]int32, 1024),
		seed:     newHashSeed(),
		attempts: newAttemptTable(1024),
	}
	d.targets = newTargets(d)
	return d, nil
}

// Stats returns the detector's counters.
func (d *Detector) Stats() Stats { return d.stats }

// Sources returns how many sources are tracked.
func (d *Detector) Sources() int { return len(d.sources) }

// Now returns the detector's clock: the time of the latest probe or Advance.
func (d *Detector) Now() time.Time { return time.Unix(0, d.now) }

// Observe feeds one probe. Probes should arrive in time order; a probe
// older than the clock is processed at the clock's time.
func (d *Detector) Observe(p *probe.Probe) {
	d.stats.Probes++
	t := p.Time.UnixNano()
	switch {
	case t > d.now:
		d.advance(t)
		d.still = 0
	case d.still < stillRun:
		d.still++
		t = d.now
	default:
		d.advance(d.now + 1)
		t = d.now
	}
	if p.Frag == probe.FragLater {
		if s := d.lookupSource(keyOf(p.Src.Addr())); s != nil {
			s.frags++
			s.packets++
		}
		return
	}
	switch p.Proto {
	case probe.TCP:
		d.tcp(p, t)
	case probe.UDP:
		d.udp(p, t)
	case probe.ICMP, probe.ICMPv6:
		if p.Inner.Valid {
			d.icmpError(p, t)
			return
		}
		d.stats.Ignored++
	default:
		d.stats.Ignored++
	}
}

// stillRun is how many probes in a row may leave the clock where it is
// (the same time, or older) before Observe moves it on by a nanosecond a
// probe. The detector frees what it had to shed from a full table only
// when its clock moves, so input whose times stand still — a hostile log
// with one timestamp, or times running backwards — would otherwise grow
// its memory with every line. Real input has at most a few hundred probes
// in one nanosecond; a million nudged ones move the clock by a
// millisecond, far below anything the detector measures (answer timeout
// seconds, retransmission window minutes).
const stillRun = 1024

// purgeQueues drops the deadlines of attempts no longer held once a queue
// holds more than twice the attempts there can be: with the clock nearly
// still, they would wait seconds of input time to be popped. Called after
// unshed, when no shed attempt awaits an heir to its deadlines.
func (d *Detector) purgeQueues() {
	limit := 2*d.cfg.MaxAttempts + 1024
	if d.answerQ.len() > limit {
		d.answerQ.purge(func(e *deadline) bool { return d.attempts.holds(e, metaPending) })
	}
	if d.settledQ.len() > limit {
		d.settledQ.purge(func(e *deadline) bool { return d.attempts.holds(e, metaSettled) })
	}
	if d.expireQ.len() > limit {
		d.expireQ.purge(func(e *deadline) bool { return d.attempts.holds(e, 0) })
	}
}

// Advance moves the clock to t without a probe: live sensors call it on a
// ticker so that unanswered attempts time out during quiet periods.
func (d *Detector) Advance(t time.Time) {
	if ns := t.UnixNano(); ns > d.now {
		d.advance(ns)
	}
}

// Flush resolves everything still pending as if the answer timeout had
// passed: the end of a capture.
func (d *Detector) Flush() {
	d.advance(d.now + int64(d.cfg.AnswerTimeout))
}

func (d *Detector) advance(t int64) {
	d.now = t
	d.attempts.unshed()
	d.purgeQueues()
	timeout := int64(d.cfg.AnswerTimeout)
	for dl := d.answerQ.peek(); dl != nil && dl.at <= t; dl = d.answerQ.peek() {
		e := d.answerQ.pop()
		if d.attempts.holds(&e, metaPending) {
			d.timedOut(&d.attempts.slab[e.slot])
		}
	}
	window := int64(d.cfg.RetransmitWindow)
	for dl := d.expireQ.peek(); dl != nil && dl.at <= t; dl = d.expireQ.peek() {
		e := d.expireQ.pop()
		if !d.attempts.holds(&e, 0) {
			continue
		}
		if last := d.attempts.info[e.slot].last; last+window > t { // still active: look again later
			e.at = last + window
			d.expireQ.push(e)
			continue
		}
		a := &d.attempts.slab[e.slot]
		if a.st == stPending && a.first+timeout <= t {
			d.timedOut(a)
		}
		d.attempts.remove(e.slot)
	}
	for dl := d.settledQ.peek(); dl != nil && dl.at <= t; dl = d.settledQ.peek() {
		e := d.settledQ.pop()
		if !d.attempts.holds(&e, metaSettled) {
			continue
		}
		if last := d.attempts.info[e.slot].last; last+timeout > t {
			e.at = last + timeout
			d.settledQ.push(e)
			continue
		}
		d.attempts.remove(e.slot)
	}
	if t-d.lastTick >= int64(time.Second) {
		d.lastTick = t
		d.sweep(t)
		d.targets.expire(t)
		if moved := d.attempts.compact(); moved != nil {
			d.answerQ.moved(moved)
			d.expireQ.moved(moved)
			d.settledQ.moved(moved)
		}
		d.answerQ.shrink()
		d.expireQ.shrink()
		d.settledQ.shrink()
	}
}

// timedOut resolves an attempt nobody answered.
func (d *Detector) timedOut(a *attempt) {
	if a.kind.candidate() {
		// An unanswered bare ACK is as likely the middle of a connection
		// whose start we missed as a probe: no evidence either way.
		d.resolve(a, stEstablished)
		return
	}
	d.resolve(a, stUnanswered)
}

// tcp handles one TCP segment.
func (d *Detector) tcp(p *probe.Probe, t int64) {
	if p.Known&probe.KnownFlags == 0 {
		d.contact(p, t, kindFrag)
		return
	}
	f := p.Flags &^ (probe.ECE | probe.CWR)
	k := flowOf(p)
	switch {
	case f&probe.RST != 0:
		d.rst(p, &k, t, f)
	case f&probe.SYN != 0 && f&probe.ACK != 0:
		if _, a := d.attempts.both(&k); a != nil && a.kind == kindSYN {
			d.stats.Answers++
			if a.hasISN && p.Known&probe.KnownSeq != 0 && p.Ack != a.isn+1 {
				return // not an answer to this SYN: a stale or forged SYN/ACK
			}
			d.attempts.touch(a, t)
			d.resolve(a, stOpen)
			return
		}
		d.stats.Ignored++ // backscatter: a SYN/ACK to a SYN we never saw
	case f&probe.SYN != 0:
		d.contact(p, t, kindSYN)
	case f&probe.ACK == 0:
		switch f {
		case 0:
			d.contact(p, t, kindNULL)
		case probe.FIN:
			d.contact(p, t, kindFIN)
		case probe.FIN | probe.PSH | probe.URG:
			d.contact(p, t, kindXmas)
		default:
			d.contact(p, t, kindOddTCP)
		}
	default: // ACK set, no SYN or RST: part of a connection, or an ACK/Maimon probe
		fwd, rev := d.attempts.both(&k)
		if a := fwd; a != nil {
			d.attempts.touch(a, t)
			if a.kind == kindSYN && a.st == stOpen && a.handshake == hsNone && f&(probe.PSH|probe.URG) == 0 {
				// ACK, or FIN/ACK: the source went on with the connection.
				a.handshake = hsCompleted
				if s := d.sourceOf(a); s != nil {
					s.completed++
				}
			}
			return
		}
		if a := rev; a != nil {
			d.attempts.touch(a, t)
			if a.kind.candidate() && a.st == stPending {
				d.resolve(a, stEstablished) // the other side talks back: a live connection
			}
			return
		}
		if p.Payload == 0 && p.Known&probe.KnownPayload != 0 {
			switch f {
			case probe.ACK:
				d.contact(p, t, kindACK)
			case probe.FIN | probe.ACK:
				d.contact(p, t, kindMaimon)
			}
		}
	}
}

// rst handles a reset: the answer "closed" to an attempt, the initiator
// tearing down a half-open connection (a SYN scan), or a reset to a probe we
// did not see.
func (d *Detector) rst(p *probe.Probe, k *flowKey, t int64, f probe.TCPFlags) {
	fwd, rev := d.attempts.both(k)
	if a := rev; a != nil {
		d.attempts.touch(a, t)
		switch {
		case a.kind == kindSYN || a.kind == kindFrag:
			if a.st == stOpen || a.st == stEstablished {
				return // the target resetting a connection it had accepted
			}
			if a.hasISN && f&probe.ACK != 0 && p.Known&probe.KnownSeq != 0 && p.Ack != a.isn+1 {
				return // does not acknowledge our SYN: not its answer
			}
			d.stats.Answers++
			d.resolve(a, stClosed)
		case a.kind.candidate():
			// RFC 9293 §3.10.7.1: a segment with ACK to no connection is
			// answered by a RST whose sequence number is that ACK number.
			if f&probe.ACK == 0 && (p.Known&probe.KnownSeq == 0 || p.Seq == a.isn) && a.st == stPending {
				d.stats.Answers++
				d.resolve(a, stClosed)
			}
		default:
			if a.st == stPending {
				d.stats.Answers++
				d.resolve(a, stClosed)
			}
		}
		return
	}
	if a := fwd; a != nil {
		d.attempts.touch(a, t)
		if a.kind == kindSYN && a.st == stOpen && a.handshake == hsNone {
			a.handshake = hsHalfOpen
			if s := d.sourceOf(a); s != nil {
				s.halfOpen++
			}
		}
		return
	}
	if f&probe.ACK == 0 && p.Known&probe.KnownSeq != 0 && p.Seq != 0 {
		// A bare RST with a sequence number answers an ACK-bearing segment
		// to no connection; when that segment was not seen (a live sensor
		// filters ACKs out) the RST is the only evidence of an ACK probe.
		d.inferredACK(p, k.flip(), t)
		return
	}
	d.stats.Ignored++
}

// inferredACK records an ACK probe known only from the RST that answered it.
func (d *Detector) inferredACK(p *probe.Probe, k flowKey, t int64) {
	var q probe.Probe
	q.Time = p.Time
	q.Src, q.Dst = p.Dst, p.Src
	q.Proto = probe.TCP
	q.Flags = probe.ACK
	q.Direction = flipDir(p.Direction)
	q.Known = probe.KnownFlags | probe.KnownPorts
	q.Outcome = probe.OutcomeClosed
	d.contact(&q, t, kindACK)
}

func flipDir(d probe.Direction) probe.Direction {
	switch d {
	case probe.DirInbound:
		return probe.DirOutbound
	case probe.DirOutbound:
		return probe.DirInbound
	}
	return d
}

// udp handles one datagram: an answer to an attempt the other way, or a
// contact.
func (d *Detector) udp(p *probe.Probe, t int64) {
	dst := p.Dst.Addr()
	if dst.IsMulticast() || dst == broadcast4 || !p.Src.Addr().IsValid() || p.Src.Addr().IsUnspecified() {
		d.stats.Ignored++ // broadcast and multicast are not contacts with a host
		return
	}
	k := flowOf(p)
	if _, a := d.attempts.both(&k); a != nil && a.kind == kindUDP {
		d.attempts.touch(a, t)
		if a.st == stPending || a.st == stUnanswered {
			d.stats.Answers++
			d.resolve(a, stOpen)
		}
		return
	}
	d.contact(p, t, kindUDP)
}

// icmpError handles an ICMP error quoting one of our attempts.
func (d *Detector) icmpError(p *probe.Probe, t int64) {
	in := &p.Inner
	if in.Proto != probe.TCP && in.Proto != probe.UDP {
		d.stats.Ignored++
		return
	}
	k := flowKey{src: keyOf(in.Src.Addr()), dst: keyOf(in.Dst.Addr()), sport: in.Src.Port(), dport: in.Dst.Port(), proto: in.Proto}
	a := d.attempts.get(k)
	o := stateOf(p.ErrorOutcome())
	if a == nil || o == stPending {
		d.stats.Ignored++
		return
	}
	d.attempts.touch(a, t)
	if a.st == stPending || (a.st == stUnanswered && a.kind == kindUDP) {
		d.stats.Answers++
		d.resolve(a, o)
	}
}

var broadcast4 = netip.AddrFrom4([4]byte{255, 255, 255, 255})
