// Package notify tells the outside world about findings and decisions in
// the formats other tools read. This file: PortSentry's syslog lines and
// history file, so log watchers written for PortSentry and fail2ban's
// portsentry filter keep working after the move.
//
// It knows nothing of packets or firewalls; it formats what it is given.
package notify

import (
	"context"
	"fmt"
	"io"
	"log/syslog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// PortSentryConfig says which of PortSentry's outputs to write.
type PortSentryConfig struct {
	Syslog      bool   // attackalert lines, tag "portsentry", facility daemon, level notice
	HistoryFile string // "" for none
	ResolveHost bool   // look attacking hosts' names up (RESOLVE_HOST)
	// How bans are carried out, for the "has been blocked via" line.
	Via string
}

// PortSentry writes PortSentry-style lines.
type PortSentry struct {
	cfg    PortSentryConfig
	mu     sync.Mutex
	syslog io.Writer // nil when off or unavailable
	now    func() time.Time
}

// NewPortSentry opens the outputs. A syslog that cannot be reached is an
// error (the user asked for it); the history file is opened per write.
func NewPortSentry(cfg PortSentryConfig) (*PortSentry, error) {
	p := &PortSentry{cfg: cfg, now: time.Now}
	if cfg.Syslog {
		w, err := syslog.New(syslog.LOG_NOTICE|syslog.LOG_DAEMON, "portsentry")
		if err != nil {
			return nil, fmt.Errorf("portsentry-style syslog: %w", err)
		}
		p.syslog = w
	}
	if cfg.HistoryFile != "" {
		f, err := os.OpenFile(cfg.HistoryFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, fmt.Errorf("portsentry history file: %w", err)
		}
		f.Close()
	}
	return p, nil
}

// newPortSentryTo writes syslog lines to w (tests).
func newPortSentryTo(cfg PortSentryConfig, w io.Writer) *PortSentry {
	return &PortSentry{cfg: cfg, syslog: w, now: time.Now}
}

// name is PortSentry's "NAME/IP": the resolved name, or the address twice.
func (p *PortSentry) name(a netip.Addr) string {
	if p.cfg.ResolveHost {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if names, err := net.DefaultResolver.LookupAddr(ctx, a.String()); err == nil && len(names) > 0 {
			return clean(strings.TrimSuffix(names[0], ".")) + "/" + a.String()
		}
	}
	return a.String() + "/" + a.String()
}

// clean keeps a resolved name to the characters a host name may hold, so a
// hostile PTR record cannot forge log lines.
func clean(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 || b.Len() > 253 {
		return "unknown"
	}
	return b.String()
}

func (p *PortSentry) logf(format string, args ...any) {
	if p.syslog == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.syslog, format, args...)
}

// attackKind names a finding as PortSentry would have.
func attackKind(f *detect.Finding, proto probe.Proto) string {
	if proto == probe.UDP {
		return "UDP scan"
	}
	for _, m := range f.Evidence.BaitModes {
		if m == "connect" {
			return "Connect"
		}
	}
	switch f.ScanType {
	case detect.TypeFIN:
		return "TCP FIN scan"
	case detect.TypeXmas:
		return "TCP XMAS scan"
	case detect.TypeNULL:
		return "TCP NULL scan"
	case detect.TypeSYN, detect.TypeConnect:
		return "TCP SYN/Normal scan"
	}
	return "TCP UNKNOWN scan"
}

// port picks the port a PortSentry line names: the first bait port, else
// the first failed one.
func port(f *detect.Finding) (uint16, probe.Proto) {
	if len(f.Evidence.BaitPorts) > 0 {
		return f.Evidence.BaitPorts[0].Port, f.Evidence.BaitPorts[0].Proto
	}
	if len(f.Evidence.FailedPorts) > 0 {
		return f.Evidence.FailedPorts[0].Port, f.Evidence.FailedPorts[0].Proto
	}
	if len(f.Evidence.OpenPorts) > 0 {
		return f.Evidence.OpenPorts[0].Port, f.Evidence.OpenPorts[0].Proto
	}
	return 0, probe.TCP
}

func protoName(p probe.Proto) string {
	if p == probe.UDP {
		return "UDP"
	}
	return "TCP"
}

// Finding writes the attackalert line for a finding.
func (p *PortSentry) Finding(f *detect.Finding) {
	if f.Verdict == detect.Benign {
		return
	}
	pt, proto := port(f)
	p.logf("attackalert: %s from host: %s to %s port: %d", attackKind(f, proto), p.name(f.Src), protoName(proto), pt)
}

// Ban writes the "has been blocked" line and the history line.
func (p *PortSentry) Ban(d *decision.Decision, f *detect.Finding) {
	if d.Kind != decision.Ban {
		return
	}
	target := d.Target.String()
	if d.Target.IsSingleIP() {
		target = d.Target.Addr().String()
	}
	p.logf("attackalert: Host %s has been blocked via %s", target, p.cfg.Via)
	if p.cfg.HistoryFile == "" || !d.Target.IsSingleIP() {
		return
	}
	pt, proto := uint16(0), probe.TCP
	if f != nil {
		pt, proto = port(f)
	}
	now := p.now()
	line := fmt.Sprintf("%d - %s Host: %s Port: %d %s Blocked\n", now.Unix(), now.Format("01/02/2006 15:04:05"),
		p.name(d.Target.Addr()), pt, protoName(proto))
	p.mu.Lock()
	defer p.mu.Unlock()
	fh, err := os.OpenFile(p.cfg.HistoryFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		p.logf("attackalert: could not write the history file: %v", err)
		return
	}
	fh.WriteString(line)
	fh.Close()
}
