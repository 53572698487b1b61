package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"github.com/spf13/cobra"

	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/daemon"
	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/enforce"
	"github.com/scanwarden/scanwarden/internal/enforce/hook"
	"github.com/scanwarden/scanwarden/internal/enforce/hostsdeny"
	"github.com/scanwarden/scanwarden/internal/enforce/nft"
	"github.com/scanwarden/scanwarden/internal/enforce/route"
	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/notify"
	"github.com/scanwarden/scanwarden/internal/sensor/bait"
	"github.com/scanwarden/scanwarden/internal/sensor/packet"
	"github.com/scanwarden/scanwarden/internal/store"
)

// systemConfig is read when it exists and --config is not given.
const systemConfig = "/etc/scanwarden/scanwarden.yaml"

func newRunCmd() *cobra.Command {
	var (
		cfgPath, stateDir, socket string
		ifaces                    []string
		dryRun                    bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the daemon: detect scans on every interface and block scanners with nftables",
		Long: `Run watches every interface (or the --interface ones), detects port scans and
bans scanners in the nftables table inet scanwarden. It needs root (or
CAP_NET_RAW and CAP_NET_ADMIN). With no --config it reads ` + systemConfig + `
when that exists and runs on the built-in defaults otherwise
(scanwarden config default prints them). Stop it with SIGINT or SIGTERM;
bans stay in the kernel and expire there. See docs/daemon.md.`,
		Example: "  scanwarden run\n  scanwarden run --dry-run --interface eth0\n  scanwarden run --config /etc/scanwarden/scanwarden.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := cfgPath
			if path == "" {
				if _, err := os.Stat(systemConfig); err == nil {
					path = systemConfig
				}
			}
			cfg, err := config.Load(path)
			if err != nil {
				if os.IsNotExist(err) {
					return fmt.Errorf("configuration %s: no such file", path)
				}
				return err
			}
			if stateDir != "" {
				cfg.StateDir = stateDir
			}
			if socket != "" {
				cfg.Socket = socket
			}
			if len(ifaces) > 0 {
				cfg.Sensor.Interfaces = ifaces
			}
			if dryRun {
				cfg.Policy.DryRun = true
			}
			return runDaemon(cfg, path, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfgPath, "config", "", "configuration file (default: "+systemConfig+" if it exists, else the built-in defaults)")
	f.StringVar(&stateDir, "state-dir", "", "where the database lives (default /var/lib/scanwarden)")
	f.StringVar(&socket, "socket", "", "control socket path (default /run/scanwarden/scanwarden.sock)")
	f.StringArrayVar(&ifaces, "interface", nil, "watch only this interface (repeat for more; default: all, including new ones)")
	f.BoolVar(&dryRun, "dry-run", false, "detect and log, never block")
	return cmd
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// runDaemon builds the real parts in the order that keeps a failed start
// harmless: nothing touches the firewall before the configuration, the
// state directory and the control socket are known good.
func runDaemon(cfg *config.Config, cfgPath string, stderr io.Writer) error {
	log := newLogger(cfg.Log, stderr)
	if cfgPath == "" {
		cfgPath = "built-in defaults"
	}
	log.Info("configuration", "file", cfgPath)
	if path := os.Getenv("SCANWARDEN_CPUPROFILE"); path != "" {
		// A diagnostic for the overhead benchmarks: the daemon's CPU profile
		// until it stops, for go tool pprof.
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("SCANWARDEN_CPUPROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("SCANWARDEN_CPUPROFILE: %w", err)
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	st, err := store.Open(cfg.StateDir)
	if err != nil {
		return err
	}
	defer st.Close()

	var enf enforce.Enforcer
	var nftEnf *nft.Enforcer
	if cfg.Firewall.Enabled {
		e, err := nft.New(nftConfig(cfg, log))
		if err != nil {
			return fmt.Errorf("firewall: %w", err)
		}
		enf, nftEnf = e, e
	}
	hopts := host.Options{RefreshInterval: cfg.Sensor.ListenerRefresh.D(), SSHPorts: cfg.Policy.SSHPorts, Logger: log}
	if cfg.Policy.ResolvConf != "/etc/resolv.conf" {
		hopts.ResolvConf = []string{cfg.Policy.ResolvConf}
	}
	h, err := host.Start(ctx, hopts)
	if err != nil {
		return fmt.Errorf("reading the host's addresses, routes and sockets: %w", err)
	}
	defer h.Close()
	parts := daemon.Parts{
		Store:    storeAdapter{st},
		Enforcer: enf,
		Host:     h,
		Log:      log,
		Version:  version,
	}
	if cfg.Sensor.Packet {
		// A 2 ms block timeout hands probes to the detector within 2 ms on
		// a quiet link (the package default, 10 ms, favours fewer wake-ups).
		sensor, err := packet.Open(packet.Config{Interfaces: cfg.Sensor.Interfaces, BlockTimeout: 2 * time.Millisecond}, h)
		if err != nil {
			return fmt.Errorf("packet sensor: %w", err)
		}
		defer sensor.Close()
		parts.Sensor = sensorAdapter{sensor, cfg.Sensor.Interfaces}
	}
	logSrcs, closers, err := openLogSensors(cfg, h, log)
	for _, c := range closers {
		defer c()
	}
	if err != nil {
		return err
	}
	parts.More = append(parts.More, logSrcs...)
	lp, err := newListParts(cfg, nftEnf, h, log)
	if err != nil {
		return err
	}
	lp.attach(&parts)
	closeOutbound, watcher, err := addOutbound(cfg, &parts, h, nftEnf, log)
	if err != nil {
		return err
	}
	defer closeOutbound()
	closeFlows, err := addFlows(cfg, &parts, h, watcher, log)
	if err != nil {
		return err
	}
	defer closeFlows()
	parts.Ready = func() {
		lp.afterSetup(ctx)
		sdnotify.SdNotify(false, sdnotify.SdNotifyReady)
	}
	if err := addResponses(cfg, &parts, log); err != nil {
		return err
	}
	alerter, err := newAlerter(cfg.Alerts, log)
	if err != nil {
		return err
	}
	alertsDone := make(chan struct{})
	alertCtx, stopAlerts := context.WithCancel(context.Background())
	if alerter != nil {
		parts.Notifiers = append(parts.Notifiers, alerter)
		go func() { alerter.Run(alertCtx); close(alertsDone) }()
	} else {
		close(alertsDone)
	}
	// On the way out, what alerts are waiting get their last try.
	defer func() { stopAlerts(); <-alertsDone }()
	if hk, ok := parts.Hooks.(hooksAdapter); ok {
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			hk.r.Close(ctx)
		}()
	}
	baits, err := openBait(cfg, log)
	if err != nil {
		return err
	}
	if baits != nil {
		defer baits.Close()
		parts.More = append(parts.More, baits)
	}
	d, err := daemon.New(cfg, parts)
	if err != nil {
		return err
	}
	if err := lp.beforeRun(ctx, d); err != nil {
		return err
	}
	err = d.Run(ctx)
	sdnotify.SdNotify(false, sdnotify.SdNotifyStopping)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// addResponses builds the enforcers besides nftables, the hooks and the
// PortSentry-style output the configuration asks for.
func addResponses(cfg *config.Config, parts *daemon.Parts, log *slog.Logger) error {
	via := []string{}
	if cfg.Firewall.Enabled {
		via = append(via, "nftables set inet "+cfg.Firewall.Table+" banned4/banned6")
	}
	if hd := cfg.Enforcers.HostsDeny; hd.Enabled {
		e, err := hostsdeny.New(hostsdeny.Config{Path: hd.Path, Line: hd.Line})
		if err != nil {
			return fmt.Errorf("enforcers.hosts_deny: %w", err)
		}
		parts.MoreEnforcers = append(parts.MoreEnforcers, e)
		via = append(via, "wrappers with string: \""+hd.Line+"\"")
	}
	if cfg.Enforcers.BlackholeRoute.Enabled {
		e, err := route.New(route.Config{})
		if err != nil {
			return fmt.Errorf("enforcers.blackhole_route: %w", err)
		}
		parts.MoreEnforcers = append(parts.MoreEnforcers, e)
		via = append(via, "dropped route (blackhole)")
	}
	if len(cfg.Hooks) > 0 {
		var hooks []hook.Hook
		before := map[string]bool{}
		for _, h := range cfg.Hooks {
			hooks = append(hooks, hook.Hook{Argv: h.Command, On: h.On, Order: h.Order, Timeout: h.Timeout.D()})
			if h.Order == "before" {
				on := h.On
				if len(on) == 0 {
					on = []string{"ban"}
				}
				for _, a := range on {
					before[a] = true
				}
			}
		}
		r, err := hook.NewRunner(hooks, log)
		if err != nil {
			return fmt.Errorf("hooks: %w", err)
		}
		parts.Hooks = hooksAdapter{r: r, before: before}
	}
	c := cfg.Compat
	if c.PortsentrySyslog || c.PortsentryHistory != "" {
		if len(via) == 0 {
			via = append(via, "nothing (no enforcer is on)")
		}
		ps, err := notify.NewPortSentry(notify.PortSentryConfig{Syslog: c.PortsentrySyslog, HistoryFile: c.PortsentryHistory,
			ResolveHost: c.ResolveHost, Via: strings.Join(via, " and ")})
		if err != nil {
			return err
		}
		parts.Notifiers = append(parts.Notifiers, ps)
	}
	return nil
}

// openBait binds the connect-mode bait ports, logging those a service holds.
func openBait(cfg *config.Config, log *slog.Logger) (*bait.Sensor, error) {
	if len(cfg.Bait.TCP) == 0 && len(cfg.Bait.UDP) == 0 {
		return nil, nil
	}
	s, skipped, err := bait.Open(bait.Config{TCP: cfg.Bait.TCP.Ports(), UDP: cfg.Bait.UDP.Ports(), Banner: cfg.Bait.Banner, Log: log})
	if err != nil {
		return nil, err
	}
	for _, sk := range skipped {
		log.Warn("bait port skipped: a real service holds it", "port", sk.Port, "proto", sk.Proto, "why", sk.Why)
	}
	tcp, udp := s.Ports()
	log.Info("bait ports", "tcp", len(tcp), "udp", len(udp), "skipped", len(skipped))
	return s, nil
}

// hooksAdapter fits the hook runner to the daemon.
type hooksAdapter struct {
	r      *hook.Runner
	before map[string]bool
}

func (h hooksAdapter) HasBefore(action string) bool { return h.before[action] }

func (h hooksAdapter) Before(ctx context.Context, ev daemon.HookEvent) {
	h.r.Before(ctx, hookEvent(ev))
}

func (h hooksAdapter) After(ev daemon.HookEvent) { h.r.After(hookEvent(ev)) }

func hookEvent(ev daemon.HookEvent) hook.Event {
	return hook.Event{Action: ev.Action, Target: ev.Target, Port: ev.Port, Proto: ev.Proto, Mode: ev.Mode,
		Reason: ev.Reason, Duration: ev.Duration}
}

// storeAdapter fits the store to what the daemon asks of it.
type storeAdapter struct{ *store.Store }

func (s storeAdapter) Prune(before time.Time) error {
	_, _, err := s.Store.Prune(before)
	return err
}

func (s storeAdapter) DecisionsAbout(a netip.Addr, limit int) ([]decision.Decision, error) {
	g, err := s.Store.Grep(a, limit)
	return g.Decisions, err
}

func (s storeAdapter) AddListEntry(list string, p netip.Prefix, comment, by string, at time.Time) error {
	return s.Store.AddListEntry(store.List(list), p, comment, by, at)
}

func (s storeAdapter) RemoveListEntry(list string, p netip.Prefix) (bool, error) {
	return s.Store.RemoveListEntry(store.List(list), p)
}

func (s storeAdapter) ListEntries(list string) ([]daemon.ListEntry, error) {
	es, err := s.Store.ListEntries(store.List(list))
	out := make([]daemon.ListEntry, len(es))
	for i, e := range es {
		out[i] = daemon.ListEntry{Prefix: e.Prefix, Comment: e.Comment, By: e.By, Added: e.Added}
	}
	return out, err
}

// sensorAdapter fits the packet sensor to the daemon.
type sensorAdapter struct {
	*packet.Sensor
	ifaces []string
}

func (s sensorAdapter) Stats() daemon.SensorStats {
	st := s.Sensor.Stats()
	return daemon.SensorStats{Packets: st.Packets, Probes: st.Probes, Malformed: st.Malformed, KernelDrops: st.KernelDrops}
}

func (s sensorAdapter) Interfaces() []string { return s.ifaces }
