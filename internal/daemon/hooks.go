package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// HookEvent is what a response hook is told about a ban or its end.
type HookEvent struct {
	Action   string // "ban" or "unban"
	Target   netip.Prefix
	Port     uint16
	Proto    string // "tcp", "udp" or ""
	Mode     string // PortSentry's: tcp/udp (bait), atcp/audp (advanced), stcp/sudp (detector)
	Reason   string
	Duration time.Duration // 0: permanent
}

// Hooks runs commands on bans and unbans. Before blocks until the "before"
// hooks are done (bounded by their timeouts), so the caller runs it off
// the decision path; After returns at once.
type Hooks interface {
	HasBefore(action string) bool
	Before(ctx context.Context, ev HookEvent)
	After(ev HookEvent)
}

// hookEventOf describes a decision (and the finding behind it) for hooks.
func hookEventOf(action string, d *decision.Decision, f *detect.Finding) HookEvent {
	ev := HookEvent{Action: action, Target: d.Target, Reason: d.Reason, Duration: d.Duration()}
	if f == nil {
		return ev
	}
	var pp detect.PortProto
	switch e := &f.Evidence; {
	case len(e.BaitPorts) > 0:
		pp = e.BaitPorts[0]
	case len(e.FailedPorts) > 0:
		pp = e.FailedPorts[0]
	case len(e.OpenPorts) > 0:
		pp = e.OpenPorts[0]
	}
	ev.Port = pp.Port
	ev.Proto = "tcp"
	if pp.Proto == probe.UDP {
		ev.Proto = "udp"
	}
	prefix := "s" // a detector finding: PortSentry's stealth modes
	for _, m := range f.Evidence.BaitModes {
		if m == "connect" {
			prefix = ""
			break
		}
		if m == "advanced" {
			prefix = "a"
		}
	}
	ev.Mode = prefix + ev.Proto
	return ev
}

// hookEvent fires the "after" hooks for an event that needs no ordering
// (an unban, an expiry).
func (d *Daemon) hookEvent(action string, dec *decision.Decision, f *detect.Finding) {
	if d.p.Hooks != nil {
		d.p.Hooks.After(hookEventOf(action, dec, f))
	}
}
