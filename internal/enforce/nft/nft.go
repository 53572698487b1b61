// Package nft is the nftables enforcer: it puts bans into kernel sets of a
// table of its own and lets the kernel drop the banned sources' packets.
//
// It owns exactly one table, `inet scanwarden` (Config.Table), and
// everything in it:
//
//	table inet scanwarden {
//		set banned4 { type ipv4_addr; flags interval,timeout; }
//		set banned6 { type ipv6_addr; flags interval,timeout; }
//		chain prerouting {
//			type filter hook prerouting priority raw; policy accept;
//			meta nfproto ipv4 ip saddr @banned4 counter drop
//			meta nfproto ipv6 ip6 saddr @banned6 counter drop
//		}
//		chain forward {	# only with Config.Forward
//			type filter hook forward priority filter; policy accept;
//			meta nfproto ipv4 ip daddr @banned4 counter drop
//			meta nfproto ipv6 ip6 daddr @banned6 counter drop
//		}
//	}
//
// It never changes or deletes any other table: Setup adopts or repairs
// only this one, Teardown deletes only this one. Other tables'
// chains on the same hooks see the packets this table accepts, as the
// kernel runs every base chain of a hook in priority order.
//
// # Where the drop happens
//
// A ban should cost the kernel as little as possible per dropped packet,
// and above all must not let a scanner (or a spoofed flood) fill the
// conntrack table. Connection tracking creates its entry at the
// prerouting hook, priority -200 (NF_IP_PRI_CONNTRACK); an input-hook
// chain runs after that, whatever its priority, because input comes after
// prerouting. So the drop chain hooks prerouting at priority -300
// (NF_IP_PRI_RAW, "priority raw"), the position of iptables' raw table: it
// runs after defragmentation (-400) and before conntrack, so a dropped
// packet never gets a conntrack entry. Prerouting also sees packets that
// are going to be forwarded, so a router drops a banned source's traffic
// to the hosts behind it as well. The netdev ingress hook would be earlier
// still, but it needs a chain per interface and misses interfaces that
// appear later.
//
// With Config.Forward a second chain, at the forward hook and the usual
// filter priority 0, drops forwarded packets to a banned address, so hosts
// behind a router cannot reach it either (their packets to it are not
// seen by prerouting's source match).
//
// # Sets and elements
//
// Both sets are interval sets, so an element is a single address or any
// prefix, and timeout sets, so every element carries its own timeout and
// the kernel removes it on time even when the daemon is not running. An
// element without a timeout is a permanent ban. How bans map to elements
// (nested prefixes, minimum timeouts, expiry precision) is described on
// Enforcer.Apply.
//
// All writes go through netlink (github.com/google/nftables), one batch
// (one atomic transaction) per call; the package never runs the nft
// command. The Enforcer keeps a copy of the sets' contents, checked
// against the kernel's ruleset generation, so that Apply need not dump a
// large set every time (see Enforcer.Apply).
//
// Kernel behaviour this relies on, checked by the tests in this package
// against a real kernel: elements of an interval set are a start key and
// an end key flagged NFT_SET_ELEM_INTERVAL_END (no end for a range that
// reaches the top of the address space), overlapping intervals are
// rejected, adjacent ones are not, an element deleted and re-added in one
// batch takes its new timeout, and timed-out elements are neither listed
// nor matched, and do not block a new element with the same key.
package nft

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/enforce"
)

// DefaultTable is the name of the table the enforcer owns unless
// Config.Table says otherwise.
const DefaultTable = "scanwarden"

// Config configures an Enforcer.
type Config struct {
	// Table is the name of the inet table the enforcer owns
	// (DefaultTable when empty).
	Table string
	// Forward also drops forwarded traffic to banned addresses, for
	// routers.
	Forward bool
	// Throttle, when Rate is above zero, has the kernel itself limit each
	// source's new connection attempts to ports where nothing listens (and
	// its stealth probes) until the detector's ban lands. See throttle.go.
	Throttle Throttle
	// Feeds names the blocklist feeds whose sets the table holds (see
	// LoadFeed); lower-case letters, digits, - and _.
	Feeds []string
	// PortFlood and ConnLimit are CSF's per-source limits (extras.go).
	PortFlood []PortFlood
	ConnLimit []ConnLimit
	// LogGroup, when not 0, logs new connection attempts to this host to
	// that NFLOG group (firewall.logging: auto).
	LogGroup uint16
	// Outbound restricts the new outbound connections of local users,
	// cgroups and forwarded clients that scan others (outbound.go).
	Outbound Outbound
	// NetNS is the file descriptor of the network namespace to work in;
	// 0 is the caller's own. Tests use it; the caller keeps the fd open
	// while the Enforcer is in use and closes it afterwards.
	NetNS int
}

// Errors callers may branch on; the errors returned wrap them together with
// the underlying netlink error.
var (
	// ErrNotPermitted: the process lacks CAP_NET_ADMIN (it is not root).
	ErrNotPermitted = errors.New("nftables needs root or CAP_NET_ADMIN")
	// ErrUnavailable: the kernel has no nf_tables.
	ErrUnavailable = errors.New("nf_tables is not available in this kernel (CONFIG_NF_TABLES, module nf_tables)")
	// ErrNotSetUp: the table does not exist; Setup has not run, or
	// Teardown or someone else removed it.
	ErrNotSetUp = errors.New("table not set up (run Setup first)")
)

// Enforcer puts bans into nftables sets. Its methods are safe for
// concurrent use; they are serialised, since each reads kernel state and
// then writes a batch computed from it.
type Enforcer struct {
	cfg   Config
	table *nftables.Table

	mu   sync.Mutex
	sets [2]*setState // copies of banned4 and banned6; see Apply
}

var _ enforce.Enforcer = (*Enforcer)(nil)

// New returns an Enforcer for cfg. It does not touch the kernel; Setup
// does.
func New(cfg Config) (*Enforcer, error) {
	if cfg.Table == "" {
		cfg.Table = DefaultTable
	}
	// NFT_NAME_MAXLEN is 256 including the terminating NUL.
	if len(cfg.Table) > 255 {
		return nil, fmt.Errorf("nftables table name %q: longer than 255 bytes", cfg.Table)
	}
	for _, r := range cfg.Table {
		if r == 0 {
			return nil, fmt.Errorf("nftables table name %q: contains a NUL byte", cfg.Table)
		}
	}
	if err := outboundDefaults(&cfg.Outbound); err != nil {
		return nil, err
	}
	if cfg.NetNS < 0 {
		return nil, fmt.Errorf("network namespace fd %d: must be 0 (current) or an open fd", cfg.NetNS)
	}
	return &Enforcer{
		cfg:   cfg,
		table: &nftables.Table{Name: cfg.Table, Family: nftables.TableFamilyINet},
	}, nil
}

// Name implements enforce.Enforcer.
func (e *Enforcer) Name() string { return "nftables" }

// Setup implements enforce.Enforcer: it creates the table, sets and chains,
// or adopts them if a previous run left them as they should be (then it
// sends nothing, and the rules keep their handles and counters). Whatever
// in the table is not as expected is repaired in one atomic batch: all
// chains of the table are deleted and recreated, a set of the wrong type
// or flags is recreated (losing its elements; the daemon reconciles the
// sets with its store after Setup), and sets we do not know are deleted.
// Sets that are right keep their elements. A dormant table is woken up
// first, in a batch of its own. Other tables are never touched.
func (e *Enforcer) Setup(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.forget()
	c, err := e.conn(ctx, 0)
	if err != nil {
		return err
	}
	tbl, err := e.lookupTable(c)
	switch {
	case errors.Is(err, ErrNotSetUp):
		e.create(c)
		if err := c.Flush(); err != nil {
			return e.wrap("creating", err)
		}
		return nil
	case err != nil:
		return err
	}
	if tableFlags(tbl)&unix.NFT_TABLE_F_DORMANT != 0 {
		// Someone set the table dormant (its chains see no packets).
		// A NEWTABLE with flags 0 wakes it up; the kernel refuses
		// that in a batch that also changes the table's chains, so
		// it goes first, on its own.
		c.AddTable(e.table)
		if err := c.Flush(); err != nil {
			return e.wrap("waking up dormant", err)
		}
	}
	repair, err := e.inspect(c)
	if err != nil {
		return err
	}
	if repair == nil {
		return nil // adopted as it is
	}
	repair(c)
	if err := c.Flush(); err != nil {
		return e.wrap("repairing", err)
	}
	return nil
}

// Teardown implements enforce.Enforcer: it deletes the table, its sets and
// chains, and nothing else. A missing table is not an error.
func (e *Enforcer) Teardown(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.forget()
	c, err := e.conn(ctx, 0)
	if err != nil {
		return err
	}
	if _, err := e.lookupTable(c); errors.Is(err, ErrNotSetUp) {
		return nil
	} else if err != nil {
		return err
	}
	c.DelTable(e.table)
	if err := c.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return e.wrap("deleting", err)
	}
	return nil
}

// Counters returns how many packets and bytes the table's drop rules have
// dropped since Setup created (or last repaired) them.
func (e *Enforcer) Counters(ctx context.Context) (packets, bytes uint64, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	c, err := e.conn(ctx, 0)
	if err != nil {
		return 0, 0, err
	}
	if _, err := e.lookupTable(c); err != nil {
		return 0, 0, err
	}
	for _, ch := range e.chains() {
		rules, err := c.GetRules(e.table, ch)
		if err != nil {
			// GetRules loses the errno; a missing forward chain is the
			// common case (Forward off), anything else shows in Setup.
			continue
		}
		for _, r := range rules {
			if n, ok := ruleCounter(r); ok {
				packets += n.Packets
				bytes += n.Bytes
			}
		}
	}
	return packets, bytes, nil
}

// lookupTable returns our table as the kernel has it, or an error wrapping
// ErrNotSetUp when there is none.
func (e *Enforcer) lookupTable(c *nftables.Conn) (*nftables.Table, error) {
	t, err := c.ListTableOfFamily(e.table.Name, e.table.Family)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("nftables table inet %s: %w", e.table.Name, ErrNotSetUp)
	}
	if err != nil {
		return nil, e.wrap("looking up", err)
	}
	return t, nil
}

// wrap adds context to a netlink error and, where the cause is one a
// caller can act on, the sentinel that says so.
func (e *Enforcer) wrap(doing string, err error) error {
	what := fmt.Sprintf("%s nftables table inet %s", doing, e.table.Name)
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s: %w: %w", what, ErrNotPermitted, err)
	case errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.EOPNOTSUPP),
		errors.Is(err, unix.EAFNOSUPPORT):
		return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// defaultDeadline bounds every netlink exchange whose context has no
// deadline, so a kernel that never answers cannot hang the daemon. The
// largest batches (10^5 elements) commit in well under a second.
const defaultDeadline = time.Minute

// conn returns a netlink connection to nftables in the configured
// namespace. batch, when positive, is the size of the batch about to be
// sent, in bytes. A batch must fit in one sendmsg, and the default socket
// buffer (net.core.wmem_default, 208 KiB) holds about 2 000 elements; and
// the kernel acks each of its messages (one per maxMessageBytes of
// elements) with an skb of about a kilobyte of receive buffer.
func (e *Enforcer) conn(ctx context.Context, batch int) (*nftables.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultDeadline)
	}
	opts := []nftables.SockOption{
		func(c *netlink.Conn) error { return c.SetDeadline(deadline) },
		// Acks carry only the header, not the whole (possibly 64 KiB)
		// request, so the errors of a large failed batch fit the receive
		// buffer.
		func(c *netlink.Conn) error { return c.SetOption(netlink.CapAcknowledge, true) },
	}
	if batch > 0 {
		acks := (batch/maxMessageBytes + 8) * 2048
		opts = append(opts,
			func(c *netlink.Conn) error { return c.SetWriteBuffer(batch) },
			func(c *netlink.Conn) error { return c.SetReadBuffer(max(acks, 256<<10)) })
	}
	copts := []nftables.ConnOption{nftables.WithSockOptions(opts...)}
	if e.cfg.NetNS != 0 {
		copts = append(copts, nftables.WithNetNSFd(e.cfg.NetNS))
	}
	c, err := nftables.New(copts...)
	if err != nil {
		return nil, e.wrap("connecting to", err)
	}
	return c, nil
}
