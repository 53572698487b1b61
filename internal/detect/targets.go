package detect

import (
	"github.com/scanwarden/scanwarden/internal/probe"
)

// targets watches destination hosts for what no single source shows:
// decoys (nmap -D: the same probes from several addresses in lockstep, all
// but one spoofed) and distributed scans (several sources splitting one
// target's ports between them).
type targets struct {
	d         *Detector
	m         map[addrKey]*target
	dirty     []addrKey
	lastSweep int64
}

type target struct {
	ring    [lockstepRing]recentContact
	next    int
	last    int64
	lock    map[[2]addrKey]uint16 // lockstep hits between two sources
	members map[addrKey]*member   // sources with failed first contacts here
	dirty   bool
}

type recentContact struct {
	src   addrKey
	t     int64
	port  uint16
	proto probe.Proto
	set   bool
}

type member struct {
	first, last int64
	failed      int
}

const (
	// lockstepRing holds a target's latest first contacts: enough for nmap's
	// largest useful decoy lists (-D RND:10 puts 11 probes per port).
	lockstepRing = 32
	// lockstepGap: nmap sends a port's decoy probes back to back, microseconds
	// apart; independent clients rarely hit the same port of the same host
	// within 100 ms even once, let alone on five different ports.
	lockstepGap  = int64(100e6)
	lockstepHits = 5

	maxTargets        = 65_536
	maxLockPairs      = 256
	maxMembers        = 4096
	distribMinMembers = 2
	distribMinFailed  = 3  // failed ports a member needs on the target
	distribMinUnion   = 20 // ports the group must cover
)

func newTargets(d *Detector) *targets {
	return &targets{d: d, m: make(map[addrKey]*target)}
}

func (ts *targets) get(k addrKey, t int64) *target {
	tg := ts.m[k]
	if tg == nil {
		if len(ts.m) >= maxTargets {
			ts.sweep(t, true)
		}
		tg = &target{}
		ts.m[k] = tg
	}
	tg.last = t
	return tg
}

// contact notes a first contact for the lockstep (decoy) test.
func (ts *targets) contact(a *attempt) {
	tg := ts.get(a.key.dst, a.first)
	src := a.key.src
	for i := range tg.ring {
		r := &tg.ring[i]
		if !r.set || r.src == src || r.port != a.key.dport || r.proto != a.key.proto || a.first-r.t > lockstepGap {
			continue
		}
		ts.lockstep(tg, src, r.src)
	}
	tg.ring[tg.next] = recentContact{src: src, t: a.first, port: a.key.dport, proto: a.key.proto, set: true}
	tg.next = (tg.next + 1) % lockstepRing
}

func (ts *targets) lockstep(tg *target, a, b addrKey) {
	pair := [2]addrKey{a, b}
	if string(b[:]) < string(a[:]) {
		pair = [2]addrKey{b, a}
	}
	if tg.lock == nil {
		tg.lock = make(map[[2]addrKey]uint16)
	}
	n, ok := tg.lock[pair]
	if !ok && len(tg.lock) >= maxLockPairs {
		return
	}
	n++
	tg.lock[pair] = n
	if n != lockstepHits {
		return
	}
	sa, sb := ts.d.lookupSource(a), ts.d.lookupSource(b)
	if sa == nil || sb == nil {
		return
	}
	sa.extended().addDecoy(b)
	sb.extended().addDecoy(a)
}

// failed notes a failed first contact for the distributed-scan test.
func (ts *targets) failed(a *attempt, s *source) {
	tg := ts.get(a.key.dst, ts.d.now)
	if tg.members == nil {
		tg.members = make(map[addrKey]*member)
	}
	m := tg.members[a.key.src]
	if m == nil {
		if len(tg.members) >= maxMembers {
			return
		}
		m = &member{first: ts.d.now}
		tg.members[a.key.src] = m
	}
	m.failed++
	m.last = ts.d.now
	if !tg.dirty {
		tg.dirty = true
		ts.dirty = append(ts.dirty, a.key.dst)
	}
}

// expire runs once a second of traffic time: it tests the targets that saw
// failures since, and now and then forgets idle targets.
func (ts *targets) expire(now int64) {
	for _, k := range ts.dirty {
		if tg := ts.m[k]; tg != nil {
			tg.dirty = false
			ts.distributed(k, tg, now)
		}
	}
	ts.dirty = ts.dirty[:0]
	if now-ts.lastSweep > int64(ts.d.cfg.DistributedWindow) {
		ts.sweep(now, false)
	}
}

func (ts *targets) sweep(now int64, force bool) {
	ts.lastSweep = now
	window := int64(ts.d.cfg.DistributedWindow)
	for k, tg := range ts.m {
		if now-tg.last > window || force && now-tg.last > lockstepGap {
			delete(ts.m, k)
		}
	}
}

// distributed looks for sources that split the target's ports between them:
// each failed on at least distribMinFailed ports, at least 80% of each
// member's ports were probed by no other member (decoys and internet
// background noise hit the same popular ports; a split scan does not), and
// together they cover distribMinUnion ports within DistributedWindow.
func (ts *targets) distributed(k addrKey, tg *target, now int64) {
	window := int64(ts.d.cfg.DistributedWindow)
	type cand struct {
		s     *source
		key   addrKey
		ports []PortProto
	}
	var cands []cand
	for sk, m := range tg.members {
		if now-m.last > window {
			delete(tg.members, sk)
			continue
		}
		if m.failed < distribMinFailed {
			continue
		}
		s := ts.d.lookupSource(sk)
		if s == nil {
			continue
		}
		cands = append(cands, cand{s: s, key: sk, ports: s.failedPortsOn(k)})
	}
	if len(cands) < distribMinMembers {
		return
	}
	count := map[PortProto]int{}
	for _, c := range cands {
		for _, p := range c.ports {
			count[p]++
		}
	}
	var group []cand
	union := 0
	for _, c := range cands {
		unique := 0
		for _, p := range c.ports {
			if count[p] == 1 {
				unique++
			}
		}
		if len(c.ports) >= distribMinFailed && unique*10 >= len(c.ports)*8 {
			group = append(group, c)
			union += len(c.ports)
		}
	}
	if len(group) < distribMinMembers || union < distribMinUnion {
		return
	}
	for _, c := range group {
		e := c.s.extended()
		e.distrib = true
		e.group = e.group[:0]
		for _, o := range group {
			if o.key != c.key && len(e.group) < displayHosts {
				e.group = append(e.group, o.key)
			}
		}
		ts.d.evaluate(c.s)
	}
}

// extended returns the source's extended record, creating it.
func (s *source) extended() *sourceExt {
	if s.ext == nil {
		s.grow()
	}
	return s.ext
}

func (e *sourceExt) addDecoy(k addrKey) {
	for _, d := range e.decoys {
		if d == k {
			return
		}
	}
	if len(e.decoys) < displayHosts {
		e.decoys = append(e.decoys, k)
	}
}

// failedPortsOn lists the ports at which the source's first contacts with
// host failed.
func (s *source) failedPortsOn(host addrKey) []PortProto {
	var out []PortProto
	if s.ext == nil {
		if s.host0 != host {
			return nil
		}
		for _, p := range s.inline[:s.nInline] {
			if p.st == pairFailed {
				out = append(out, PortProto{p.port, p.proto})
			}
		}
		return out
	}
	hi, ok := s.ext.hosts[host]
	if !ok {
		return nil
	}
	for k, st := range s.ext.pairs {
		if uint32(k>>24) == hi && st == pairFailed {
			out = append(out, PortProto{uint16(k), probe.Proto(k >> 16)})
		}
	}
	return out
}
