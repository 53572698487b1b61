// Package route is the blackhole-route enforcer: a ban is a route of type
// blackhole to the banned prefix, so the host cannot send anything to it
// (PortSentry's KILL_ROUTE, over netlink instead of a `route` command).
//
// A blackhole route does not stop packets from arriving; it stops the
// answers. A banned scanner's SYN still reaches the host, but the SYN/ACK,
// RST or ICMP error it would get back is dropped by the routing lookup, so
// it learns nothing and no TCP connection can be completed. Where a firewall
// is available, the nftables enforcer drops the packets themselves, earlier
// and more cheaply; this enforcer is for hosts without one, or as a second
// line.
//
// It owns the routes of one route protocol number in one table and nothing
// else. It knows nothing of packets or detection.
//
// # Our routes
//
// A ban on 192.0.2.7 is, in `ip route` terms,
//
//	blackhole 192.0.2.7 proto 251          (table main)
//	blackhole 2001:db8::/32 proto 251 metric 1024
//
// The route protocol (rtm_protocol) marks a route's origin. The kernel
// interprets only 0 to 4 (unspec, redirect, kernel, boot, static);
// linux/rtnetlink.h lists the numbers routing daemons use (8 to 192: gated,
// ra, mrt, zebra, bird, ..., bgp 186, isis 187, ospf 188, rip 189, eigrp
// 192) and FRR uses 186 to 198 for its daemons. DefaultProtocol, 251
// (0xfb), is far from all of them and from the values /etc/iproute2/rt_protos
// names, and Bans and Teardown touch only routes with our number, so a route
// an administrator or a routing daemon added to the same prefix is never
// listed, replaced or removed. To see "proto scanwarden" in `ip route`:
//
//	echo '251 scanwarden' > /etc/iproute2/rt_protos.d/scanwarden.conf
//
// # Apply
//
// Bans are added with NLM_F_CREATE|NLM_F_EXCL, never by blind replacement:
// if a route of someone else's has the same key (prefix, and for IPv4 TOS
// and metric 0; for IPv6 metric 1024), replacing it would destroy it, so
// the ban fails with ErrConflict instead and the route is left alone. A
// route of ours that is already there is a no-op; one of ours that was
// changed into another type is replaced (NLM_F_REPLACE). Removing an absent
// route is not an error. All requests of one Apply go to the kernel in one
// write (or a few, for thousands of prefixes), and the kernel acknowledges
// each; only prefixes that exist already cost a second round trip (one
// dump of our routes).
//
// Routes have no timeout here (IPv4 routes cannot have one): Bans reports a
// zero Expires, and the daemon removes a route when its ban ends. Bans that
// ended while the daemon was not running are removed when it starts and
// reconciles.
package route

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/enforce"
)

// DefaultProtocol is the route protocol number that marks our routes (see
// the package documentation for why 251).
const DefaultProtocol uint8 = 0xfb

// DefaultTable is the routing table our routes go to: main (254), where
// every lookup ends up unless policy routing sends it elsewhere.
const DefaultTable uint32 = unix.RT_TABLE_MAIN

// Config configures an Enforcer.
type Config struct {
	// NetNS is the file descriptor of the network namespace to work in;
	// 0 is the caller's own. Tests use it; the caller keeps the fd open
	// while the Enforcer is in use.
	NetNS int
	// Table is the routing table (DefaultTable when 0).
	Table uint32
	// Protocol is the route protocol number of our routes
	// (DefaultProtocol when 0). 1 to 4 are the kernel's and refused.
	Protocol uint8
}

// Errors callers may branch on; returned errors wrap them.
var (
	// ErrNotPermitted: the process lacks CAP_NET_ADMIN.
	ErrNotPermitted = errors.New("blackhole routes need root or CAP_NET_ADMIN")
	// ErrConflict: a route that is not ours has the key a ban's route
	// would have; it was left alone and the ban not added.
	ErrConflict = errors.New("another route to the prefix is in the table")
)

// Enforcer keeps bans as blackhole routes.
type Enforcer struct {
	cfg Config
	mu  sync.Mutex // one Apply, Bans or Teardown at a time
}

// New checks the configuration and returns an Enforcer. It does not touch
// the kernel; Setup checks that it can.
func New(cfg Config) (*Enforcer, error) {
	if cfg.Table == 0 {
		cfg.Table = DefaultTable
	}
	if cfg.Protocol == 0 {
		cfg.Protocol = DefaultProtocol
	}
	if cfg.Protocol <= unix.RTPROT_STATIC {
		return nil, fmt.Errorf("route protocol %d is the kernel's (0-4: unspec, redirect, kernel, boot, static); use one of our own, e.g. %d", cfg.Protocol, DefaultProtocol)
	}
	if cfg.Table == unix.RT_TABLE_LOCAL || cfg.Table == unix.RT_TABLE_UNSPEC {
		return nil, fmt.Errorf("routing table %d is reserved; use main (%d) or a table of your own", cfg.Table, unix.RT_TABLE_MAIN)
	}
	return &Enforcer{cfg: cfg}, nil
}

// Name implements enforce.Enforcer.
func (e *Enforcer) Name() string { return "blackhole-route" }

// Setup implements enforce.Enforcer. There is nothing to create; it checks
// that route netlink answers and that the process may change routes.
func (e *Enforcer) Setup(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := e.dump(c, unix.AF_INET); err != nil {
		return err
	}
	// A request no route can match (an IPv4 prefix longer than 32 bits)
	// tells whether we may change routes without changing any: the kernel
	// checks CAP_NET_ADMIN before it looks at the request.
	probe := e.request(unix.RTM_DELROUTE, netip.PrefixFrom(netip.IPv4Unspecified(), 32))
	probe.Data[1] = 33
	errs := e.exchange(c, []netlink.Message{probe})
	if errors.Is(errs[0], unix.EPERM) {
		return fmt.Errorf("%w: %v", ErrNotPermitted, errs[0])
	}
	return nil
}

// Apply implements enforce.Enforcer: removals first, then additions, in one
// batch; see the package documentation. Expiries are ignored.
func (e *Enforcer) Apply(ctx context.Context, add []enforce.Ban, remove []netip.Prefix) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var dels, adds []netip.Prefix
	for _, p := range remove {
		n, err := normalize(p)
		if err != nil {
			return err
		}
		dels = append(dels, n)
	}
	for _, b := range add {
		n, err := normalize(b.Prefix)
		if err != nil {
			return err
		}
		adds = append(adds, n)
	}
	dels, adds = dedupe(dels), dedupe(adds)
	if len(dels)+len(adds) == 0 {
		return ctx.Err()
	}
	c, err := e.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()

	msgs := make([]netlink.Message, 0, len(dels)+len(adds))
	for _, p := range dels {
		msgs = append(msgs, e.request(unix.RTM_DELROUTE, p))
	}
	for _, p := range adds {
		msgs = append(msgs, e.request(unix.RTM_NEWROUTE, p))
	}
	replies := e.exchange(c, msgs)

	var errs []error
	var exist []netip.Prefix
	for i, err := range replies {
		switch {
		case err == nil:
		case i < len(dels) && errors.Is(err, unix.ESRCH):
			// already gone
		case i >= len(dels) && errors.Is(err, unix.EEXIST):
			exist = append(exist, adds[i-len(dels)])
		default:
			errs = append(errs, e.opError(msgs[i], err))
		}
	}
	if len(exist) > 0 {
		errs = append(errs, e.resolveExisting(c, exist)...)
	}
	return errors.Join(errs...)
}

// resolveExisting deals with bans whose route key was taken: by a route of
// ours (fine, or replaced if someone changed its type) or by someone
// else's (a conflict, left alone).
func (e *Enforcer) resolveExisting(c *netlink.Conn, exist []netip.Prefix) []error {
	ours := map[netip.Prefix]route{}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		rs, err := e.dump(c, fam)
		if err != nil {
			return []error{err}
		}
		for _, r := range rs {
			if r.priority == defaultMetric(r.dst) {
				ours[r.dst] = r
			}
		}
	}
	var errs []error
	var replace []netlink.Message
	for _, p := range exist {
		r, ok := ours[p]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("blackhole route to %v: %w (table %d, not protocol %d); it was left alone and the ban is not in place", p, ErrConflict, e.cfg.Table, e.cfg.Protocol))
		case r.typ != unix.RTN_BLACKHOLE:
			m := e.request(unix.RTM_NEWROUTE, p)
			m.Header.Flags = netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Replace
			replace = append(replace, m)
		}
	}
	for i, err := range e.exchange(c, replace) {
		if err != nil {
			errs = append(errs, e.opError(replace[i], err))
		}
	}
	return errs
}

// Bans implements enforce.Enforcer: our routes, in address order, each
// with a zero Expires.
func (e *Enforcer) Bans(ctx context.Context) ([]enforce.Ban, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var ps []netip.Prefix
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		rs, err := e.dump(c, fam)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			ps = append(ps, r.dst)
		}
	}
	ps = dedupe(ps)
	out := make([]enforce.Ban, len(ps))
	for i, p := range ps {
		out[i] = enforce.Ban{Prefix: p}
	}
	return out, nil
}

// Teardown implements enforce.Enforcer: it deletes every route of our
// protocol in our table, whatever its type or metric.
func (e *Enforcer) Teardown(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	var msgs []netlink.Message
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		rs, err := e.dump(c, fam)
		if err != nil {
			return err
		}
		for _, r := range rs {
			m := e.request(unix.RTM_DELROUTE, r.dst)
			m.Data[7] = r.typ
			m.Data = appendPriority(m.Data, r.priority)
			msgs = append(msgs, m)
		}
	}
	var errs []error
	for i, err := range e.exchange(c, msgs) {
		if err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, e.opError(msgs[i], err))
		}
	}
	return errors.Join(errs...)
}

// dial opens a route netlink socket in the configured namespace, with the
// kernel's strict checking of dump requests where it has it (4.20 and
// later: dumps are then filtered by the kernel). Its deadline is ctx's, or
// ioTimeout from now.
func (e *Enforcer) dial(ctx context.Context) (*netlink.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: e.cfg.NetNS})
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("%w: opening route netlink: %v", ErrNotPermitted, err)
		}
		return nil, fmt.Errorf("opening route netlink: %w", err)
	}
	c.SetOption(netlink.GetStrictCheck, true)      // older kernels: we filter ourselves
	c.SetOption(netlink.ExtendedAcknowledge, true) // error messages, where the kernel has them
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(ioTimeout)
	}
	c.SetDeadline(deadline)
	return c, nil
}

// ioTimeout bounds a whole operation when the context has no deadline: the
// kernel answers route requests in microseconds, so this only matters if
// something is badly wrong.
const ioTimeout = 30 * time.Second

// normalize turns a target into the prefix a route is for: masked, with
// IPv4-mapped IPv6 as IPv4 (the kernel would route ::ffff:a.b.c.d as IPv6,
// which IPv4 packets never use).
func normalize(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("invalid prefix %v", p)
	}
	a, bits := p.Addr().WithZone(""), p.Bits()
	if a.Is4In6() && bits >= 96 {
		a, bits = a.Unmap(), bits-96
	}
	return netip.PrefixFrom(a, bits).Masked(), nil
}

// dedupe sorts and removes duplicates.
func dedupe(ps []netip.Prefix) []netip.Prefix {
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return slices.Compact(ps)
}

func (e *Enforcer) opError(m netlink.Message, err error) error {
	r, _ := parseRoute(m.Data)
	what := "adding"
	if m.Header.Type == unix.RTM_DELROUTE {
		what = "deleting"
	}
	if errors.Is(err, unix.EPERM) {
		err = fmt.Errorf("%w: %v", ErrNotPermitted, err)
	}
	return fmt.Errorf("%s blackhole route to %v (table %d, protocol %d): %w", what, r.dst, e.cfg.Table, e.cfg.Protocol, err)
}

// appendPriority adds RTA_PRIORITY to a request.
func appendPriority(b []byte, prio uint32) []byte {
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.RTA_PRIORITY, prio)
	attrs, _ := ae.Encode()
	return append(b, attrs...)
}
