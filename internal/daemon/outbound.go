package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// NAT maps this router's translated connections back to the internal
// clients that made them (conntrack).
type NAT interface {
	// ClientOf returns the original source of the connection seen beyond
	// the NAT as outsideSrc → dst.
	ClientOf(proto uint8, outsideSrc, dst netip.AddrPort) (netip.AddrPort, bool)
	// Translated reports whether src has connections this host translates.
	Translated(src netip.Addr) bool
}

// Restriction limits the new outbound connections of whoever made an
// outbound scan: a local user, a cgroup, or, on a router, an internal
// client's forwarded traffic. Exactly one of UID, Cgroup and Client is set.
type Restriction struct {
	UID    *uint32
	Cgroup string // cgroup v2 path
	Client netip.Addr
	Block  bool // false: throttle
	Until  time.Time
	Reason string
}

// Key names the restricted actor: "uid 65534", "cgroup /system.slice/x",
// "client 192.168.1.20".
func (r Restriction) Key() string {
	switch {
	case r.UID != nil:
		return "uid " + strconv.FormatUint(uint64(*r.UID), 10)
	case r.Cgroup != "":
		return "cgroup " + r.Cgroup
	}
	return "client " + r.Client.String()
}

// Restrictor carries out Restrictions (nftables: meta skuid, socket
// cgroupv2, forwarded sources). Entries expire by themselves at Until.
type Restrictor interface {
	Restrict(ctx context.Context, r Restriction) error
}

// outboundState is what the daemon did about outbound scans.
type outboundState struct {
	mu    sync.Mutex
	given map[string]Restriction // by Key, while in force
	done  map[string]string      // finding ID → what was done, in words
}

// natFate is what mapNAT made of a probe.
type natFate uint8

const (
	natKeep natFate = iota // analyse it (mapped or not)
	natDrop                // not to be analysed (outbound.enabled: false)
	natLate                // may be an answer whose conntrack event has not been read yet
)

// natLag is how long a probe that may belong to a translated connection
// waits for conntrack's event when its lookup misses. The kernel sends the
// event before the packet leaves, but the daemon reads the event socket
// and the packet ring in different goroutines; under a burst the packets
// win by a few milliseconds.
const natLag = 30 * time.Millisecond

// mapNAT gives a probe that crossed this router's NAT its internal client:
// a connection attempt leaving with our address is the client's (when the
// sensor saw only the outside leg; the packet sensor skips the copy of one
// it saw arrive), and an answer coming back to our address is an answer to
// the client. first is false for a probe's second try, after natLag.
func (d *Daemon) mapNAT(p *probe.Probe, first bool) natFate {
	if p.Direction == probe.DirOutbound && !d.cfg.Outbound.Enabled {
		return natDrop
	}
	if d.p.NAT == nil || (p.Direction != probe.DirOutbound && p.Direction != probe.DirInbound) {
		return natKeep
	}
	client := func(proto probe.Proto, outside, remote netip.AddrPort) (netip.AddrPort, bool) {
		orig, ok := d.p.NAT.ClientOf(uint8(proto), outside, remote)
		return orig, ok && !d.p.Host.IsLocal(orig.Addr())
	}
	if p.Direction == probe.DirOutbound {
		if orig, ok := client(p.Proto, p.Src, p.Dst); ok {
			p.Src, p.Direction = orig, probe.DirForwarded
			return natKeep
		}
	} else {
		if orig, ok := client(p.Proto, p.Dst, p.Src); ok {
			p.Dst, p.Direction = orig, probe.DirForwarded
			return natKeep
		}
		// An ICMP error quoting a translated datagram: its quote names the
		// router's port, the client's port once translated back.
		if in := &p.Inner; in.Valid {
			if orig, ok := client(in.Proto, in.Src, in.Dst); ok {
				in.Src, p.Dst, p.Direction = orig, netip.AddrPortFrom(orig.Addr(), 0), probe.DirForwarded
				return natKeep
			}
		}
	}
	if first && mayBeTranslated(p) {
		return natLate
	}
	return natKeep
}

// mayBeTranslated: a probe that can belong to a connection our NAT
// translates — anything but a connection's first SYN coming in from
// outside, which no connection of a client can start (and which must be
// judged at once: it is how scans of this router arrive).
func mayBeTranslated(p *probe.Probe) bool {
	switch p.Proto {
	case probe.TCP:
		return p.Direction == probe.DirOutbound || p.Flags&(probe.SYN|probe.ACK|probe.RST) != probe.SYN
	case probe.UDP:
		return true
	}
	return p.Inner.Valid
}

// maxLate bounds the probes waiting for conntrack; past it they are
// analysed at once, unmapped.
const maxLate = 8192

type lateProbe struct {
	p  probe.Probe
	at time.Time
}

// lateLoop gives each waiting probe its second lookup after natLag, in
// the order they came.
func (d *Daemon) lateLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case lp := <-d.late:
			if wait := time.Until(lp.at.Add(natLag)); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			d.mapNAT(&lp.p, false)
			d.observe(&lp.p)
		}
	}
}

// deferProbe queues p for its second lookup, or analyses it now when the
// queue is full.
func (d *Daemon) deferProbe(p *probe.Probe) {
	select {
	case d.late <- lateProbe{p: *p, at: time.Now()}:
	default:
		d.stats.lateFull.Add(1)
		d.observe(p)
	}
}

// client names the internal client behind a forwarded finding: its MAC
// from the neighbour table, and whether this host translates its
// connections.
func (d *Daemon) client(f *detect.Finding) {
	if f.Direction != probe.DirForwarded || f.Verdict == detect.Benign || f.Client != nil {
		return
	}
	d.actorMu.Lock()
	c, ok := d.clients[f.ID]
	d.actorMu.Unlock()
	if !ok {
		c = &detect.Client{IP: f.Src}
		if d.p.Neighbour != nil {
			c.MAC = d.p.Neighbour(f.Src)
		}
		if d.p.NAT != nil {
			c.NAT = d.p.NAT.Translated(f.Src)
		}
		if c.MAC == "" && !c.NAT {
			c = nil // a stranger passing through: nothing to add
		}
		if c != nil || f.Verdict >= detect.Scan { // asked again while only suspicious
			d.actorMu.Lock()
			if d.clients == nil || len(d.clients) >= maxActors {
				d.clients = make(map[string]*detect.Client)
			}
			d.clients[f.ID] = c
			d.actorMu.Unlock()
		}
	}
	if c == nil {
		return
	}
	f.Client = c
	f.Reason += " " + c.Sentence()
}

// restriction says what outbound.response does about an outbound or
// internal client's forwarded scan: the restriction, or why there is none.
func (d *Daemon) restriction(f *detect.Finding) (Restriction, string) {
	o := &d.cfg.Outbound
	r := Restriction{Block: o.Response == "block", Until: d.now().Add(o.For.D()), Reason: f.Reason}
	switch {
	case f.Direction == probe.DirForwarded && f.Client != nil && f.Client.NAT:
		r.Client = f.Client.IP
		return r, ""
	case f.Direction != probe.DirOutbound:
		return r, "not ours: a forwarded source is banned like an inbound one"
	case f.Actor == nil || !f.Actor.Exact || len(f.Actor.Processes) == 0:
		return r, "not restricted: the process is not known exactly"
	}
	p := f.Actor.Processes[0]
	if o.Restrict == "cgroup" || p.UID == 0 {
		if p.Cgroup == "" || p.Cgroup == "/" {
			if p.UID == 0 {
				return r, "not restricted: made by root outside any unit or container, and root's connections are the host's own"
			}
		} else {
			r.Cgroup = p.Cgroup
			return r, ""
		}
	}
	uid := p.UID
	r.UID = &uid
	return r, ""
}

// respond carries out outbound.response for an outbound or internal
// client's scan, once per actor while the restriction holds.
func (d *Daemon) respond(ctx context.Context, f *detect.Finding) {
	o := &d.cfg.Outbound
	if o.Response == "alert" || f.Verdict < detect.Scan || d.p.Restrictor == nil {
		return
	}
	if f.Direction != probe.DirOutbound && f.Direction != probe.DirForwarded {
		return
	}
	r, why := d.restriction(f)
	st := &d.outbound
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.given == nil {
		st.given, st.done = map[string]Restriction{}, map[string]string{}
	}
	if why != "" {
		if f.Direction == probe.DirOutbound {
			st.done[f.ID] = why
		}
		return
	}
	now := d.now()
	if g, ok := st.given[r.Key()]; ok && g.Until.After(now) {
		st.done[f.ID] = d.restricted(g)
		return
	}
	if err := d.p.Restrictor.Restrict(ctx, r); err != nil {
		d.log.Error("restricting an outbound scanner", "who", r.Key(), "err", err)
		st.done[f.ID] = "restriction failed: " + err.Error()
		return
	}
	st.given[r.Key()] = r
	st.done[f.ID] = d.restricted(r)
	d.log.Warn("outbound scan: restricted", "who", r.Key(), "block", r.Block, "until", r.Until.Format(time.RFC3339), "finding", f.ID)
	for k, g := range st.given { // keep the maps small
		if !g.Until.After(now) {
			delete(st.given, k)
		}
	}
	if len(st.done) > maxActors {
		clear(st.done)
	}
}

// restricted says in words what r does.
func (d *Daemon) restricted(r Restriction) string {
	how := "throttled to " + strconv.FormatUint(uint64(d.cfg.Outbound.Throttle.Rate), 10) + " new connections/s"
	if r.Block {
		how = "new connections blocked"
	}
	return fmt.Sprintf("%s: %s until %s", r.Key(), how, r.Until.Format(time.RFC3339))
}

// responseFor says what was done about an outbound finding ("" if
// nothing was to be done).
func (d *Daemon) responseFor(id string) string {
	d.outbound.mu.Lock()
	defer d.outbound.mu.Unlock()
	return d.outbound.done[id]
}

// outboundList is the outbound and forwarded-from-NAT scans of the last
// day (req.Since), the latest finding of each source, newest first.
func (d *Daemon) outboundList(req *api.Request) ([]api.Outbound, error) {
	if req.Since == "" {
		req.Since = "24h"
	}
	fs, err := d.findings(&api.Request{Since: req.Since, Limit: 10000})
	if err != nil {
		return nil, err
	}
	out := []api.Outbound{}
	seen := map[string]bool{}
	for _, f := range fs { // newest first
		if seen[f.Src] || (f.Verdict != "scan" && f.Verdict != "suspicious") {
			continue
		}
		if f.Direction != "outbound" && !(f.Direction == "forwarded" && f.ClientNAT) {
			continue
		}
		seen[f.Src] = true
		o := api.Outbound{Src: f.Src, Direction: f.Direction, Verdict: f.Verdict, ScanType: f.ScanType, Ports: f.Ports,
			Hosts: f.Hosts, Attempts: f.Attempts, LastSeen: f.LastSeen, FindingID: f.ID, Response: d.responseFor(f.ID)}
		switch a := f.Actor; {
		case f.Direction == "forwarded":
			o.Who = "client " + f.ClientIP
			if f.ClientMAC != "" {
				o.Who += " (MAC " + f.ClientMAC + ")"
			}
		case a == nil:
			o.Who = "not looked up"
		case a.Exact:
			o.Who = fmt.Sprintf("pid %d %s (%s)", a.PID, a.Command, a.User)
		case len(a.Candidates) > 0:
			o.Who = fmt.Sprintf("one of %d candidates, e.g. pid %d %s (%s)", len(a.Candidates), a.Candidates[0].PID, a.Candidates[0].Command, a.Candidates[0].User)
		default:
			o.Who = a.How
		}
		if o.Response == "" {
			o.Response = "reported (outbound.response: " + d.cfg.Outbound.Response + ")"
		}
		out = append(out, o)
	}
	return out, nil
}
