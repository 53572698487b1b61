// Package host keeps the daemon's view of the machine it protects: its
// links and addresses, default gateways, nameservers, listening sockets and
// live SSH sessions. The view is loaded once by Start and then kept current:
// netlink notifications for links, addresses and routes (followed within
// tens of milliseconds), sock_diag polls for sockets (every RefreshInterval
// and on demand), a stat of resolv.conf on each poll.
//
// Questions asked per packet (IsLocal, Listening, LinkByIndex) read
// immutable snapshots swapped in atomically, so they take no lock and
// allocate nothing, from any number of goroutines.
//
// The package knows nothing of packets, detection, policy or blocking: it
// answers "is this address mine?", "would anything accept a connection on
// this port?" and "must this address never be blocked, and why?".
package host

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Options configures a Host. The zero value is the daemon's default.
type Options struct {
	// RefreshInterval is how often sockets (listeners, SSH sessions) are
	// listed and resolv.conf is checked. Default 2 s: a service started
	// after the daemon is known within that, and a dump of listening
	// sockets costs the kernel little (only the listening hash is walked).
	RefreshInterval time.Duration

	// ResolvConf lists the resolver files whose nameservers are guarded.
	// Default: /etc/resolv.conf and systemd-resolved's list of upstream
	// servers, /run/systemd/resolve/resolv.conf (the first often names only
	// the local stub, 127.0.0.53). Missing files are skipped.
	ResolvConf []string

	// SSHPorts are local ports whose established TCP peers are guarded as
	// SSH sessions. Default [22]. The ports on which an sshd or dropbear
	// process listens are added unless NoSSHDiscovery is set.
	SSHPorts []uint16

	// NoSSHDiscovery turns off looking in /proc for SSH server processes'
	// listening sockets.
	NoSSHDiscovery bool

	// ProcRoot is where /proc is mounted. Default "/proc".
	ProcRoot string

	// Logger receives background errors (a failed refresh, a lost netlink
	// subscription). Default slog.Default().
	Logger *slog.Logger
}

// DefaultRefreshInterval is the default sock_diag polling interval.
const DefaultRefreshInterval = 2 * time.Second

// coalesce is how long the view waits after a netlink notification for the
// rest of its burst (an interface coming up brings its addresses and routes
// within milliseconds) before reloading once.
const coalesce = 20 * time.Millisecond

func (o *Options) defaults() {
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.ResolvConf == nil {
		o.ResolvConf = []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}
	}
	if o.SSHPorts == nil {
		o.SSHPorts = []uint16{22}
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Host is the live view of the machine. All methods are safe for concurrent
// use.
type Host struct {
	opts Options
	nsFD int // the network namespace current when Start was called

	rt   *netlink.Conn // route dumps
	diag *netlink.Conn // sock_diag dumps

	evMu sync.Mutex
	ev   *netlink.Conn // route notifications

	net   atomic.Pointer[netView]
	sock  atomic.Pointer[sockView]
	ssh   atomic.Pointer[sshView]
	dns   atomic.Pointer[dnsView]
	fwd   atomic.Bool
	ports atomic.Uint32 // ephemeral port range, lo<<16 | hi

	netMu  sync.Mutex // one reload of netView at a time
	sockMu sync.Mutex // one listener refresh at a time
	sshMu  sync.Mutex // one SSH session dump at a time
	dnsMu  sync.Mutex

	changeMu sync.Mutex
	change   chan struct{}

	kick   chan struct{}
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// Listener is a socket that accepts connections (TCP, LISTEN) or datagrams
// (UDP, bound and not connected).
type Listener struct {
	Proto probe.Proto
	Addr  netip.AddrPort // 0.0.0.0 or :: when bound to the wildcard
	// DualStack marks an IPv6 wildcard socket without IPV6_V6ONLY: it
	// takes IPv4 too.
	DualStack bool
	UID       uint32
	Inode     uint32
}

// Start loads the view of the host in the calling thread's network
// namespace and keeps it current until ctx is done or Close is called.
func Start(ctx context.Context, opts Options) (*Host, error) {
	opts.defaults()
	h := &Host{opts: opts, nsFD: -1, change: make(chan struct{}), kick: make(chan struct{}, 1)}
	h.ports.Store(32768<<16 | 60999) // Linux's default, until read
	var err error
	if h.nsFD, err = callerNetNS(); err != nil {
		return nil, err
	}
	if err := h.open(); err != nil {
		h.closeConns()
		return nil, err
	}
	if err := h.resyncNet(); err != nil {
		h.closeConns()
		return nil, err
	}
	if err := h.refreshListeners(); err != nil {
		h.closeConns()
		return nil, err
	}
	if err := h.refreshSSH(time.Now()); err != nil {
		h.closeConns()
		return nil, err
	}
	if err := h.refreshForwarding(); err != nil {
		opts.Logger.Warn("host: reading forwarding settings", "err", err)
	}
	if err := h.refreshDNS(); err != nil {
		// A resolver file that cannot be read is retried on every refresh.
		opts.Logger.Warn("host: reading resolver files", "err", err)
	}
	ctx, h.cancel = context.WithCancel(ctx)
	h.wg.Add(2)
	go h.watch(ctx)
	go h.loop(ctx)
	return h, nil
}

// callerNetNS opens the network namespace of the calling goroutine's thread.
func callerNetNS() (int, error) {
	var fd int
	var err error
	// LockOSThread nests: a caller that holds its thread (a test inside a
	// namespace) keeps it.
	lockThread(func() { fd, err = threadNetNS() })
	return fd, err
}

func (h *Host) open() error {
	return h.Do(func() error {
		var err error
		if h.rt, err = netlink.Dial(unix.NETLINK_ROUTE, nil); err != nil {
			return fmt.Errorf("opening a route netlink socket: %w", err)
		}
		// Ask the kernel to honour the table in dump requests (Linux 4.20+);
		// older kernels dump everything and the tables are filtered here.
		_ = h.rt.SetOption(netlink.GetStrictCheck, true)
		if h.diag, err = netlink.Dial(unix.NETLINK_SOCK_DIAG, nil); err != nil {
			return fmt.Errorf("opening a sock_diag netlink socket: %w", err)
		}
		ev, err := dialEvents()
		if err != nil {
			return err
		}
		h.ev = ev
		return nil
	})
}

// dialEvents subscribes to the notifications that can change the view.
func dialEvents() (*netlink.Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, nil)
	if err != nil {
		return nil, fmt.Errorf("opening a route netlink socket for notifications: %w", err)
	}
	for _, g := range []uint32{unix.RTNLGRP_LINK, unix.RTNLGRP_IPV4_IFADDR, unix.RTNLGRP_IPV6_IFADDR,
		unix.RTNLGRP_IPV4_ROUTE, unix.RTNLGRP_IPV6_ROUTE} {
		if err := c.JoinGroup(g); err != nil {
			c.Close()
			return nil, fmt.Errorf("subscribing to route netlink group %d: %w", g, err)
		}
	}
	_ = c.JoinGroup(unix.RTNLGRP_NEXTHOP) // Linux 5.3+
	// A burst (a container host adding hundreds of veths) must not overflow
	// the socket; if it does anyway, ENOBUFS triggers a full reload.
	_ = c.SetReadBuffer(1 << 20)
	return c, nil
}

// Close stops following the host and releases its sockets.
func (h *Host) Close() error {
	h.closed.Do(func() {
		h.cancel()
		h.evMu.Lock()
		if h.ev != nil {
			h.ev.Close() // unblocks watch
		}
		h.evMu.Unlock()
		h.wg.Wait()
		h.closeConns()
	})
	return nil
}

func (h *Host) closeConns() {
	for _, c := range []*netlink.Conn{h.rt, h.diag, h.ev} {
		if c != nil {
			c.Close()
		}
	}
	if h.nsFD >= 0 {
		unix.Close(h.nsFD)
	}
}

// Changed returns a channel that is closed at the next change of links,
// addresses, gateways or listeners. Call it again for the change after that.
func (h *Host) Changed() <-chan struct{} {
	h.changeMu.Lock()
	defer h.changeMu.Unlock()
	return h.change
}

func (h *Host) notify() {
	h.changeMu.Lock()
	close(h.change)
	h.change = make(chan struct{})
	h.changeMu.Unlock()
}

// poke asks the loop to reload the netlink part of the view.
func (h *Host) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// watch reads route notifications and pokes the loop for those that matter.
func (h *Host) watch(ctx context.Context) {
	defer h.wg.Done()
	for {
		h.evMu.Lock()
		ev := h.ev
		h.evMu.Unlock()
		msgs, err := ev.Receive()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, unix.ENOBUFS) {
			// Notifications were lost: only a full reload is trustworthy.
			h.poke()
			continue
		}
		if err != nil {
			// The socket failed for good: open another one a second later
			// (and again each second if that fails), then reload.
			h.opts.Logger.Warn("host: route notifications failed; resubscribing", "err", err)
			if !sleep(ctx, time.Second) {
				return
			}
			if h.resubscribe(ctx) {
				h.poke()
			}
			continue
		}
		for _, m := range msgs {
			if eventMatters(m) {
				h.poke()
				break
			}
		}
	}
}

func eventMatters(m netlink.Message) bool {
	switch m.Header.Type {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK, unix.RTM_NEWADDR, unix.RTM_DELADDR,
		unix.RTM_NEWNEXTHOP, unix.RTM_DELNEXTHOP:
		// Link and address changes also take routes with them without a
		// notification (IPv4 flushes routes through a deleted link or
		// address silently), so they reload everything.
		return true
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		return routeEventMatters(m.Data)
	}
	return false
}

func (h *Host) resubscribe(ctx context.Context) bool {
	var ev *netlink.Conn
	err := h.Do(func() error {
		var err error
		ev, err = dialEvents()
		return err
	})
	if err != nil {
		h.opts.Logger.Warn("host: resubscribing to route notifications", "err", err)
		return false
	}
	h.evMu.Lock()
	defer h.evMu.Unlock()
	if ctx.Err() != nil { // Close ran meanwhile and closed the old one
		ev.Close()
		return false
	}
	h.ev.Close()
	h.ev = ev
	return true
}

// loop reloads on notifications and refreshes sockets on the interval.
func (h *Host) loop(ctx context.Context) {
	defer h.wg.Done()
	t := time.NewTicker(h.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
			if !sleep(ctx, coalesce) {
				return
			}
			if err := h.resyncNet(); err != nil {
				h.opts.Logger.Warn("host: reloading links, addresses and routes", "err", err)
				time.AfterFunc(time.Second, h.poke)
			}
		case <-t.C:
			if err := h.Refresh(); err != nil {
				h.opts.Logger.Warn("host: refreshing sockets and resolvers", "err", err)
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
