package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/attribute"
	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/conntrack"
	"github.com/scanwarden/scanwarden/internal/connwatch"
	"github.com/scanwarden/scanwarden/internal/daemon"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/enforce/nft"
	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// addOutbound builds the parts of outbound watching: attribution, and on a
// router the conntrack NAT map and the neighbour table.
func addOutbound(cfg *config.Config, parts *daemon.Parts, h *host.Host, nftEnf *nft.Enforcer, log *slog.Logger) (func(), *connwatch.Watcher, error) {
	o := &cfg.Outbound
	if !o.Enabled {
		log.Info("outbound watching off (outbound.enabled: false)")
		return func() {}, nil, nil
	}
	if o.Response != "alert" && nftEnf != nil && !cfg.Policy.DryRun {
		parts.Restrictor = restrictor{nftEnf}
	}
	closeAll := func() {}
	var w *connwatch.Watcher
	if o.Attribute {
		if o.EBPF == "auto" {
			var err error
			if w, err = connwatch.Open(connwatch.Options{}); err != nil {
				log.Warn("outbound.ebpf auto: connect() calls cannot be traced; processes are named from their sockets only, and a scan of closed ports may go unnamed", "err", err)
				w = nil
			} else {
				if how, why := w.Attach(); why != nil {
					log.Info("outbound.ebpf: kernel BTF not usable; tracing connects on the classic tracepoint, which costs more per TCP state change", "attached", how, "why", why)
				}
				parts.More = append(parts.More, watchPart{w})
				closeAll = func() { w.Close() }
			}
		}
		parts.Attribute = outboundAttribution(w, log)
	}
	parts.Neighbour = neighbourMAC
	if o.Conntrack == "off" || (o.Conntrack == "auto" && !h.Forwarding()) {
		return closeAll, w, nil
	}
	l, err := conntrack.Open(conntrack.Config{})
	if err != nil {
		if o.Conntrack == "on" {
			closeAll()
			return nil, nil, fmt.Errorf("outbound.conntrack: %w", err)
		}
		log.Warn("outbound.conntrack auto: cannot follow conntrack; scans from behind this router's NAT will show its own address", "err", err)
		return closeAll, w, nil
	}
	n := &natPart{l: l, t: conntrack.NewTable(0, 0), log: log}
	parts.NAT = n
	parts.More = append(parts.More, n)
	return func() { l.Close(); closeAll() }, w, nil
}

// outboundAttribution names the local process behind an outbound finding:
// from the connect() calls eBPF recorded to the scan's targets (w, when
// available: exact even after the sockets closed), else the owners of the
// sockets from the source to the targets, else the processes holding raw
// or packet sockets, as candidates.
func outboundAttribution(w *connwatch.Watcher, log *slog.Logger) func(f *detect.Finding) *detect.Actor {
	at := attribute.New(attribute.Options{})
	return func(f *detect.Finding) *detect.Actor {
		var res attribute.Result
		if w != nil && f.ScanType != detect.TypeUDP {
			res = at.FromConnects(connects(w, f))
		}
		if len(res.Exact) == 0 {
			proto := "tcp"
			if f.ScanType == detect.TypeUDP {
				proto = "udp"
			}
			remotes := make([]netip.AddrPort, 0, len(f.Evidence.Targets))
			for _, t := range scanTargets(f) {
				remotes = append(remotes, netip.AddrPortFrom(t, 0)) // any port of the target
			}
			var err error
			if res, err = at.Outbound(proto, f.Src, remotes); err != nil {
				log.Warn("naming the process behind an outbound scan", "src", f.Src, "err", err)
				return &detect.Actor{How: "lookup failed: " + err.Error()}
			}
		}
		a := &detect.Actor{Exact: len(res.Exact) > 0, How: res.How}
		ps := res.Exact
		if !a.Exact {
			ps = res.Candidates
		}
		for _, p := range ps {
			a.Processes = append(a.Processes, detect.Process{PID: p.PID, User: p.User, UID: p.UID, Command: p.Command,
				Exe: p.Exe, Cgroup: p.Cgroup, Unit: p.Unit, Container: p.Container})
		}
		return a
	}
}

// connects are the connect() calls recorded from the finding's source to
// its targets since it began. The watcher reads its ring every few
// milliseconds, so when there are none yet it is asked once more after
// that long.
func connects(w *connwatch.Watcher, f *detect.Finding) []attribute.Connect {
	since := f.FirstSeen.Add(-time.Second)
	targets := scanTargets(f)
	cs := w.Lookup(f.Src, targets, since)
	if len(cs) == 0 {
		time.Sleep(25 * time.Millisecond)
		cs = w.Lookup(f.Src, targets, since)
	}
	out := make([]attribute.Connect, len(cs))
	for i, c := range cs {
		out[i] = attribute.Connect{PID: c.PID, UID: c.UID, Comm: c.Comm, Time: c.Time}
	}
	return out
}

// scanTargets are the hosts the scan aimed at: those its first contacts
// failed on, not the first hosts the source ever talked to (a server's
// ordinary traffic before a scan would name its innocent clients).
func scanTargets(f *detect.Finding) []netip.Addr {
	if len(f.Evidence.FailedHosts) > 0 {
		return f.Evidence.FailedHosts
	}
	return f.Evidence.Targets
}

// watchPart runs the eBPF connect watcher with the sensors and shows it in
// status. It emits no probes.
type watchPart struct{ w *connwatch.Watcher }

func (p watchPart) Run(ctx context.Context, _ func(*probe.Probe)) error { return p.w.Run(ctx) }

func (p watchPart) Status() api.Part {
	st := p.w.Stats()
	how, _ := p.w.Attach()
	pr := ""
	if st.Lost > 0 {
		pr = fmt.Sprintf("%d connect records lost (ring buffer full)", st.Lost)
	}
	return api.Part{
		Name:    "ebpf connects",
		Summary: fmt.Sprintf("%d connect() calls recorded, %d kept (%s)", st.Read, st.Live, how),
		Counts:  map[string]uint64{"read": st.Read, "lost": st.Lost, "malformed": st.Malformed, "indexed": st.Indexed, "evicted": st.Evicted},
		Problem: pr,
	}
}

// restrictor carries out outbound.response with the nftables enforcer.
type restrictor struct{ e *nft.Enforcer }

func (r restrictor) Restrict(ctx context.Context, x daemon.Restriction) error {
	rule := nft.OutboundRule{UID: x.UID, CgroupPath: strings.TrimPrefix(x.Cgroup, "/"), Client: x.Client,
		Mode: nft.OutboundThrottle, Until: x.Until, Reason: x.Reason}
	if x.Block {
		rule.Mode = nft.OutboundBlock
	}
	return r.e.RestrictOutbound(ctx, rule)
}

// natPart follows conntrack so probes that crossed our NAT are mapped back
// to the internal client. It is a ProbeSource that emits no probes: the
// daemon runs and stops it with the sensors and shows it in status.
type natPart struct {
	l   *conntrack.Listener
	t   *conntrack.Table
	log *slog.Logger

	mu      sync.Mutex
	problem string
	dumps   uint64
}

func (n *natPart) ClientOf(proto uint8, outside, dst netip.AddrPort) (netip.AddrPort, bool) {
	o, ok := n.t.Original(proto, outside, dst)
	return o.Src, ok
}

func (n *natPart) Translated(a netip.Addr) bool { return n.t.Translated(a) }

// Run loads the table as it is, then follows its events. When the kernel
// reports lost events (a full socket buffer), the table is dumped again.
func (n *natPart) Run(ctx context.Context, _ func(*probe.Probe)) error {
	n.dump(ctx)
	go func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		seen := uint64(0)
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				if o := n.l.Stats().Overruns; o != seen {
					seen = o
					n.dump(ctx)
				}
			}
		}
	}()
	err := n.l.Run(ctx, n.t.Handle)
	if err != nil {
		n.setProblem(err.Error())
	}
	return err
}

func (n *natPart) dump(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	evs, err := n.l.Dump(ctx)
	if err != nil {
		n.setProblem(err.Error())
		n.log.Warn("conntrack dump", "err", err)
		return
	}
	for i := range evs {
		n.t.Handle(&evs[i])
	}
	n.mu.Lock()
	n.dumps++
	n.problem = "" // the table is whole again
	n.mu.Unlock()
}

func (n *natPart) setProblem(s string) {
	n.mu.Lock()
	n.problem = s
	n.mu.Unlock()
}

func (n *natPart) Status() api.Part {
	st := n.l.Stats()
	n.mu.Lock()
	defer n.mu.Unlock()
	return api.Part{
		Name:    "conntrack",
		Summary: fmt.Sprintf("NAT map: %d translated connections; %d events read, %d lost", n.t.Len(), st.Events, st.Overruns),
		Counts: map[string]uint64{"events": st.Events, "malformed": st.Malformed, "overruns": st.Overruns,
			"translated": uint64(n.t.Len()), "evicted": n.t.Evicted(), "dumps": n.dumps},
		Problem: n.problem,
	}
}

// neighbourMAC is an address's link-layer address from the neighbour table
// (ARP, NDP): "" when it is not on one of our links or not resolved.
func neighbourMAC(a netip.Addr) string {
	fam := unix.AF_INET
	if a.Is6() && !a.Is4In6() {
		fam = unix.AF_INET6
	}
	ns, err := netlink.NeighList(0, fam)
	if err != nil {
		return ""
	}
	ip := net.IP(a.Unmap().AsSlice())
	for _, n := range ns {
		if n.IP.Equal(ip) && len(n.HardwareAddr) > 0 && n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) == 0 {
			return n.HardwareAddr.String()
		}
	}
	return ""
}
