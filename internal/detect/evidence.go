package detect

import (
	"slices"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Update says why the detector hands out a finding.
type Update uint8

// Updates.
const (
	Escalated Update = iota // the source's verdict rose (to suspicious, or to scan)
	Retired                 // the source is no longer tracked (evicted when the table was full, or idle); its last word
)

// contact starts a new attempt, or folds a retransmission into the attempt
// it repeats.
func (d *Detector) contact(p *probe.Probe, t int64, kind contactKind) {
	k := flowOf(p)
	window := int64(d.cfg.RetransmitWindow)
	a, ref := d.attempts.find(&k)
	if a != nil {
		if t-d.attempts.lastOf(a) <= window && a.kind == kind && !(kind == kindSYN && a.hasISN && p.Known&probe.KnownSeq != 0 && p.Seq != a.isn) {
			// Same 4-tuple, same ISN where known, within the window: a
			// retransmission of one attempt, not a new one.
			a.packets = satAdd16(a.packets)
			d.attempts.touch(a, t)
			s := d.sourceOf(a)
			if s != nil {
				s.packets++
				s.retrans++
				s.last = t
			}
			d.stats.Retransmits++
			if p.Bait != probe.BaitNone && a.bait == probe.BaitNone {
				// The bait sensor reports the connection the packet sensor
				// already saw begin: the same attempt, now known to be bait.
				a.bait = p.Bait
				if s != nil {
					d.baitHit(s, a)
				}
			}
			return
		}
		if a.st == stPending {
			d.timedOut(a) // superseded by a new attempt on the same 4-tuple
		}
	}
	if d.attempts.len() >= d.cfg.MaxAttempts {
		d.shedAttempt()
	}
	a = &attempt{key: k, first: t, src: -1, packets: 1, kind: kind, dir: p.Direction, tool: -1, bait: p.Bait}
	if p.Known&probe.KnownSeq != 0 {
		switch {
		case kind == kindSYN:
			a.isn, a.hasISN = p.Seq, true
		case kind.candidate():
			a.isn, a.hasISN = p.Ack, true // the RST that answers will carry this as its seq
		}
	}
	if tl, ok := fingerprint(p); ok {
		a.tool = int8(tl)
	}
	if kind == kindSYN && p.Known&probe.KnownOptions != 0 {
		a.stack = 1
		if stackSYN(p) {
			a.stack = 2
		}
	}
	if !kind.candidate() {
		d.begin(a, t)
	}
	pa := d.attempts.put(a, ref) // sets a.slot too: deadlines are read off a
	d.expireQ.push(d.attempts.deadline(a, t+window))
	switch {
	case kind.stealth():
		d.resolve(pa, stStealth)
	case kind == kindUDP && p.Outcome == probe.OutcomeUnknown && p.Known&probe.KnownPayload != 0 && p.Payload == 0:
		// An empty datagram asks nothing of any service, so no service
		// answers it: it is a port probe (nmap -sU sends them to all but a
		// few well-known ports). It counts as unanswered at once; a reply
		// or an ICMP error later corrects the outcome.
		d.resolve(pa, stUnanswered)
	case p.Outcome != probe.OutcomeUnknown && !kind.candidate():
		d.resolve(pa, stateOf(p.Outcome))
	case p.Outcome == probe.OutcomeClosed: // a candidate known to be answered by RST
		d.resolve(pa, stClosed)
	default:
		d.answerQ.push(d.attempts.deadline(a, t+int64(d.cfg.AnswerTimeout)))
	}
}

// begin accounts a new attempt, whose latest packet came at last, to its
// source, creating the source record. Candidate probes (bare ACKs) are begun
// only once an RST proves them.
func (d *Detector) begin(a *attempt, last int64) {
	seen := d.seen.entry(&d.seed, &a.key)
	s, slot, repeat := d.seenSource(seen, &a.key)
	if !repeat {
		s, slot = d.sourceFor(a.key.src, a.first, a.dir)
	}
	a.src, a.gen = slot, s.gen
	s.packets += uint32(a.packets)
	s.attempts++
	s.changed = true
	s.last = max(s.last, last)
	d.stats.Attempts++
	if !repeat {
		a.first1 = s.touchPair(a.key.dst, a.key.dport, a.key.proto, d.cfg.MaxPairsPerSource)
		if !a.first1 {
			*seen = seenPair{src: a.key.src, dst: a.key.dst, slot: slot, gen: s.gen, port: a.key.dport, proto: a.key.proto}
		}
	}
	if a.bait != probe.BaitNone {
		defer d.baitHit(s, a) // once the attempt is fully accounted
	}
	if !a.first1 {
		return
	}
	s.kinds[a.kind]++
	d.targets.contact(a)
	if a.tool >= 0 {
		s.tools[a.tool]++
	}
	switch a.stack {
	case 1:
		s.rawSYN++
	case 2:
		s.stackSYN++
	}
}

// resolve records the outcome of an attempt and, for a first contact, adds
// it to the source's evidence. Outcomes are final, except that a late
// answer turns "unanswered" into "open".
func (d *Detector) resolve(a *attempt, st state) {
	old := a.st
	switch {
	case old == st:
		return
	case old == stPending:
	case old == stUnanswered && st == stOpen: // a late answer
	case old == stUnanswered && (st == stClosed || st == stDropped):
		// A late ICMP error says why there was no answer: still a failure,
		// only the outcome's name changes.
		d.attempts.setState(a, st)
		if s := d.sourceOf(a); s != nil && a.first1 {
			s.outcomes[outUnanswered]--
			s.outcomes[outcomeIndex(st)]++
		}
		return
	default:
		return
	}
	d.attempts.setState(a, st)
	if st.settled() {
		d.settledQ.push(d.attempts.deadline(a, d.now+int64(d.cfg.AnswerTimeout)))
	}
	if a.src < 0 {
		if st != stClosed {
			return // a bare ACK nobody reset: not a probe
		}
		d.begin(a, d.attempts.lastOf(a))
	}
	s := d.sourceOf(a)
	if s == nil {
		return
	}
	if !a.first1 {
		// A repeat attempt at a service is no new evidence for the
		// sequential test, but it is an attempt for the threshold rule.
		if st.failed() && old == stPending && d.cfg.Threshold.Attempts > 0 && !isTraceroute(a) {
			d.thresholdFailure(s, a.key.dport)
			d.evaluate(s)
		}
		return
	}
	s.changed = true
	port, proto := a.key.dport, a.key.proto
	if st.failed() && old == stPending && d.cfg.Threshold.Attempts > 0 && !isTraceroute(a) {
		d.thresholdFailure(s, port)
	}
	if old == stUnanswered { // take back the failure a late answer disproves
		s.outcomes[outUnanswered]--
		if isTraceroute(a) {
			s.traceroute--
		} else {
			s.failed--
			s.score -= d.weight(port)
			s.llr -= d.trw.fail
		}
	}
	switch {
	case st == stOpen:
		s.open++
		s.outcomes[outOpen]++
		s.llr = max(s.llr+d.trw.success, d.trw.lower)
		s.setPair(a.key.dst, port, proto, pairOpen)
	case st.failed():
		s.outcomes[outcomeIndex(st)]++
		s.setPair(a.key.dst, port, proto, pairFailed)
		if a.kind.stealth() {
			s.stealth++
		}
		if isTraceroute(a) {
			s.traceroute++
			return
		}
		s.failed++
		s.noteFailedHost(a.key.dst)
		s.score += d.weight(port)
		s.llr = max(s.llr+d.trw.fail, d.trw.lower)
		d.targets.failed(a, s)
	default:
		s.setPair(a.key.dst, port, proto, pairQuiet)
		return
	}
	d.evaluate(s)
}

// outcome counter slots.
const (
	outOpen = iota
	outClosed
	outDropped
	outUnanswered
	outStealth
)

func outcomeIndex(st state) int {
	switch st {
	case stClosed:
		return outClosed
	case stDropped:
		return outDropped
	case stUnanswered:
		return outUnanswered
	case stStealth:
		return outStealth
	}
	return outOpen
}

// isTraceroute: UDP to the classic traceroute ports (base 33434, up to 30
// hops of 3 probes and some more). Those that reach a host end in port
// unreachable by design; they are not a port scan.
func isTraceroute(a *attempt) bool {
	return a.kind == kindUDP && a.key.dport >= 33434 && a.key.dport <= 33534
}

func (d *Detector) weight(port uint16) uint32 {
	if port < 1024 {
		return uint32(d.cfg.PrivilegedWeight)
	}
	return 1
}

// baitHit counts a bait contact: one attempt, however many packets.
func (d *Detector) baitHit(s *source, a *attempt) {
	if s.baitN == 0 || d.now-s.baitFirst > int64(d.cfg.BaitWindow) {
		s.baitN, s.baitFirst = 0, d.now
	}
	s.baitN = satAdd16(s.baitN)
	s.baitTotal++
	s.changed = true
	e := s.extended()
	e.baitModes |= 1 << a.bait
	pp := PortProto{a.key.dport, a.key.proto}
	if len(e.baitPorts) < displayPorts && !slices.Contains(e.baitPorts, pp) {
		e.baitPorts = append(e.baitPorts, pp)
	}
	d.evaluate(s)
}

// thresholdFailure records a failed attempt for the threshold rule: the
// last Attempts failed attempts are kept in a ring; the rule fires when the
// oldest of them is within Window and they cover DistinctPorts ports.
func (d *Detector) thresholdFailure(s *source, port uint16) {
	th := &d.cfg.Threshold
	if th.Port != nil && !th.Port(port) {
		return
	}
	e := s.extended()
	if e.recent == nil {
		e.recent = make([]failedAt, 0, th.Attempts)
	}
	if len(e.recent) < th.Attempts {
		e.recent = append(e.recent, failedAt{d.now, port})
	} else {
		e.recent[e.recentAt] = failedAt{d.now, port}
		e.recentAt = (e.recentAt + 1) % th.Attempts
	}
	if len(e.recent) < th.Attempts || e.threshold {
		return
	}
	oldest := e.recent[e.recentAt%len(e.recent)]
	if d.now-oldest.t > int64(th.Window) {
		return
	}
	ports := map[uint16]bool{}
	for _, f := range e.recent {
		ports[f.port] = true
	}
	if len(ports) >= th.DistinctPorts {
		e.threshold = true
	}
}

// baited reports whether the bait rule has decided.
func (d *Detector) baited(s *source) bool { return int(s.baitN) > d.cfg.BaitTrigger }

// judge weighs a source's evidence.
func (d *Detector) judge(s *source) Verdict {
	th := d.th
	trwScanner := s.llr >= d.trw.upper
	stealthPorts := int(s.kinds[kindFIN]) + int(s.kinds[kindNULL]) + int(s.kinds[kindXmas]) + int(s.kinds[kindOddTCP])
	switch {
	case d.baited(s), s.ext != nil && s.ext.threshold:
		return Scan
	case trwScanner && int(s.score) >= th.scanScore:
		return Scan
	case int(s.failed) >= th.bigFailures && s.failed >= 4*s.open:
		return Scan
	case stealthPorts >= th.stealthScan:
		return Scan
	case s.ext != nil && s.ext.distrib:
		return Scan
	case trwScanner, s.stealth > 0, int(s.score) >= th.suspectScore && s.llr > 0:
		return Suspicious
	}
	return Benign
}

// evaluate re-judges a source after new evidence; verdicts only rise.
func (d *Detector) evaluate(s *source) {
	v := d.judge(s)
	if v <= s.verdict {
		return
	}
	s.verdict = v
	if v == Scan {
		s.detectedAt = s.attempts
		s.detectedNs = d.now
		s.detFailed, s.detOpen = s.failed, s.open
	}
	if d.sink != nil {
		f := d.finding(s)
		d.sink(&f, Escalated)
	}
}

// shedAttempt makes room in a full attempt table by ending the oldest.
func (d *Detector) shedAttempt() {
	for d.expireQ.len() > 0 {
		e := d.expireQ.pop()
		a := d.attempts.at(&e)
		if a == nil {
			continue
		}
		if a.st == stPending {
			d.timedOut(a)
		}
		d.attempts.shedAt(a, d.now)
		d.stats.AttemptsShed++
		return
	}
}

// sourceOf returns the live source an attempt belongs to, or nil if the
// source has since been evicted.
func (d *Detector) sourceOf(a *attempt) *source {
	if a.src < 0 {
		return nil
	}
	s := d.slab.at(a.src)
	if !s.live || s.gen != a.gen {
		return nil
	}
	return s
}

func (d *Detector) lookupSource(k addrKey) *source {
	if i, ok := d.sources[d.seed.addr(&k)]; ok && d.slab.at(i).addr == k {
		return d.slab.at(i)
	}
	return nil
}

// sourceFor returns the record for k, creating it (and evicting another
// when the table is full).
func (d *Detector) sourceFor(k addrKey, t int64, dir probe.Direction) (*source, int32) {
	h := d.seed.addr(&k)
	if i, ok := d.sources[h]; ok {
		if s := d.slab.at(i); s.addr == k {
			return s, i
		}
		d.retire(i) // a hash collision: the newcomer takes the slot
	}
	if len(d.sources) >= d.cfg.MaxSources {
		d.evictOne()
	}
	var i int32
	if n := len(d.freeSrc); n > 0 {
		i = d.freeSrc[n-1]
		d.freeSrc = d.freeSrc[:n-1]
	} else {
		i = d.slab.grow()
	}
	s := d.slab.at(i)
	*s = source{addr: k, gen: s.gen + 1, live: true, first: t, last: t, dir: dir}
	d.sources[h] = i
	return s, i
}

// evictSample is how many sources eviction compares. Go randomises where
// map iteration starts, so the first few entries are a cheap random sample;
// sixteen finds a source among the least valuable few percent with high
// probability (1 - 0.95^16 ≈ 56% for the lowest 5%, >99% for the lowest 25%).
const evictSample = 16

// evictOne drops the sampled source with the least evidence, idle longest.
func (d *Detector) evictOne() {
	victim := int32(-1)
	n := 0
	for _, i := range d.sources {
		if victim < 0 || worse(d.slab.at(i), d.slab.at(victim)) {
			victim = i
		}
		if n++; n == evictSample {
			break
		}
	}
	if victim >= 0 {
		d.stats.Evicted++
		d.retire(victim)
	}
}

// worse reports whether a is less worth keeping than b.
func worse(a, b *source) bool {
	ea, eb := a.evidence(), b.evidence()
	if ea != eb {
		return ea < eb
	}
	return a.last < b.last
}

// retire stops tracking a source, handing its final finding to the sink.
func (d *Detector) retire(i int32) {
	s := d.slab.at(i)
	if d.sink != nil && s.attempts > 0 {
		f := d.finding(s)
		d.sink(&f, Retired)
	}
	delete(d.sources, d.seed.addr(&s.addr))
	gen := s.gen
	*s = source{gen: gen}
	d.freeSrc = append(d.freeSrc, i)
}

// sweep forgets sources idle past their memory: quickly for those with
// nothing against them, after SlowMemory for those with evidence. It looks
// at a slice of the table per second of traffic time, so the whole table
// is visited about once a minute at no per-probe cost.
func (d *Detector) sweep(t int64) {
	n := d.slab.len()
	if n == 0 {
		return
	}
	chunk := n/60 + 64
	for j := 0; j < chunk && j < n; j++ {
		i := d.sweepAt % n
		d.sweepAt = i + 1
		s := d.slab.at(int32(i))
		if !s.live {
			continue
		}
		limit := int64(d.cfg.IdleForget)
		if s.failed > 0 || s.verdict > Benign {
			limit = int64(d.cfg.SlowMemory)
		}
		if t-s.last > limit {
			d.stats.Forgotten++
			d.retire(int32(i))
		}
	}
}

func satAdd16(v uint16) uint16 {
	if v == 0xffff {
		return v
	}
	return v + 1
}
