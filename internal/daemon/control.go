package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/report"
)

// Handle implements api.Handler: the control socket's commands.
func (d *Daemon) Handle(ctx context.Context, req *api.Request, peer api.Peer) (any, error) {
	switch req.Cmd {
	case api.CmdStatus:
		return d.status(ctx), nil
	case api.CmdList:
		return d.list(ctx), nil
	case api.CmdBan:
		return d.manualBan(ctx, req, peer)
	case api.CmdUnban:
		return d.unban(ctx, req.Target, "cli: "+peer.String(), req.Reason)
	case api.CmdAllow:
		return d.allow(ctx, req, peer)
	case api.CmdUnallow:
		return d.unallow(req)
	case api.CmdExplain:
		return d.explain(req.Target)
	case api.CmdGrep:
		return d.grep(req.Target)
	case api.CmdFindings:
		return d.findings(req)
	case api.CmdOutbound:
		return d.outboundList(req)
	}
	return nil, fmt.Errorf("unknown command %q", req.Cmd)
}

// parseTarget reads an address or a CIDR prefix.
func parseTarget(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("no address or prefix given")
	}
	p, err := config.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(strings.TrimSpace(s))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%q is not an IP address", s)
	}
	if a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf("%q: zones are not allowed", s)
	}
	return a.Unmap(), nil
}

// guardedIn returns the first never-block address the prefix covers: a ban
// that would cut off the host itself, its gateway, its nameservers or the
// admin's SSH session is refused, even when asked for by hand.
func (d *Daemon) guardedIn(p netip.Prefix) (netip.Addr, string, bool) {
	if p.IsSingleIP() {
		if why, ok := d.p.Host.GuardNow(p.Addr()); ok {
			return p.Addr(), why, true
		}
		return netip.Addr{}, "", false
	}
	var cands []netip.Addr
	for _, a := range d.p.Host.Addresses() {
		cands = append(cands, a.Addr())
	}
	cands = append(cands, d.p.Host.Gateways()...)
	cands = append(cands, d.p.Host.Nameservers()...)
	cands = append(cands, d.p.Host.SSHPeers()...)
	for _, a := range cands {
		if p.Contains(a.Unmap()) {
			if why, ok := d.p.Host.GuardNow(a.Unmap()); ok {
				return a, why, true
			}
		}
	}
	return netip.Addr{}, "", false
}

func (d *Daemon) manualBan(ctx context.Context, req *api.Request, peer api.Peer) (*api.BanResult, error) {
	target, err := parseTarget(req.Target)
	if err != nil {
		return nil, err
	}
	if a, why, ok := d.guardedIn(target); ok {
		return nil, fmt.Errorf("refusing to ban %s: it covers %s (%s), which is never blocked", target, a, why)
	}
	if pfx, ok := d.pol.Allowed(target.Addr()); ok && target.Bits() >= pfx.Bits() {
		return nil, fmt.Errorf("refusing to ban %s: the allow list holds %s (remove it first with `scanwarden unallow %s`)", target, pfx, pfx)
	}
	now := d.now()
	dur := d.cfg.Policy.BanTime.D()
	if req.For != "" {
		if req.For == "permanent" || req.For == "forever" || req.For == "0" {
			dur = 0
		} else if dur, err = config.ParseDuration(req.For); err != nil {
			return nil, err
		} else if dur < time.Second {
			return nil, fmt.Errorf("--for %s: a ban must last at least 1s (or say permanent)", req.For)
		}
	}
	reason := req.Reason
	if reason == "" {
		reason = "banned by hand"
	}
	dec := decision.Decision{ID: decision.NewID(), Kind: decision.Ban, Target: target, Created: now,
		Reason: reason, By: "cli: " + peer.String()}
	if dur > 0 {
		dec.Expires = now.Add(dur)
	}
	if d.cfg.Policy.DryRun {
		return nil, errors.New("the daemon runs in dry-run mode: it blocks nothing, not even by hand")
	}
	if d.p.Hooks != nil && d.p.Hooks.HasBefore("ban") {
		d.p.Hooks.Before(ctx, hookEventOf("ban", &dec, nil))
	}
	d.applyBans(ctx, []decision.Decision{dec})
	if !d.banned(target.Addr()) {
		return nil, fmt.Errorf("the ban on %s could not be applied (see the daemon's log)", target)
	}
	d.afterBan(&dec, nil)
	return &api.BanResult{Decision: dec, Message: fmt.Sprintf("banned %s for %s", target, durationText(dur)), Undo: undoCommand(target)}, nil
}

// unban lifts the bans on target: the ban on exactly that prefix and any
// inside it. An address inside a wider banned prefix is not lifted on its
// own (that would need the prefix split); the error names the prefix.
func (d *Daemon) unban(ctx context.Context, s, by, reason string) (*api.BanResult, error) {
	target, err := parseTarget(s)
	if err != nil {
		return nil, err
	}
	lifted, err := d.lift(ctx, target, by, reason)
	if err != nil {
		return nil, err
	}
	for _, p := range lifted {
		d.hookEvent("unban", &decision.Decision{Kind: decision.Unban, Target: p, Reason: reason}, nil)
	}
	if len(lifted) == 0 {
		if pfx, _, ok := d.bans.Load().LookupPrefixLPM(target); ok && d.banned(target.Addr()) {
			return nil, fmt.Errorf("%s is not banned on its own but inside the ban on %s; lift that with `scanwarden unban %s`", target, pfx, pfx)
		}
		return nil, fmt.Errorf("%s is not banned", target)
	}
	names := make([]string, len(lifted))
	for i, p := range lifted {
		names[i] = p.String()
	}
	dec := decision.Decision{ID: decision.NewID(), Kind: decision.Unban, Target: target, Created: d.now(), Reason: reason, By: by}
	return &api.BanResult{Decision: dec, Message: "lifted the ban on " + strings.Join(names, ", ")}, nil
}

// lift removes bans inside target from the kernel, the table and the store.
func (d *Daemon) lift(ctx context.Context, target netip.Prefix, by, reason string) ([]netip.Prefix, error) {
	d.banMu.Lock()
	defer d.banMu.Unlock()
	table := d.bans.Load()
	var lifted []netip.Prefix
	for pfx := range table.Subnets(target.Masked()) {
		lifted = append(lifted, pfx)
	}
	if len(lifted) == 0 {
		return nil, nil
	}
	if err := d.applyAll(ctx, nil, lifted); err != nil {
		return nil, fmt.Errorf("removing from the firewall: %w", err)
	}
	now := d.now()
	if reason == "" {
		reason = "lifted by hand"
	}
	for _, pfx := range lifted {
		table = table.DeletePersist(pfx)
		dec := decision.Decision{ID: decision.NewID(), Kind: decision.Unban, Target: pfx, Created: now, Reason: reason, By: by}
		if err := d.p.Store.SaveDecision(&dec); err != nil {
			d.log.Error("storing an unban", "target", pfx, "err", err)
		}
		d.log.Warn("unban", "target", pfx, "by", by, "reason", reason)
	}
	d.bans.Store(table)
	return lifted, nil
}

func (d *Daemon) allow(ctx context.Context, req *api.Request, peer api.Peer) (*api.BanResult, error) {
	target, err := parseTarget(req.Target)
	if err != nil {
		return nil, err
	}
	by := "cli: " + peer.String()
	if err := d.p.Store.AddListEntry("allow", target, req.Reason, by, d.now()); err != nil {
		return nil, fmt.Errorf("storing the allow entry: %w", err)
	}
	d.pol.AddList("allow", target, by)
	dec := decision.Decision{ID: decision.NewID(), Kind: decision.Allow, Target: target, Created: d.now(), Reason: req.Reason, By: by}
	if err := d.p.Store.SaveDecision(&dec); err != nil {
		d.log.Error("storing an allow decision", "target", target, "err", err)
	}
	lifted, err := d.lift(ctx, target, by, "allowed")
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("%s is on the allow list: never banned", target)
	if len(lifted) > 0 {
		msg += fmt.Sprintf("; lifted %d ban(s)", len(lifted))
	}
	d.log.Warn("allow", "target", target, "by", by, "lifted", len(lifted))
	return &api.BanResult{Decision: dec, Message: msg, Undo: "scanwarden unallow " + target.String()}, nil
}

func (d *Daemon) unallow(req *api.Request) (*api.BanResult, error) {
	target, err := parseTarget(req.Target)
	if err != nil {
		return nil, err
	}
	ok, err := d.p.Store.RemoveListEntry("allow", target)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("%s is not on the run-time allow list (entries from the configuration file are changed there)", target)
	}
	d.pol.RemoveList("allow", target)
	return &api.BanResult{Message: fmt.Sprintf("%s removed from the allow list", target)}, nil
}

func (d *Daemon) banInfo(b *activeBan, inKernel map[netip.Prefix]bool, now time.Time) api.Ban {
	out := api.Ban{Target: b.Target.String(), Created: b.Created, Expires: b.Expires, Offence: b.Offence,
		By: b.By, Reason: b.Reason, FindingID: b.FindingID, Undo: undoCommand(b.Target)}
	if b.Target.IsSingleIP() {
		out.Target = b.Target.Addr().String()
	}
	if b.Expires.IsZero() {
		out.Remaining = "permanent"
	} else {
		out.Remaining = b.Expires.Sub(now).Round(time.Second).String()
	}
	if inKernel == nil {
		out.InKernel = d.p.Enforcer == nil
	} else {
		out.InKernel = inKernel[b.Target.Masked()]
	}
	return out
}

func (d *Daemon) kernelSet(ctx context.Context) map[netip.Prefix]bool {
	if d.p.Enforcer == nil {
		return nil
	}
	bans, err := d.p.Enforcer.Bans(ctx)
	if err != nil {
		return nil
	}
	m := make(map[netip.Prefix]bool, len(bans))
	for _, b := range bans {
		m[b.Prefix.Masked()] = true
	}
	return m
}

func (d *Daemon) list(ctx context.Context) []api.Ban {
	now := d.now()
	inKernel := d.kernelSet(ctx)
	var out []api.Ban
	for _, b := range d.bans.Load().AllSorted() {
		if b.Active(now) {
			out = append(out, d.banInfo(b, inKernel, now))
		}
	}
	return out
}

func (d *Daemon) status(ctx context.Context) *api.Status {
	now := d.now()
	d.mu.Lock()
	ds := d.det.Stats()
	sources := d.det.Sources()
	d.mu.Unlock()
	active := 0
	for _, b := range d.bans.Load().All() {
		if b.Active(now) {
			active++
		}
	}
	var ss SensorStats
	var ifaces []string
	if d.p.Sensor != nil {
		ss = d.p.Sensor.Stats()
		ifaces = d.p.Sensor.Interfaces()
	}
	st := &api.Status{
		Version: d.p.Version, PID: os.Getpid(), Started: d.start, Uptime: now.Sub(d.start).Round(time.Second).String(),
		DryRun: d.cfg.Policy.DryRun, Firewall: d.firewallName(), StateDir: d.cfg.StateDir,
		Interfaces: ifaces, PacketSensor: d.p.Sensor != nil, ActiveBans: active, Sources: sources, MaxSources: d.cfg.Detect.MaxSources,
		HeapBytes: heapBytes(),
		Sensor: api.SensorStatus{Packets: ss.Packets, Probes: ss.Probes, KernelDrops: ss.KernelDrops,
			Ignored: d.stats.ignored.Load(), WhileBanned: d.stats.whileBanned.Load()},
		Detector: api.DetectorStats{Probes: ds.Probes, Attempts: ds.Attempts, Retransmits: ds.Retransmits,
			Evicted: ds.Evicted, Findings: d.stats.findings.Load()},
		Decisions: api.DecisionStats{Bans: d.stats.bans.Load(), NotActed: d.stats.notActed.Load(), RateCapped: d.stats.rateCapped.Load()},
		Listeners: d.p.Host.ListenerCount(),
		Notes:     append([]string(nil), d.notes...),
	}
	for _, a := range d.p.Host.Addresses() {
		st.Guards.Addresses = append(st.Guards.Addresses, a.Addr().String())
	}
	st.Guards.Gateways = strs(d.p.Host.Gateways())
	st.Guards.Nameservers = strs(d.p.Host.Nameservers())
	st.Guards.SSHPeers = strs(d.p.Host.SSHPeers())
	if allow, err := d.pol.List("allow"); err == nil {
		byCountry := 0
		for p, origin := range allow {
			// A country is thousands of prefixes: counted, not listed.
			if origin == OriginGeoIP {
				byCountry++
				continue
			}
			st.Guards.Allow = append(st.Guards.Allow, p.String())
		}
		sort.Strings(st.Guards.Allow)
		if byCountry > 0 {
			st.Guards.Allow = append(st.Guards.Allow, fmt.Sprintf("%d prefixes of the allowed countries", byCountry))
		}
	}
	for _, src := range d.p.More {
		if r, ok := src.(Reporter); ok {
			st.Parts = append(st.Parts, r.Status())
		}
	}
	for _, r := range d.p.Reporters {
		st.Parts = append(st.Parts, r.Status())
	}
	if n := d.stats.queueFull.Load(); n > 0 {
		st.Notes = append(st.Notes, fmt.Sprintf("%d findings were dropped because the decision queue was full", n))
	}
	if n := d.stats.lateFull.Load(); n > 0 {
		st.Notes = append(st.Notes, fmt.Sprintf("%d packets were analysed without waiting for conntrack (queue full): answers to NAT clients among them were not mapped", n))
	}
	if c, ok := d.p.Enforcer.(interface {
		Counters(context.Context) (uint64, uint64, error)
	}); ok {
		if pk, _, err := c.Counters(ctx); err == nil {
			st.DroppedByFW = pk
		}
	}
	return st
}

func strs(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// liveFinding is the detector's current view of a source.
func (d *Daemon) liveFinding(a netip.Addr) *report.JSONFinding {
	d.mu.Lock()
	f, ok := d.det.FindingFor(a)
	d.mu.Unlock()
	if !ok {
		return nil
	}
	d.attribute(&f)
	j := report.ToJSON(&f)
	return &j
}

func (d *Daemon) explain(s string) (*api.Explain, error) {
	a, err := parseAddr(s)
	if err != nil {
		return nil, err
	}
	out := &api.Explain{Address: a.String(), Live: d.liveFinding(a)}
	if out.Live != nil {
		out.Verdict = out.Live.Verdict
	}
	if out.Findings, err = d.p.Store.FindingsFor(a, 10); err != nil {
		return nil, err
	}
	if out.Decisions, err = d.p.Store.DecisionsAbout(a, 20); err != nil {
		return nil, err
	}
	if out.Verdict == "" && len(out.Findings) > 0 {
		out.Verdict = out.Findings[0].Verdict
	}
	now := d.now()
	if pfx, b, ok := d.bans.Load().LookupPrefixLPM(decision.HostPrefix(a)); ok && b.Active(now) {
		bi := d.banInfo(b, nil, now)
		bi.InKernel = true
		out.Ban = &bi
		out.Undo = undoCommand(pfx)
	}
	if pfx, ok := d.pol.Allowed(a); ok {
		out.Allowed = pfx.String()
	}
	out.Ignored = d.pol.Ignored(a)
	if why, ok := d.p.Host.GuardNow(a); ok {
		out.Guard = why
	}
	if d.p.Country != nil {
		out.Country = d.p.Country(a)
	}
	return out, nil
}

func (d *Daemon) grep(s string) (*api.Grep, error) {
	a, err := parseAddr(s)
	if err != nil {
		return nil, err
	}
	out := &api.Grep{Address: a.String(), Live: d.liveFinding(a)}
	now := d.now()
	for _, b := range d.bans.Load().Supernets(decision.HostPrefix(a)) {
		if b.Active(now) {
			out.Bans = append(out.Bans, d.banInfo(b, nil, now))
		}
	}
	for _, list := range []string{"allow", "ignore"} {
		entries, err := d.pol.List(list)
		if err != nil {
			return nil, err
		}
		stored, _ := d.p.Store.ListEntries(list)
		meta := map[netip.Prefix]ListEntry{}
		for _, e := range stored {
			meta[e.Prefix] = e
		}
		for pfx, origin := range entries {
			if !pfx.Contains(a) {
				continue
			}
			e := api.ListEntry{Prefix: pfx.String(), Origin: origin}
			if m, ok := meta[pfx]; ok {
				e.Comment, e.Added = m.Comment, m.Added
			}
			if list == "allow" {
				out.Allow = append(out.Allow, e)
			} else {
				out.Ignore = append(out.Ignore, e)
			}
		}
	}
	if out.Decisions, err = d.p.Store.DecisionsAbout(a, 100); err != nil {
		return nil, err
	}
	if out.Findings, err = d.p.Store.FindingsFor(a, 100); err != nil {
		return nil, err
	}
	if why, ok := d.p.Host.GuardNow(a); ok {
		out.Guard = why
	}
	if d.p.Country != nil {
		out.Country = d.p.Country(a)
	}
	return out, nil
}

func (d *Daemon) findings(req *api.Request) ([]report.JSONFinding, error) {
	since := 24 * time.Hour
	if req.Since != "" {
		var err error
		if since, err = config.ParseDuration(req.Since); err != nil {
			return nil, err
		}
	}
	limit := req.Limit
	if limit <= 0 || limit > 10000 {
		limit = 1000
	}
	return d.p.Store.Findings(d.now().Add(-since), limit)
}
