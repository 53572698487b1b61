// Package daemon wires the live pipeline of `scanwarden run`: packet sensor
// → detector → policy → enforcer, with the store, the host's facts and the
// control socket around it. It owns the order of start-up and shut-down and
// the goroutines; every stage's logic lives in its own package.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/enforce"
	"github.com/scanwarden/scanwarden/internal/policy"
	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/report"
)

// Store is what the daemon keeps in its database.
type Store interface {
	SaveFinding(f *detect.Finding) error
	SaveDecision(d *decision.Decision) error
	ActiveBans(now time.Time) ([]decision.Decision, error)
	Offences(a netip.Addr, since time.Time) (int, error)
	FindingsFor(a netip.Addr, limit int) ([]report.JSONFinding, error)
	Findings(since time.Time, limit int) ([]report.JSONFinding, error)
	Decisions(target netip.Prefix, limit int) ([]decision.Decision, error)
	DecisionsAbout(a netip.Addr, limit int) ([]decision.Decision, error)
	AddListEntry(list string, p netip.Prefix, comment, by string, at time.Time) error
	RemoveListEntry(list string, p netip.Prefix) (bool, error)
	ListEntries(list string) ([]ListEntry, error)
	Prune(before time.Time) error
	Close() error
}

// ListEntry is a list entry as stored.
type ListEntry struct {
	Prefix  netip.Prefix
	Comment string
	By      string
	Added   time.Time
}

// Host is what the daemon needs to know about the machine.
type Host interface {
	IsLocal(a netip.Addr) bool
	Listening(proto probe.Proto, local netip.AddrPort) bool
	GuardNow(a netip.Addr) (reason string, guarded bool)
	Addresses() []netip.Prefix
	Gateways() []netip.Addr
	Nameservers() []netip.Addr
	SSHPeers() []netip.Addr
	ListenerCount() int
}

// Sensor delivers live probes.
type Sensor interface {
	Run(ctx context.Context, out func(*probe.Probe)) error
	Stats() SensorStats
	Interfaces() []string
	Close() error
}

// SensorStats is what a sensor counted.
type SensorStats struct {
	Packets, Probes, Malformed, KernelDrops uint64
}

// ProbeSource is a sensor besides the packet sensor (bait ports, NFLOG,
// the kernel log): it calls out from any goroutine.
type ProbeSource interface {
	Run(ctx context.Context, out func(*probe.Probe)) error
}

// Reporter is a part that says how it is doing in `scanwarden status`
// (a ProbeSource, the feeds): one line per part.
type Reporter interface {
	Status() api.Part
}

// Watcher is a Notifier that also hears of bans the detector asked for
// but the policy did not carry out (alerts.on: watch).
type Watcher interface {
	Watch(d *decision.Decision, f *detect.Finding)
}

// Notifier hears of findings and bans (PortSentry-style lines, alerts).
type Notifier interface {
	Finding(f *detect.Finding)
	Ban(d *decision.Decision, f *detect.Finding)
}

// Parts are the daemon's collaborators, built by the caller (the real ones
// in cmd/scanwarden, fakes in tests).
type Parts struct {
	Store    Store
	Enforcer enforce.Enforcer // the firewall (nftables); nil: disabled
	// More enforcers that carry out every ban too (hosts.deny, blackhole
	// routes). They keep no timeouts: the daemon removes their entries when
	// a ban is lifted or ends.
	MoreEnforcers []enforce.Enforcer
	Host          Host
	Sensor        Sensor // the packet sensor; nil: off (sensor.packet: false)
	More          []ProbeSource
	// Reporters are more parts to show in status (feeds); a ProbeSource
	// that is a Reporter is shown without being listed here.
	Reporters []Reporter
	Notifiers []Notifier
	// Country names an address's country for explain; nil: no GeoIP.
	Country func(netip.Addr) string
	// Attribute names the local process behind an outbound finding
	// (internal/attribute); nil: not looked up.
	Attribute func(f *detect.Finding) *detect.Actor
	// NAT maps translated connections back to internal clients (conntrack
	// on a router); nil: no NAT mapping.
	NAT NAT
	// Neighbour returns the MAC of an address on one of our links ("" if
	// unknown); nil: not looked up.
	Neighbour func(netip.Addr) string
	// Restrictor carries out outbound.response (throttle, block); nil:
	// alert only.
	Restrictor Restrictor
	Hooks      Hooks // nil: none
	Log        *slog.Logger
	Now        func() time.Time // default time.Now
	Version    string
	// Ready is called once the daemon is detecting and blocking (sd_notify).
	Ready func()
}

// activeBan is a ban in force, as the daemon tracks it.
type activeBan struct {
	decision.Decision
}

// Daemon is a running pipeline.
type Daemon struct {
	cfg   *config.Config
	p     Parts
	log   *slog.Logger
	now   func() time.Time
	pol   *policy.Policy
	start time.Time

	mu  sync.Mutex // guards det
	det *detect.Detector

	bans   atomic.Pointer[bart.Table[*activeBan]] // in force; copy-on-write
	banMu  sync.Mutex                             // serialises ban changes
	queue  chan detect.Finding
	notes  []string
	lastFW atomic.Uint64

	actorMu sync.Mutex
	actors  map[string]*detect.Actor  // by finding ID
	clients map[string]*detect.Client // by finding ID; nil values: looked up, none

	outbound outboundState
	late     chan lateProbe // probes waiting for conntrack (NAT)

	stats struct {
		ignored, whileBanned, findings, bans, notActed, rateCapped, queueFull, lateFull atomic.Uint64
	}
}

// New builds a daemon from a validated configuration and its parts. It does
// not touch the firewall or the network yet.
func New(cfg *config.Config, parts Parts) (*Daemon, error) {
	if parts.Store == nil || parts.Host == nil {
		return nil, errors.New("daemon: store and host are required")
	}
	if parts.Sensor == nil && len(parts.More) == 0 {
		return nil, errors.New("daemon: no sensor: turn on sensor.packet, sensor.nflog, sensor.kernel_log or bait ports")
	}
	if parts.Log == nil {
		parts.Log = slog.Default()
	}
	if parts.Now == nil {
		parts.Now = time.Now
	}
	d := &Daemon{cfg: cfg, p: parts, log: parts.Log, now: parts.Now, queue: make(chan detect.Finding, 4096)}
	v, _ := detect.ParseVerdict(cfg.Policy.BanOn)
	d.pol = policy.New(policy.Config{
		DryRun:           cfg.Policy.DryRun,
		BanOn:            v,
		Allow:            config.Prefixes(cfg.Policy.Allow),
		Ignore:           config.Prefixes(cfg.Policy.Ignore),
		MaxBansPerMinute: cfg.Policy.MaxBansPerMinute,
		BanTime:          cfg.Policy.BanTime.D(),
		Factor:           cfg.Policy.Escalation.Factor,
		Period:           cfg.Policy.Escalation.Period.D(),
		PermanentAfter:   cfg.Policy.Escalation.PermanentAfter,
		MaxBanTime:       cfg.Policy.Escalation.MaxBanTime.D(),
		Decoys:           policy.Decoys(cfg.Policy.Decoys),
	}, parts.Host, parts.Store)
	d.pol.SetClock(d.now)
	det, err := detect.New(cfg.DetectConfig(), d.sink)
	if err != nil {
		return nil, err
	}
	d.det = det
	d.bans.Store(&bart.Table[*activeBan]{})
	return d, nil
}

// Policy exposes the policy (for tests).
func (d *Daemon) Policy() *policy.Policy { return d.pol }

// Run starts the pipeline and blocks until ctx ends or a part fails. Order:
// the store is open (the caller did it), then the firewall is set up and
// reconciled with the store's bans, run-time lists are loaded, and only
// then does the sensor start, so nothing is detected that cannot be acted
// on. On return the bans stay in the kernel (they expire there) unless
// firewall.remove_on_stop is set.
func (d *Daemon) Run(ctx context.Context) error {
	d.start = d.now()
	// The socket first: if another daemon answers there, this one must not
	// touch the firewall that one manages.
	ln, note, err := api.Listen(d.cfg.Socket, d.cfg.SocketGroup)
	if err != nil {
		return err
	}
	defer ln.Close()
	if note != "" {
		d.log.Warn("control socket", "note", note)
		d.notes = append(d.notes, note)
	}
	if err := d.setupFirewall(ctx); err != nil {
		return err
	}
	if err := d.loadLists(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 4+len(d.p.More))
	var wg sync.WaitGroup
	wg.Add(3)
	// Each part reports only a failure; a part that ends without one while
	// the daemon runs is a failure too.
	part := func(name string, run func() error) {
		defer wg.Done()
		err := run()
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = errors.New("stopped unexpectedly")
		}
		errc <- fmt.Errorf("%s: %w", name, err)
	}
	go part("control socket", func() error { return api.Serve(ctx, ln, d, d.log) })
	go part("decisions", func() error { return d.decideLoop(ctx) })
	go part("clock", func() error { d.tickLoop(ctx); return nil })
	if d.p.NAT != nil {
		d.late = make(chan lateProbe, maxLate)
		wg.Add(1)
		go part("nat", func() error { d.lateLoop(ctx); return nil })
	}
	if d.p.Sensor != nil {
		wg.Add(1)
		go part("packet sensor", func() error { return d.p.Sensor.Run(ctx, d.onProbe) })
	}
	for _, src := range d.p.More {
		wg.Add(1)
		name := "sensor"
		if r, ok := src.(Reporter); ok {
			name = r.Status().Name
		}
		go part(name, func() error { return src.Run(ctx, d.onProbe) })
	}
	d.log.Info("scanwarden running", "version", d.p.Version, "interfaces", d.interfaces(),
		"firewall", d.firewallName(), "dry_run", d.cfg.Policy.DryRun, "state_dir", d.cfg.StateDir)
	if d.p.Ready != nil {
		d.p.Ready()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	wg.Wait()
	d.shutdown()
	return err
}

// interfaces says what the packet sensor watches, for the log.
func (d *Daemon) interfaces() string {
	if d.p.Sensor == nil {
		return "none (packet sensor off)"
	}
	ifs := d.p.Sensor.Interfaces()
	if len(ifs) == 0 {
		return "all"
	}
	return fmt.Sprint(ifs)
}

// Origins of the allow-list entries the daemon keeps current itself.
const (
	OriginDynDNS = "dyndns"
	OriginGeoIP  = "geoip"
)

// SetDynamicAllow makes the allow-list entries from origin ("dyndns",
// "geoip") exactly pfxs. Safe to call from any goroutine while the daemon
// runs.
func (d *Daemon) SetDynamicAllow(origin string, pfxs []netip.Prefix) error {
	return d.pol.ReplaceOrigin("allow", origin, pfxs)
}

func (d *Daemon) firewallName() string {
	if d.p.Enforcer == nil {
		return "disabled"
	}
	return fmt.Sprintf("%s table inet %s", d.p.Enforcer.Name(), d.cfg.Firewall.Table)
}

// setupFirewall creates or adopts what every enforcer needs and makes each
// hold exactly the store's active bans, with their remaining time.
func (d *Daemon) setupFirewall(ctx context.Context) error {
	now := d.now()
	active, err := d.p.Store.ActiveBans(now)
	if err != nil {
		return fmt.Errorf("reading active bans: %w", err)
	}
	table := &bart.Table[*activeBan]{}
	for i := range active {
		table.Insert(active[i].Target.Masked(), &activeBan{active[i]})
	}
	d.bans.Store(table)
	for _, e := range d.enforcers() {
		if err := d.reconcile(ctx, e, active); err != nil {
			return err
		}
	}
	return nil
}

// enforcers lists every enforcer, the firewall first.
func (d *Daemon) enforcers() []enforce.Enforcer {
	var out []enforce.Enforcer
	if d.p.Enforcer != nil {
		out = append(out, d.p.Enforcer)
	}
	return append(out, d.p.MoreEnforcers...)
}

func (d *Daemon) reconcile(ctx context.Context, e enforce.Enforcer, active []decision.Decision) error {
	if err := e.Setup(ctx); err != nil {
		return fmt.Errorf("setting up %s: %w", e.Name(), err)
	}
	held, err := e.Bans(ctx)
	if err != nil {
		return fmt.Errorf("reading the bans %s holds: %w", e.Name(), err)
	}
	want := map[netip.Prefix]bool{}
	var add []enforce.Ban
	for _, b := range active {
		want[b.Target.Masked()] = true
		add = append(add, enforce.Ban{Prefix: b.Target.Masked(), Expires: b.Expires})
	}
	var remove []netip.Prefix
	for _, b := range held {
		if !want[b.Prefix.Masked()] {
			remove = append(remove, b.Prefix.Masked())
		}
	}
	if err := e.Apply(ctx, add, remove); err != nil {
		return fmt.Errorf("%s: restoring %d bans: %w", e.Name(), len(add), err)
	}
	d.log.Info("enforcer ready", "enforcer", e.Name(), "restored", len(add), "removed_unknown", len(remove), "found", len(held))
	return nil
}

// applyAll carries out one batch in every enforcer. The firewall's failure
// fails the batch; another enforcer's is logged (the firewall still holds).
func (d *Daemon) applyAll(ctx context.Context, add []enforce.Ban, remove []netip.Prefix) error {
	for i, e := range d.enforcers() {
		if err := e.Apply(ctx, add, remove); err != nil {
			if i == 0 && d.p.Enforcer != nil {
				return fmt.Errorf("%s: %w", e.Name(), err)
			}
			d.log.Error("enforcer", "enforcer", e.Name(), "err", err)
		}
	}
	return nil
}

// loadLists adds the allow and ignore entries made at run time (stored).
func (d *Daemon) loadLists() error {
	for _, list := range []string{"allow", "ignore"} {
		entries, err := d.p.Store.ListEntries(list)
		if err != nil {
			return fmt.Errorf("reading the %s list: %w", list, err)
		}
		for _, e := range entries {
			d.pol.AddList(list, e.Prefix, e.By)
		}
	}
	return nil
}

func (d *Daemon) shutdown() {
	if d.cfg.Firewall.RemoveOnStop {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, e := range d.enforcers() {
			if err := e.Teardown(ctx); err != nil {
				d.log.Error("removing what the enforcer holds", "enforcer", e.Name(), "err", err)
			} else {
				d.log.Info("enforcer cleared (remove_on_stop)", "enforcer", e.Name())
			}
		}
	}
	d.log.Info("scanwarden stopped", "bans_left_in_kernel", d.p.Enforcer != nil && !d.cfg.Firewall.RemoveOnStop)
}

// onProbe is called for every probe from the sensor's goroutine(s).
func (d *Daemon) onProbe(p *probe.Probe) {
	switch d.mapNAT(p, true) {
	case natDrop:
		return
	case natLate:
		d.deferProbe(p)
		return
	}
	d.observe(p)
}

// observe analyses a probe.
func (d *Daemon) observe(p *probe.Probe) {
	src := p.Src.Addr()
	if d.pol.Ignored(src) {
		d.stats.ignored.Add(1)
		return
	}
	if d.banned(src) {
		// The firewall drops it after the sensor saw it. Analysing it again
		// would only re-find what is already banned; the ban's end starts a
		// fresh record, so a repeat offence is judged anew.
		d.stats.whileBanned.Add(1)
		return
	}
	d.setOutcome(p)
	d.mu.Lock()
	d.det.Observe(p)
	d.mu.Unlock()
}

// setOutcome says, for a contact to one of our addresses, whether a socket
// takes it: the detector then needs no timeout to know a closed port, and
// knows it even when our own firewall drops the probe silently.
func (d *Daemon) setOutcome(p *probe.Probe) {
	if p.Outcome != probe.OutcomeUnknown || p.Direction == probe.DirOutbound {
		return
	}
	switch p.Proto {
	case probe.TCP:
		if p.Flags&(probe.SYN|probe.ACK|probe.RST) != probe.SYN || p.Known&probe.KnownFlags == 0 {
			return
		}
	case probe.UDP:
	default:
		return
	}
	dst := p.Dst.Addr()
	if !d.p.Host.IsLocal(dst) {
		return
	}
	if d.p.Host.Listening(p.Proto, p.Dst) {
		p.Outcome = probe.OutcomeOpen
		return
	}
	p.Outcome = probe.OutcomeClosed
	if d.advancedBait(p.Proto, p.Dst.Port()) {
		p.Bait = probe.BaitAdvanced
	}
}

// advancedBait reports whether a listener-less port is bait in advanced
// mode (the listener table has just said nothing listens there).
func (d *Daemon) advancedBait(proto probe.Proto, port uint16) bool {
	a := &d.cfg.Bait.Advanced
	if !a.Enabled || port == 0 {
		return false
	}
	switch proto {
	case probe.TCP:
		return int(port) < a.TCPBelow && !a.ExcludeTCP.Contains(port)
	case probe.UDP:
		return int(port) < a.UDPBelow && !a.ExcludeUDP.Contains(port)
	}
	return false
}

// banned reports whether a ban is in force on a.
func (d *Daemon) banned(a netip.Addr) bool {
	b, ok := d.bans.Load().Lookup(a.Unmap())
	return ok && b.Active(d.now())
}

// sink receives the detector's findings (under d.mu): it must not block.
func (d *Daemon) sink(f *detect.Finding, u detect.Update) {
	if u == detect.Retired && f.Verdict == detect.Benign {
		return
	}
	select {
	case d.queue <- *f:
	default:
		d.stats.queueFull.Add(1)
	}
}

// decideLoop stores findings, asks the policy and applies its decisions,
// in batches: every ban a burst of findings asks for goes into the kernel
// in one netlink write.
func (d *Daemon) decideLoop(ctx context.Context) error {
	for {
		var batch []detect.Finding
		select {
		case <-ctx.Done():
			return nil
		case f := <-d.queue:
			batch = append(batch, f)
		}
	drain:
		for len(batch) < 1024 {
			select {
			case f := <-d.queue:
				batch = append(batch, f)
			default:
				break drain
			}
		}
		d.decide(ctx, batch)
	}
}

func (d *Daemon) decide(ctx context.Context, batch []detect.Finding) {
	var bans []decision.Decision
	var causes []*detect.Finding
	for i := range batch {
		f := &batch[i]
		d.stats.findings.Add(1)
		d.attribute(f)
		if err := d.p.Store.SaveFinding(f); err != nil {
			d.log.Error("storing a finding", "src", f.Src, "err", err)
		}
		if f.Verdict > detect.Benign {
			d.log.Warn("finding", "src", f.Src, "verdict", f.Verdict, "type", f.ScanType, "class", f.Class,
				"direction", f.Direction, "ports", f.Ports, "hosts", f.Hosts, "attempts", f.Attempts, "packets", f.Packets,
				"tool", f.Tool, "id", f.ID, "reason", f.Reason)
			for _, n := range d.p.Notifiers {
				n.Finding(f)
			}
		}
		d.respond(ctx, f)
		dec, ok := d.pol.Decide(f)
		if !ok {
			continue
		}
		if resp := d.responseFor(f.ID); resp != "" && dec.Kind == decision.Watch {
			dec.NotActed += "; " + resp
		}
		if dec.Kind == decision.Ban {
			if d.banned(f.Src) {
				continue // already banned (a finding queued before the ban)
			}
			bans = append(bans, dec)
			causes = append(causes, f)
			continue
		}
		d.stats.notActed.Add(1)
		if dec.NotActed != "" && len(dec.NotActed) > 9 && dec.NotActed[:9] == "rate cap:" {
			d.stats.rateCapped.Add(1)
		}
		if err := d.p.Store.SaveDecision(&dec); err != nil {
			d.log.Error("storing a decision", "target", dec.Target, "err", err)
		}
		d.log.Warn("not banned", "target", dec.Target, "why", dec.NotActed, "finding", dec.FindingID)
		for _, n := range d.p.Notifiers {
			if w, ok := n.(Watcher); ok {
				w.Watch(&dec, f)
			}
		}
	}
	if len(bans) == 0 {
		return
	}
	if d.p.Hooks == nil || !d.p.Hooks.HasBefore("ban") {
		d.applyBans(ctx, bans)
		for i := range bans {
			d.afterBan(&bans[i], causes[i])
		}
		return
	}
	// "before" hooks run first (PortSentry's KILL_RUN_CMD_FIRST), each ban
	// on its own, off this loop, so a slow hook delays only its own ban.
	for i := range bans {
		dec, f := bans[i], *causes[i]
		go func() {
			d.p.Hooks.Before(ctx, hookEventOf("ban", &dec, &f))
			d.applyBans(ctx, []decision.Decision{dec})
			d.afterBan(&dec, &f)
		}()
	}
}

// afterBan tells the notifiers and the "after" hooks about a ban in force.
func (d *Daemon) afterBan(dec *decision.Decision, f *detect.Finding) {
	if !d.banned(dec.Target.Addr()) {
		return // the ban failed; applyBans logged why
	}
	for _, n := range d.p.Notifiers {
		n.Ban(dec, f)
	}
	d.hookEvent("ban", dec, f)
}

// applyBans puts bans into the kernel (one batch), the store and the
// in-memory table, and tells the detector to start afresh on each source.
func (d *Daemon) applyBans(ctx context.Context, bans []decision.Decision) {
	d.banMu.Lock()
	defer d.banMu.Unlock()
	add := make([]enforce.Ban, len(bans))
	for i, b := range bans {
		add[i] = enforce.Ban{Prefix: b.Target.Masked(), Expires: b.Expires}
	}
	if err := d.applyAll(ctx, add, nil); err != nil {
		d.log.Error("applying bans", "count", len(bans), "err", err)
		return
	}
	table := d.bans.Load()
	for i := range bans {
		b := &bans[i]
		if err := d.p.Store.SaveDecision(b); err != nil {
			d.log.Error("storing a ban", "target", b.Target, "err", err)
		}
		table = table.InsertPersist(b.Target.Masked(), &activeBan{*b})
		d.stats.bans.Add(1)
		d.log.Warn("ban", "target", b.Target, "for", durationText(b.Duration()), "offence", b.Offence,
			"finding", b.FindingID, "reason", b.Reason, "undo", undoCommand(b.Target))
	}
	d.bans.Store(table)
	// Keep the finding as it stands at the ban, then start afresh.
	var last []detect.Finding
	d.mu.Lock()
	for i := range bans {
		if a := bans[i].Target.Addr(); bans[i].Target.IsSingleIP() {
			if f, ok := d.det.FindingFor(a); ok && f.Verdict > detect.Benign {
				last = append(last, f)
			}
			d.det.Forget(a)
		}
	}
	d.mu.Unlock()
	for i := range last {
		d.attribute(&last[i])
		if err := d.p.Store.SaveFinding(&last[i]); err != nil {
			d.log.Error("storing a finding", "src", last[i].Src, "err", err)
		}
	}
}

// tickLoop moves the detector's clock when traffic is quiet, so unanswered
// attempts time out; drops expired bans from memory; prunes the store.
func (d *Daemon) tickLoop(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	var lastClean, lastPrune time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := d.now()
		d.mu.Lock()
		d.det.Advance(now)
		d.mu.Unlock()
		if now.Sub(lastClean) >= 10*time.Second {
			lastClean = now
			d.dropExpired(now)
			d.saveChanged()
		}
		if now.Sub(lastPrune) >= time.Hour {
			lastPrune = now
			if err := d.p.Store.Prune(now.Add(-d.cfg.Store.Retention.D())); err != nil {
				d.log.Error("pruning the store", "err", err)
			}
		}
	}
}

// maxActors bounds the actors kept by finding ID; past it they are all
// dropped and looked up afresh (stored findings keep what they had).
const maxActors = 4096

// attribute names the process behind an outbound finding: looked up the
// first time the finding is suspicious or worse — at once, while the scan
// runs, since its sockets close when it ends — and the same actor given to
// every later version of the finding (the detector's copies do not carry
// it).
func (d *Daemon) attribute(f *detect.Finding) {
	d.client(f)
	if f.Direction != probe.DirOutbound || f.Verdict == detect.Benign || d.p.Attribute == nil || f.Actor != nil {
		return
	}
	d.actorMu.Lock()
	a, ok := d.actors[f.ID]
	d.actorMu.Unlock()
	if !ok {
		a = d.p.Attribute(f)
		if a == nil {
			return
		}
		d.actorMu.Lock()
		if d.actors == nil || len(d.actors) >= maxActors {
			d.actors = make(map[string]*detect.Actor) // rare: thousands of outbound scans
		}
		d.actors[f.ID] = a
		d.actorMu.Unlock()
	}
	f.Actor = a
	f.Reason += " " + a.Sentence()
}

// saveChanged brings the stored findings of suspicious and scanning sources
// up to date with what the detector has seen since their last save, so
// explain and grep show the whole story, not the moment of escalation.
func (d *Daemon) saveChanged() {
	d.mu.Lock()
	fs := d.det.Changed(detect.Suspicious, 1000)
	d.mu.Unlock()
	for i := range fs {
		d.attribute(&fs[i])
		if err := d.p.Store.SaveFinding(&fs[i]); err != nil {
			d.log.Error("storing a finding", "src", fs[i].Src, "err", err)
			return
		}
	}
}

func (d *Daemon) dropExpired(now time.Time) {
	d.banMu.Lock()
	defer d.banMu.Unlock()
	table := d.bans.Load()
	var expired []netip.Prefix
	for pfx, b := range table.All() {
		if !b.Active(now) {
			expired = append(expired, pfx)
		}
	}
	for _, pfx := range expired {
		table = table.DeletePersist(pfx)
		d.log.Info("ban expired", "target", pfx)
	}
	if len(expired) > 0 {
		d.bans.Store(table)
		// The firewall expired them itself; the others keep no timeouts.
		for _, e := range d.p.MoreEnforcers {
			if err := e.Apply(context.Background(), nil, expired); err != nil {
				d.log.Error("removing expired bans", "enforcer", e.Name(), "err", err)
			}
		}
		for _, pfx := range expired {
			d.hookEvent("unban", &decision.Decision{Kind: decision.Unban, Target: pfx, Reason: "the ban ended"}, nil)
		}
	}
}

func durationText(dur time.Duration) string {
	if dur == 0 {
		return "permanent"
	}
	return config.Duration(dur.Round(time.Second)).String()
}

func undoCommand(p netip.Prefix) string {
	if p.IsSingleIP() {
		return "scanwarden unban " + p.Addr().String()
	}
	return "scanwarden unban " + p.String()
}

// heapBytes is the Go heap in use, for status.
func heapBytes() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
