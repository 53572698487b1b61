package daemon

import (
	"context"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/report"
)

var (
	remoteHost = netip.MustParseAddr("203.0.113.50")
	natClient  = netip.MustParseAddr("192.168.7.20")
)

// fakeNAT is a masquerade: the client's port 40000+i left as the router's
// 60000+i.
type fakeNAT struct{}

func (fakeNAT) ClientOf(proto uint8, outside, dst netip.AddrPort) (netip.AddrPort, bool) {
	if proto != uint8(probe.TCP) || outside.Addr() != server || dst.Addr() != remoteHost || outside.Port() < 60000 {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(natClient, outside.Port()-20000), true
}
func (fakeNAT) Translated(a netip.Addr) bool { return a == natClient }

type fakeRestrictor struct {
	mu  sync.Mutex
	got []Restriction
}

func (r *fakeRestrictor) Restrict(_ context.Context, x Restriction) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, x)
	return nil
}
func (r *fakeRestrictor) list() []Restriction {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Restriction(nil), r.got...)
}

// outScan is this host (its outside address) trying ports 1..n of the
// remote host, each answered by a reset: the packets as the packet sensor
// reports them.
func (h *harness) outScan(n int) {
	for i := 1; i <= n; i++ {
		h.clock.add(time.Millisecond)
		from := netip.AddrPortFrom(server, uint16(60000+i))
		to := netip.AddrPortFrom(remoteHost, uint16(i))
		h.sensor.in <- probe.Probe{Time: h.clock.now(), Src: from, Dst: to, Proto: probe.TCP, Flags: probe.SYN,
			Known: probe.KnownFlags | probe.KnownPorts, Direction: probe.DirOutbound, Sensor: probe.SensorPacket}
		h.sensor.in <- probe.Probe{Time: h.clock.now(), Src: to, Dst: from, Proto: probe.TCP, Flags: probe.RST | probe.ACK,
			Known: probe.KnownFlags | probe.KnownPorts, Direction: probe.DirInbound, Sensor: probe.SensorPacket}
	}
}

func (h *harness) findingOf(src netip.Addr) (report.JSONFinding, bool) {
	var fs []report.JSONFinding
	if err := h.call(apiFindings(), &fs); err != nil {
		h.t.Fatal(err)
	}
	for _, f := range fs {
		if f.Src == src.String() && f.Verdict == "scan" {
			return f, true
		}
	}
	return report.JSONFinding{}, false
}

// TestNATClientScanNamesTheClient: behind this router's NAT, a client's
// scan seen only as it leaves (our address, translated ports) and its
// answers coming back to our address is the client's forwarded scan —
// named with its MAC, reported, not banned — and never this host's.
func TestNATClientScanNamesTheClient(t *testing.T) {
	h := start(t, nil, nil, nil, func(p *Parts) {
		p.NAT = fakeNAT{}
		p.Neighbour = func(a netip.Addr) string {
			if a == natClient {
				return "02:00:00:00:07:20"
			}
			return ""
		}
	})
	h.outScan(40)
	var f report.JSONFinding
	h.waitFor("the client's finding", func() bool { var ok bool; f, ok = h.findingOf(natClient); return ok })
	if f.Direction != "forwarded" || f.ClientIP != natClient.String() || f.ClientMAC != "02:00:00:00:07:20" || !f.ClientNAT {
		t.Errorf("finding %s %s client %q %q nat %v", f.Src, f.Direction, f.ClientIP, f.ClientMAC, f.ClientNAT)
	}
	// "closed": the resets coming back to our address were mapped to the client.
	if f.Failed < 4 || !strings.Contains(f.Reason, "closed") || !strings.Contains(f.Reason, "behind this host's NAT") {
		t.Errorf("failed %d, reason %q", f.Failed, f.Reason)
	}
	if _, ok := h.findingOf(server); ok {
		t.Error("the router itself reported as scanning")
	}
	h.waitFor("a watch decision", func() bool {
		for _, d := range h.store.decisionList() {
			if d.Target.Addr() == natClient && d.Kind == decision.Watch && strings.Contains(d.NotActed, "internal client") {
				return true
			}
		}
		return false
	})
	if h.kernelHas(natClient) {
		t.Error("an internal client was banned with outbound.response: alert")
	}
}

// TestOutboundDisabled: outbound.enabled false leaves this host's own
// attempts unanalysed.
func TestOutboundDisabled(t *testing.T) {
	h := start(t, func(c *config.Config) { c.Outbound.Enabled = false }, nil, nil)
	h.outScan(40)
	h.syn(attacker(9), 22) // something inbound, to know the probes went through
	time.Sleep(100 * time.Millisecond)
	if _, ok := h.findingOf(server); ok {
		t.Error("outbound scan found with outbound.enabled: false")
	}
}

// TestOutboundResponse: with outbound.response block, an exactly
// attributed scan restricts its user once; root outside any unit is not
// restricted, and says why; an internal NAT client is restricted by
// address.
func TestOutboundResponse(t *testing.T) {
	for _, c := range []struct {
		name    string
		actor   detect.Process
		nat     bool
		want    string // Restriction.Key, "" for none
		whyNone string
	}{
		{"user", detect.Process{PID: 4242, User: "nobody", UID: 65534, Command: "python3 scan.py", Cgroup: "/user.slice/user-1000.slice/session-3.scope"}, false, "uid 65534", ""},
		{"root in a unit", detect.Process{PID: 1, UID: 0, Cgroup: "/system.slice/evil.service"}, false, "cgroup /system.slice/evil.service", ""},
		{"root outside units", detect.Process{PID: 1, UID: 0, Cgroup: "/"}, false, "", "root's connections are the host's own"},
		{"nat client", detect.Process{}, true, "client " + natClient.String(), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			rs := &fakeRestrictor{}
			h := start(t, func(cf *config.Config) { cf.Outbound.Response = "block" }, nil, nil, func(p *Parts) {
				p.Restrictor = rs
				p.Attribute = func(*detect.Finding) *detect.Actor {
					return &detect.Actor{Exact: true, How: "test", Processes: []detect.Process{c.actor}}
				}
				if c.nat {
					p.NAT = fakeNAT{}
				}
			})
			h.outScan(60)
			src := server
			if c.nat {
				src = natClient
			}
			h.waitFor("the finding", func() bool { _, ok := h.findingOf(src); return ok })
			if c.want == "" {
				h.waitFor("the reason there is no restriction", func() bool {
					for _, d := range h.store.decisionList() {
						if strings.Contains(d.NotActed, c.whyNone) {
							return true
						}
					}
					return false
				})
				if got := rs.list(); len(got) != 0 {
					t.Fatalf("restricted %v", got)
				}
				return
			}
			h.waitFor("a restriction", func() bool { return len(rs.list()) > 0 })
			time.Sleep(50 * time.Millisecond) // later versions of the finding must not restrict again
			got := rs.list()
			if len(got) != 1 || got[0].Key() != c.want || !got[0].Block || !got[0].Until.After(h.clock.now()) {
				t.Fatalf("restrictions %+v, want one block of %s", got, c.want)
			}
			var outs []api.Outbound
			if err := h.call(api.Request{Cmd: api.CmdOutbound}, &outs); err != nil {
				t.Fatal(err)
			}
			if len(outs) != 1 || outs[0].Src != src.String() || !strings.Contains(outs[0].Response, c.want+": new connections blocked") {
				t.Errorf("list --outbound: %+v", outs)
			}
		})
	}
}

func attacker(n byte) netip.Addr { return netip.AddrFrom4([4]byte{192, 0, 2, n}) }

func apiFindings() api.Request { return api.Request{Cmd: api.CmdFindings, Since: "1h"} }

func (s *memStore) decisionList() []decision.Decision {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]decision.Decision(nil), s.decisions...)
}
