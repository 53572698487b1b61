package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/conntrack"
	"github.com/scanwarden/scanwarden/internal/connwatch"
	"github.com/scanwarden/scanwarden/internal/daemon"
	"github.com/scanwarden/scanwarden/internal/flowlog"
	"github.com/scanwarden/scanwarden/internal/flowrec"
	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// The conntrack sysctls the connection log wants on.
const (
	sysctlAcct      = "/proc/sys/net/netfilter/nf_conntrack_acct"
	sysctlTimestamp = "/proc/sys/net/netfilter/nf_conntrack_timestamp"
)

// flowsReadBuffer is the event socket's buffer: a busy router ends tens of
// thousands of connections a second, and an event lost is a flow missing
// from the log.
const flowsReadBuffer = 16 << 20

// addFlows starts the connection log when flows.enabled says so: conntrack
// DESTROY events (and NEW ones, without kernel timestamps) into flowlog.
func addFlows(cfg *config.Config, parts *daemon.Parts, h *host.Host, w *connwatch.Watcher, log *slog.Logger) (func(), error) {
	fc := cfg.Flows
	switch {
	case fc.Enabled == "off":
		return func() {}, nil
	case fc.Enabled == "auto" && !h.Forwarding():
		log.Info("connection log off: this host does not forward (flows.enabled: auto); set flows.enabled: on to log its own connections")
		return func() {}, nil
	}
	fail := func(err error) (func(), error) {
		if fc.Enabled == "on" {
			return nil, fmt.Errorf("flows: %w", err)
		}
		log.Warn("flows.enabled auto: no connection log", "err", err)
		return func() {}, nil
	}
	// Opening a listener loads nf_conntrack, which creates the sysctls;
	// they decide which events the real one needs.
	first, err := conntrack.Open(conntrack.Config{Groups: conntrack.GroupDestroy})
	if err != nil {
		return fail(err)
	}
	first.Close()
	if fc.Sysctls {
		for _, p := range []string{sysctlAcct, sysctlTimestamp} {
			if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
				log.Warn("flows.sysctls: cannot turn on", "sysctl", p, "err", err)
			}
		}
	}
	stamps := sysctlOn(sysctlTimestamp)
	if !sysctlOn(sysctlAcct) {
		log.Warn("conntrack accounting is off (net.netfilter.nf_conntrack_acct=0): flows are logged without packet and byte counts")
	}
	groups := conntrack.GroupDestroy
	if !stamps {
		groups |= conntrack.GroupNew // starts are taken from NEW events
	}
	l, err := conntrack.Open(conntrack.Config{Groups: groups, ReadBuffer: flowsReadBuffer})
	if err != nil {
		return fail(err)
	}
	lg, err := flowlog.Open(flowlog.Options{Dir: cfg.FlowsDir(), Keep: fc.Keep.D(), Partition: fc.Partition.D()})
	if err != nil {
		l.Close()
		return fail(err)
	}
	p := &flowsPart{l: l, lg: lg, log: log, dir: cfg.FlowsDir(), stamps: stamps}
	opts := flowrec.Options{TrackStarts: !stamps, Iface: newIfaceCache().of, IsLocal: h.IsLocal}
	if w != nil {
		opts.Process = processOf(w)
	}
	p.rec = flowrec.New(p, opts)
	parts.More = append(parts.More, p)
	log.Info("connection log on", "dir", cfg.FlowsDir(), "keep", fc.Keep.D(), "partition", fc.Partition.D(), "kernel_timestamps", stamps)
	return func() {
		l.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		if err := lg.Close(); err != nil {
			log.Error("closing the connection log", "err", err)
		}
	}, nil
}

func sysctlOn(path string) bool {
	b, err := os.ReadFile(path)
	return err == nil && strings.TrimSpace(string(b)) == "1"
}

// flowsPart runs the connection log with the sensors.
type flowsPart struct {
	l      *conntrack.Listener
	rec    *flowrec.Recorder
	log    *slog.Logger
	dir    string
	stamps bool

	mu      sync.Mutex // lg: Append from the event reader, Flush and Expire from the ticker
	lg      *flowlog.Log
	problem string
}

// Append is the recorder's sink.
func (p *flowsPart) Append(f *flowlog.Flow) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lg.Append(f)
}

func (p *flowsPart) Run(ctx context.Context, _ func(*probe.Probe)) error {
	go p.housekeeping(ctx)
	err := p.l.Run(ctx, p.rec.Handle)
	if err != nil && ctx.Err() == nil {
		p.setProblem(err.Error())
	}
	return err
}

// housekeeping flushes the log every few seconds, so a flow is on disk
// soon after its end, and drops partitions past flows.keep every hour.
func (p *flowsPart) housekeeping(ctx context.Context) {
	flush := time.NewTicker(5 * time.Second)
	defer flush.Stop()
	expire := time.NewTicker(time.Hour)
	defer expire.Stop()
	p.expire(time.Now())
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			p.mu.Lock()
			err := p.lg.Flush()
			p.mu.Unlock()
			if err != nil {
				p.setProblem("writing the connection log: " + err.Error())
				p.log.Error("writing the connection log", "err", err)
			}
		case now := <-expire.C:
			p.expire(now)
		}
	}
}

func (p *flowsPart) expire(now time.Time) {
	p.mu.Lock()
	n, err := p.lg.Expire(now)
	p.mu.Unlock()
	if err != nil {
		p.log.Error("dropping old connection-log partitions", "err", err)
	} else if n > 0 {
		p.log.Info("dropped old connection-log partitions (flows.keep)", "partitions", n)
	}
}

func (p *flowsPart) setProblem(s string) {
	p.mu.Lock()
	p.problem = s
	p.mu.Unlock()
}

func (p *flowsPart) Status() api.Part {
	ls, rs := p.l.Stats(), p.rec.Stats()
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.problem
	if ls.Overruns > 0 && pr == "" {
		pr = fmt.Sprintf("the kernel dropped conntrack events %d times (socket buffer full): flows are missing", ls.Overruns)
	}
	return api.Part{
		Name:    "connection log",
		Summary: fmt.Sprintf("%d flows logged in %s", rs.Written, p.dir),
		Counts: map[string]uint64{"events": ls.Events, "written": rs.Written, "failed": rs.Failed, "no_start": rs.NoStart,
			"overruns": ls.Overruns, "malformed": ls.Malformed},
		Problem: pr,
	}
}

// ifaceCache names the interface that routes to an address (for a
// forwarded connection's client, the one it came in on), remembering
// answers for a while. Used from the recorder's goroutine only.
type ifaceCache struct {
	m map[netip.Addr]ifaceEntry
}

type ifaceEntry struct {
	name string
	at   time.Time
}

const (
	ifaceCacheMax = 65536
	ifaceCacheTTL = 10 * time.Minute
)

func newIfaceCache() *ifaceCache { return &ifaceCache{m: map[netip.Addr]ifaceEntry{}} }

func (c *ifaceCache) of(a netip.Addr) string {
	now := time.Now()
	if e, ok := c.m[a]; ok && now.Sub(e.at) < ifaceCacheTTL {
		return e.name
	}
	if len(c.m) >= ifaceCacheMax {
		clear(c.m)
	}
	name := ""
	if rs, err := netlink.RouteGet(net.IP(a.AsSlice())); err == nil && len(rs) > 0 && rs[0].LinkIndex > 0 {
		if l, err := netlink.LinkByIndex(rs[0].LinkIndex); err == nil {
			name = l.Attrs().Name
		}
	}
	c.m[a] = ifaceEntry{name, now}
	return name
}

// processOf names the process behind one of this host's connections from
// the connect() calls eBPF recorded: the one to the same address and port
// closest in time to the flow's start (TCP only; connwatch keeps 10
// minutes of connects, so a longer connection goes unnamed).
func processOf(w *connwatch.Watcher) func(f *flowlog.Flow) (uint32, uint32, string, bool) {
	return func(f *flowlog.Flow) (uint32, uint32, string, bool) {
		if f.Proto != 6 {
			return 0, 0, "", false
		}
		const slack = 5 * time.Second
		var best *connwatch.Conn
		conns := w.Lookup(f.Src.Addr(), []netip.Addr{f.Dst.Addr()}, f.Start.Add(-slack))
		for i := range conns {
			c := &conns[i]
			if c.Dst != f.Dst || absDur(c.Time.Sub(f.Start)) > slack {
				continue
			}
			if best == nil || absDur(c.Time.Sub(f.Start)) < absDur(best.Time.Sub(f.Start)) {
				best = c
			}
		}
		if best == nil {
			return 0, 0, "", false
		}
		return uint32(best.PID), best.UID, best.Comm, true
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
