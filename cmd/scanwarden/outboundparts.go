package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/conntrack"
	"github.com/scanwarden/scanwarden/internal/daemon"
	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// addOutbound builds the parts of outbound watching: attribution, and on a
// router the conntrack NAT map and the neighbour table.
func addOutbound(cfg *config.Config, parts *daemon.Parts, h *host.Host, log *slog.Logger) (func(), error) {
	o := &cfg.Outbound
	if !o.Enabled {
		log.Info("outbound watching off (outbound.enabled: false)")
		return func() {}, nil
	}
	if o.Attribute {
		parts.Attribute = outboundAttribution(log)
	}
	parts.Neighbour = neighbourMAC
	if o.Conntrack == "off" || (o.Conntrack == "auto" && !h.Forwarding()) {
		return func() {}, nil
	}
	l, err := conntrack.Open(conntrack.Config{})
	if err != nil {
		if o.Conntrack == "on" {
			return nil, fmt.Errorf("outbound.conntrack: %w", err)
		}
		log.Warn("outbound.conntrack auto: cannot follow conntrack; scans from behind this router's NAT will show its own address", "err", err)
		return func() {}, nil
	}
	n := &natPart{l: l, t: conntrack.NewTable(0, 0), log: log}
	parts.NAT = n
	parts.More = append(parts.More, n)
	return func() { l.Close() }, nil
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
