package main

// The parts of `scanwarden run` beyond the packet sensor and the firewall:
// firewall-log sensors (NFLOG, the kernel log), blocklist feeds, countries,
// dynamic-DNS allow entries and alerts.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/daemon"
	"github.com/scanwarden/scanwarden/internal/enforce/nft"
	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/lists"
	"github.com/scanwarden/scanwarden/internal/notify/alert"
	"github.com/scanwarden/scanwarden/internal/sensor/kernlog/follow"
	"github.com/scanwarden/scanwarden/internal/sensor/nflog"
)

// countryFeed is the feed set that holds lists.geoip.deny's networks; the
// configuration refuses a feed of that name.
const countryFeed = config.CountryFeed

// nftConfig is the nftables enforcer's configuration. Feeds, PORTFLOOD and
// CONNLIMIT block traffic, so a dry run leaves them out (and says so).
func nftConfig(cfg *config.Config, log *slog.Logger) nft.Config {
	fw := cfg.Firewall
	nc := nft.Config{Table: fw.Table, Forward: fw.Forward}
	if fw.Logging == "auto" {
		nc.LogGroup = fw.LogGroup
	}
	dry := cfg.Policy.DryRun
	if t := fw.Throttle; t.Enabled && !dry {
		nc.Throttle = nft.Throttle{Rate: t.Rate, Burst: t.Burst}
	}
	blocking := len(cfg.Lists.Feeds) > 0 || len(cfg.Lists.GeoIP.Deny) > 0 || len(fw.PortFlood) > 0 || len(fw.ConnLimit) > 0
	if dry {
		if blocking {
			log.Warn("dry run: blocklist feeds, country deny, portflood and connlimit are not put into the firewall")
		}
		return nc
	}
	for _, f := range cfg.Lists.Feeds {
		nc.Feeds = append(nc.Feeds, f.Name)
	}
	if len(cfg.Lists.GeoIP.Deny) > 0 {
		nc.Feeds = append(nc.Feeds, countryFeed)
	}
	for _, p := range fw.PortFlood {
		nc.PortFlood = append(nc.PortFlood, nft.PortFlood{Port: p.Port, UDP: p.Proto == "udp", Hits: uint32(p.Hits), Seconds: uint32(p.Seconds)})
	}
	for _, c := range fw.ConnLimit {
		nc.ConnLimit = append(nc.ConnLimit, nft.ConnLimit{Port: c.Port, Limit: uint32(c.Limit)})
	}
	if o := cfg.Outbound; o.Enabled && o.Response != "alert" {
		nc.Outbound = nft.Outbound{Enable: true, Rate: o.Throttle.Rate, Burst: o.Throttle.Burst}
	}
	return nc
}

// openLogSensors opens the firewall-log sensors the configuration names.
// The caller closes what it returns, also on error.
func openLogSensors(cfg *config.Config, h *host.Host, log *slog.Logger) ([]daemon.ProbeSource, []func() error, error) {
	var srcs []daemon.ProbeSource
	var closers []func() error
	var own uint16
	if cfg.Firewall.Logging == "auto" {
		if !cfg.Firewall.Enabled {
			return nil, nil, errors.New("firewall.logging: auto adds a rule to scanwarden's table, which needs firewall.enabled")
		}
		own = cfg.Firewall.LogGroup
	}
	if len(cfg.Sensor.NFLog.Groups) > 0 || own != 0 {
		s, err := nflog.Open(nflog.Config{Groups: cfg.Sensor.NFLog.Groups, Own: own}, h)
		if err != nil {
			return nil, closers, fmt.Errorf("sensor.nflog: %w", err)
		}
		closers = append(closers, s.Close)
		srcs = append(srcs, nflogSource{s})
		log.Info("reading netfilter log groups", "groups", s.Groups(), "own_group", own)
	}
	if k := cfg.Sensor.KernelLog; k != "" {
		s, err := follow.Open(follow.Config{Source: k, Verify: cfg.Sensor.KernelLogVerify})
		if err != nil {
			return nil, closers, fmt.Errorf("sensor.kernel_log: %w", err)
		}
		closers = append(closers, s.Close)
		srcs = append(srcs, kernlogSource{s})
		if filepath.IsAbs(k) && !cfg.Sensor.KernelLogVerify {
			log.Warn("kernel log file lines are trusted unchecked (sensor.kernel_log_verify: false): any local user who can write to syslog can make scanwarden see probes from an address of their choosing", "file", k)
		}
		log.Info("reading kernel firewall log lines", "source", k, "verify", cfg.Sensor.KernelLogVerify && filepath.IsAbs(k))
	}
	return srcs, closers, nil
}

// nflogSource fits the NFLOG sensor to the daemon.
type nflogSource struct{ *nflog.Sensor }

func (s nflogSource) Status() api.Part {
	st := s.Stats()
	p := api.Part{Name: "nflog", Counts: map[string]uint64{
		"messages": st.Messages, "probes": st.Probes, "malformed": st.Malformed, "lost": st.Lost, "overruns": st.Overruns,
	}}
	p.Summary = fmt.Sprintf("groups %v: %d logged packets, %d probes, %d lost to overruns", s.Groups(), st.Messages, st.Probes, st.Lost)
	if st.FirstProblem != "" {
		p.Problem = "first malformed message: " + st.FirstProblem
	}
	return p
}

// kernlogSource fits the kernel-log follower to the daemon.
type kernlogSource struct{ *follow.Sensor }

func (s kernlogSource) Status() api.Part {
	st := s.Stats()
	p := api.Part{Name: "kernel log", Counts: map[string]uint64{
		"lines": st.Lines, "probes": st.Probes, "malformed": st.Malformed, "unverified": st.Unverified,
		"rotations": st.Rotations, "overruns": st.Overruns,
	}}
	p.Summary = fmt.Sprintf("%s: %d lines, %d probes, %d refused as not written by the kernel, %d rotations",
		s.Name(), st.Lines, st.Probes, st.Unverified, st.Rotations)
	switch {
	case st.LastError != "":
		p.Problem = st.LastError
	case st.FirstProblem != "":
		p.Problem = "first malformed line: " + st.FirstProblem
	}
	return p
}

// lists keeps the blocklist feeds, the country sets and the dynamic-DNS
// allow entries current.
type listParts struct {
	cfg *config.Config
	log *slog.Logger
	enf *nft.Enforcer // nil: no firewall, or a dry run
	h   *host.Host
	d   *daemon.Daemon
	geo *lists.GeoIP

	runner *lists.Runner
	dyn    *lists.DynDNS
	mu     sync.Mutex
	raw    map[string][]netip.Prefix // each feed's last list, before exclusions
}

// newListParts opens the GeoIP database (an error stops the start: the
// configuration asked for countries) and prepares the feed runner.
func newListParts(cfg *config.Config, enf *nft.Enforcer, h *host.Host, log *slog.Logger) (*listParts, error) {
	l := &listParts{cfg: cfg, log: log, h: h, raw: map[string][]netip.Prefix{}}
	if cfg.Firewall.Enabled && !cfg.Policy.DryRun {
		l.enf = enf
	}
	if db := cfg.Lists.GeoIP.Database; db != "" {
		g, err := lists.OpenGeoIP(db)
		if err != nil {
			return nil, fmt.Errorf("lists.geoip.database: %w", err)
		}
		g.Log = log
		l.geo = g
		info := g.Info()
		log.Info("geoip database", "path", info.Path, "type", info.Type, "built", info.Built.UTC())
	}
	if len(cfg.Lists.Feeds) > 0 && l.enf != nil {
		cache := filepath.Join(cfg.StateDir, "feeds")
		if err := os.MkdirAll(cache, 0o700); err != nil {
			return nil, fmt.Errorf("feed cache: %w", err)
		}
		l.runner = &lists.Runner{CacheDir: cache, Log: log, OnUpdate: l.feedUpdated}
		for _, f := range cfg.Lists.Feeds {
			l.runner.Feeds = append(l.runner.Feeds, lists.Feed{Name: f.Name, URL: f.URL, File: f.File, Interval: f.Interval.D(), Max: f.Max})
		}
	}
	if len(cfg.Lists.AllowHosts) > 0 {
		l.dyn = &lists.DynDNS{Names: cfg.Lists.AllowHosts, Interval: cfg.Lists.DynDNSInterval.D(), Log: log}
	}
	return l, nil
}

// attach gives the daemon's parts what the lists provide: the country of
// an address for explain, and the feeds' status.
func (l *listParts) attach(p *daemon.Parts) {
	if l.geo != nil {
		p.Country = l.geo.Country
	}
	if l.runner != nil {
		for _, f := range l.runner.Feeds {
			p.Reporters = append(p.Reporters, feedPart{l.runner, f.Name})
		}
	}
}

// beforeRun sets what the policy needs before the first probe: the allowed
// countries, and the dynamic-DNS names' addresses (resolved in the
// background; the names join the allow list as they resolve).
func (l *listParts) beforeRun(ctx context.Context, d *daemon.Daemon) error {
	l.d = d
	if l.geo != nil && len(l.cfg.Lists.GeoIP.Allow) > 0 {
		if err := l.allowCountries(); err != nil {
			return err
		}
	}
	if l.dyn != nil {
		l.dyn.OnUpdate = func(addrs []netip.Addr) {
			ps := make([]netip.Prefix, len(addrs))
			for i, a := range addrs {
				ps[i] = netip.PrefixFrom(a, a.BitLen())
			}
			if err := d.SetDynamicAllow(daemon.OriginDynDNS, ps); err != nil {
				l.log.Error("dynamic DNS allow entries", "err", err)
				return
			}
			l.log.Info("dynamic DNS allow entries", "addresses", len(ps))
			l.refilter(ctx)
		}
		go l.dyn.Run(ctx)
	}
	return nil
}

// afterSetup starts what needs the firewall's table: the feeds and the
// denied countries. Called once the daemon is running.
func (l *listParts) afterSetup(ctx context.Context) {
	if l.runner != nil {
		go func() {
			if err := l.runner.Run(ctx); err != nil {
				l.log.Error("blocklist feeds", "err", err)
			}
		}()
	}
	if l.geo == nil {
		return
	}
	l.denyCountries(ctx)
	go l.geo.Watch(ctx, time.Hour, func() {
		if len(l.cfg.Lists.GeoIP.Allow) > 0 {
			if err := l.allowCountries(); err != nil {
				l.log.Error("allowed countries", "err", err)
			}
		}
		l.denyCountries(ctx)
	})
}

func (l *listParts) allowCountries() error {
	ps, err := l.geo.Networks(l.cfg.Lists.GeoIP.Allow)
	if err != nil {
		return fmt.Errorf("lists.geoip.allow: %w", err)
	}
	l.log.Info("allowed countries: never banned", "countries", l.cfg.Lists.GeoIP.Allow, "prefixes", len(ps))
	return l.d.SetDynamicAllow(daemon.OriginGeoIP, ps)
}

func (l *listParts) denyCountries(ctx context.Context) {
	if l.enf == nil || len(l.cfg.Lists.GeoIP.Deny) == 0 {
		return
	}
	ps, err := l.geo.Networks(l.cfg.Lists.GeoIP.Deny)
	if err != nil {
		l.log.Error("denied countries not loaded", "err", err)
		return
	}
	l.feedUpdated(countryFeed, lists.Result{Prefixes: ps})
	l.log.Info("denied countries dropped at the firewall", "countries", l.cfg.Lists.GeoIP.Deny, "prefixes", len(ps))
}

// feedUpdated loads a feed's new list into its set, less what must never
// be dropped.
func (l *listParts) feedUpdated(name string, r lists.Result) {
	l.mu.Lock()
	l.raw[name] = r.Prefixes
	l.mu.Unlock()
	l.load(context.Background(), name, r.Prefixes)
}

// refilter reloads every feed after the never-drop addresses changed.
func (l *listParts) refilter(ctx context.Context) {
	if l.enf == nil {
		return
	}
	l.mu.Lock()
	raw := make(map[string][]netip.Prefix, len(l.raw))
	for k, v := range l.raw {
		raw[k] = v
	}
	l.mu.Unlock()
	for name, ps := range raw {
		l.load(ctx, name, ps)
	}
}

func (l *listParts) load(ctx context.Context, name string, ps []netip.Prefix) {
	keep := lists.Subtract(ps, l.neverDrop())
	if n := len(ps); n > 0 && !slices.Equal(keep, lists.Merge(ps)) {
		l.log.Warn("blocklist entries cover addresses that are never blocked; those are left out", "feed", name)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := l.enf.LoadFeed(ctx, name, keep); err != nil {
		l.log.Error("blocklist not loaded into the firewall; the previous one stands", "feed", name, "err", err)
	}
}

// neverDrop lists what a feed must not drop: the host's own addresses,
// its gateways and nameservers, the SSH peers of the moment, and the allow
// list. The firewall drops a feed's addresses before any policy is asked,
// so they are taken out of the list instead.
func (l *listParts) neverDrop() []netip.Prefix {
	var out []netip.Prefix
	host := func(as []netip.Addr) {
		for _, a := range as {
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	for _, p := range l.h.Addresses() {
		out = append(out, netip.PrefixFrom(p.Addr(), p.Addr().BitLen()))
	}
	host(l.h.Gateways())
	host(l.h.Nameservers())
	host(l.h.SSHPeers())
	if l.d != nil {
		if allow, err := l.d.Policy().List("allow"); err == nil {
			for p := range allow {
				out = append(out, p)
			}
		}
	}
	return out
}

// feedPart shows one feed in status.
type feedPart struct {
	r    *lists.Runner
	name string
}

func (f feedPart) Status() api.Part {
	for _, s := range f.r.Status() {
		if s.Name != f.name {
			continue
		}
		p := api.Part{Name: "feed " + s.Name, Counts: map[string]uint64{"prefixes": uint64(s.Prefixes), "failures": uint64(s.Failures)}}
		switch {
		case s.Loaded.IsZero():
			p.Summary = fmt.Sprintf("%s: not loaded yet", s.Source)
		default:
			p.Summary = fmt.Sprintf("%s: %d prefixes, loaded %s, checked %s", s.Source, s.Prefixes,
				s.Loaded.Local().Format(time.RFC3339), s.Checked.Local().Format(time.RFC3339))
		}
		if s.LastError != "" {
			p.Problem = fmt.Sprintf("%s (%d failures in a row; next try %s)", s.LastError, s.Failures, s.Next.Local().Format(time.RFC3339))
		}
		return p
	}
	return api.Part{Name: "feed " + f.name, Summary: "unknown"}
}

// newAlerter builds the alerter when e-mail or webhook alerts are on; nil
// otherwise.
func newAlerter(c config.Alerts, log *slog.Logger) (*alert.Alerter, error) {
	if !c.Email.Enabled && !c.Webhook.Enabled {
		return nil, nil
	}
	ac := alert.Config{On: c.On, Digest: c.Digest.D(), MaxPerHour: c.MaxPerHour,
		Webhook: alert.WebhookConfig{Enabled: c.Webhook.Enabled, URL: c.Webhook.URL, Headers: c.Webhook.Headers}}
	e := c.Email
	ac.Email = alert.EmailConfig{Enabled: e.Enabled, To: e.To, From: e.From, Host: e.Host, Port: e.Port, Security: e.Security, Username: e.Username}
	if e.Enabled && e.PasswordFile != "" {
		pw, err := readSecret(e.PasswordFile, log)
		if err != nil {
			return nil, fmt.Errorf("alerts.email.password_file: %w", err)
		}
		ac.Email.Password = pw
	}
	for _, t := range []struct {
		path string
		dst  *string
		key  string
	}{{c.Templates.Subject, &ac.SubjectTemplate, "subject"}, {c.Templates.Body, &ac.BodyTemplate, "body"}} {
		if t.path == "" {
			continue
		}
		b, err := os.ReadFile(t.path)
		if err != nil {
			return nil, fmt.Errorf("alerts.templates.%s: %w", t.key, err)
		}
		*t.dst = string(b)
	}
	a, err := alert.New(ac, log)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return a, nil
}

// readSecret reads a password file: its first line. A file others can
// read is used, with a warning.
func readSecret(path string, log *slog.Logger) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if st.Mode().Perm()&0o044 != 0 {
		log.Warn("the password file can be read by others than its owner; chmod 600 it", "file", path)
	}
	if st.Size() > 4096 {
		return "", errors.New("larger than 4 KiB: not a password")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	pw = strings.TrimRight(pw, "\r")
	if pw == "" {
		return "", errors.New("empty")
	}
	return pw, nil
}
