// Package nflog is the netfilter log sensor: it binds netfilter log groups
// (nft `log group N`, iptables `-j NFLOG --nflog-group N`) on one
// NETLINK_NETFILTER socket, speaking the nfnetlink_log protocol itself, and
// turns each logged packet into a probe. The kernel copies the packet from
// its IP header on (CopyRange bytes), which probe.DecodeIP reads without
// allocating; the hook it was logged at and the host's addresses give its
// direction.
//
// A packet the host's ruleset logs to one of the user's groups
// (Config.Groups) is taken to have been dropped (probe.OutcomeDropped), as
// a kernel LOG line is: rulesets log what they refuse, as in
//
//	tcp flags & (syn|ack) == syn log group 5 prefix "Firewall: *TCP_IN Blocked* " drop
//
// A group that logs accepted packets breaks that assumption (every
// accepted connection would read as a dropped probe); do not list one.
// Packets of our own group (Config.Own, which the daemon's own rule feeds
// when firewall.logging is auto) carry probe.OutcomeUnknown: that rule logs
// attempts whatever their fate, and the daemon decides from its listener
// table. The rule's log prefix is passed on (Meta.Prefix) and counted
// (Stats.Prefixes) but never interpreted.
//
// The package knows nothing of detection, policy or blocking: it says what
// the firewall logged.
package nflog

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor"
)

// Config configures a Sensor.
type Config struct {
	// Groups are the user's log groups: packets logged there are taken to
	// be dropped.
	Groups []uint16

	// Own is our own group, which firewall.logging: auto adds a rule for;
	// 0 for none. Its packets' outcome is left to the daemon.
	Own uint16

	// CopyRange is how many bytes of each packet (from the IP header) the
	// kernel copies into its message: the headers, as the packet sensor's
	// snap length. Default 256. A rule's own `snaplen` can only lower it.
	CopyRange uint16

	// NetNS is a network namespace's file descriptor to open the socket in
	// (tests); 0 is the caller's namespace.
	NetNS int

	// ReadBuffer is the socket's receive buffer in bytes, set with
	// SO_RCVBUFFORCE (the kernel doubles it for its bookkeeping). Default
	// 8 MiB; see DefaultReadBuffer.
	ReadBuffer int
}

// Defaults.
const (
	DefaultCopyRange = 256

	// DefaultReadBuffer: a logged SYN costs 260 bytes of socket buffer in
	// a batch (measured: /proc/net/netlink's Rmem for the socket was
	// 4,991,296 bytes with 19,201 messages waiting), a 256-byte copy about
	// 420. So 8 MiB (16 MiB as the kernel accounts it) holds 64,000 logged
	// SYNs, 64 ms of a 1 Mpps flood while the reader is busy; the kernel's
	// default (rmem_default, 208 KiB) holds 800. Beyond it the kernel
	// drops messages and says so (ENOBUFS, Stats.Overruns); the sequence
	// numbers say how many (Stats.Lost).
	DefaultReadBuffer = 8 << 20

	// flushTimeout is how long the kernel holds a message in the hope of
	// batching more: 10 ms (its resolution; its default is 1 s), the
	// latency of a probe on a quiet host, as the packet sensor's block
	// timeout.
	flushTimeout = 10 * time.Millisecond
	// queueThreshold is how many messages the kernel batches into one
	// datagram at most; nlBufSize how many bytes. A batch saves a wakeup,
	// a system call and an skb's overhead per message. Measured with
	// BenchmarkLiveSYNFlood (2 vCPUs): with 64 per batch the kernel logged
	// 243,000 SYNs a second without a loss at 14% of a core in the sensor;
	// with 1 per datagram it managed 94,000 at 31%, and at a 100,000 pps
	// offer it lost half of them to overruns. 16,000 bytes plus the skb's
	// shared info fits a 16 KiB allocation and holds 64 messages of a SYN
	// scan or 40 of 256-byte copies; a batch is sent when either is full.
	queueThreshold = 64
	nlBufSize      = 16000
	// readBufferSize is the datagram buffer: the kernel's largest batch
	// (NFULA_CFG_NLBUFSIZ is capped at 128 KiB) and any single message
	// (the copy range is at most 64 KiB) fit.
	readBufferSize = 128<<10 + 4096

	// ackTimeout bounds the wait for the kernel's answer to a bind or
	// unbind, which it sends at once.
	ackTimeout = 2 * time.Second
	// maxPending bounds the messages held between Open and Run (logged
	// after a group was bound, read while waiting for the next group's
	// acknowledgement).
	maxPending = 1 << 20
)

func (c *Config) defaults() error {
	if c.CopyRange == 0 {
		c.CopyRange = DefaultCopyRange
	}
	if c.ReadBuffer == 0 {
		c.ReadBuffer = DefaultReadBuffer
	}
	switch {
	case len(c.Groups) == 0 && c.Own == 0:
		return errors.New("nflog: no log group to read (sensor.nflog.groups, or firewall.logging: auto)")
	case slices.Contains(c.Groups, c.Own) && c.Own != 0:
		return fmt.Errorf("nflog: group %d is both a firewall log group and our own (firewall.log_group): a packet there cannot be both dropped and undecided", c.Own)
	case c.CopyRange < 64:
		return fmt.Errorf("nflog: copy range %d is too short for the headers (at least 64 bytes)", c.CopyRange)
	case c.CopyRange > copyRangeMax:
		return fmt.Errorf("nflog: copy range %d is above the kernel's %d", c.CopyRange, copyRangeMax)
	case c.ReadBuffer < 64<<10:
		return fmt.Errorf("nflog: read buffer %d bytes is too small (at least 64 KiB)", c.ReadBuffer)
	}
	return nil
}

// Hosty is what the sensor asks of the host view: whether an address is
// the host's (direction), which interface an index names, and whether the
// host forwards. *host.Host implements it.
type Hosty interface {
	IsLocal(netip.Addr) bool
	LinkByIndex(int) (host.Link, bool)
	Forwarding() bool
}

var _ Hosty = (*host.Host)(nil)

// Errors callers may branch on.
var (
	// ErrGroupBusy: another netlink socket (another process: ulogd,
	// another scanwarden, `tcpdump -i nflog:N`) has bound the group. A
	// group has one reader.
	ErrGroupBusy = errors.New("the group is bound by another netlink socket")
	// ErrNotPermitted: the process lacks CAP_NET_ADMIN.
	ErrNotPermitted = errors.New("binding netfilter log groups needs root or CAP_NET_ADMIN")
)

// Sensor reads its log groups until closed.
type Sensor struct {
	cfg    Config
	conn   *netlink.Conn
	sock   *sock
	dec    *decoder
	groups []*group
	bound  []*group // groups the kernel has bound for us

	pending     [][]byte // datagrams read before Run, for Run
	pendingSize int

	overruns, truncated, foreign, discarded atomic.Uint64

	life sensor.Once // Run once; Close stops it
}

// Open opens the netlink socket (in cfg.NetNS, or the caller's network
// namespace) and binds every group in copy-packet mode. It needs root or
// CAP_NET_ADMIN. A group another socket holds is an error wrapping
// ErrGroupBusy; nothing stays bound when Open fails.
func Open(cfg Config, h Hosty) (*Sensor, error) {
	if h == nil {
		return nil, errors.New("nflog: a host view is needed (addresses decide direction)")
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Sensor{cfg: cfg}
	for _, g := range cfg.Groups {
		if slices.ContainsFunc(s.groups, func(x *group) bool { return x.num == g }) {
			continue
		}
		s.groups = append(s.groups, &group{num: g, outcome: probe.OutcomeDropped})
	}
	if cfg.Own != 0 {
		s.groups = append(s.groups, &group{num: cfg.Own, own: true, outcome: probe.OutcomeUnknown})
	}
	s.dec = newDecoder(h, s.groups)
	var err error
	s.conn, err = netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.NetNS})
	if err != nil {
		return nil, fmt.Errorf("nflog: opening a netfilter netlink socket: %w", err)
	}
	if s.sock, err = newSock(s.conn, cfg.ReadBuffer); err != nil {
		s.conn.Close()
		return nil, err
	}
	set := &settings{copyRange: cfg.CopyRange, nlbufsiz: nlBufSize, flush: flushTimeout, qthresh: queueThreshold}
	for _, g := range s.groups {
		if err := s.request(configMessage(g.num, cmdBind, set), true); err != nil {
			s.unbindAll()
			s.conn.Close()
			return nil, bindError(g.num, err)
		}
		s.bound = append(s.bound, g)
	}
	return s, nil
}

// bindError explains a failed bind. The kernel answers EPERM both when the
// caller lacks CAP_NET_ADMIN and when another socket holds the group
// (nfulnl_recv_config checks the instance's owner before the command), so
// the capability is looked at to tell which; EBUSY is a second bind of a
// group this socket holds.
func bindError(g uint16, err error) error {
	switch {
	case errors.Is(err, unix.EPERM) && !hasNetAdmin(), errors.Is(err, unix.EACCES):
		return fmt.Errorf("nflog: binding log group %d: %w (%v)", g, ErrNotPermitted, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EBUSY), errors.Is(err, unix.EEXIST):
		return fmt.Errorf("nflog: binding log group %d: %w (%v): one process reads a group; "+
			"/proc/net/netfilter/nfnetlink_log lists the bound groups and their netlink port ids "+
			"(`ss -A netlink -p` names the process), or use another group", g, ErrGroupBusy, err)
	case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOENT), errors.Is(err, unix.EPROTONOSUPPORT):
		return fmt.Errorf("nflog: binding log group %d: %w (is the nfnetlink_log module available? modprobe nfnetlink_log)", g, err)
	}
	return fmt.Errorf("nflog: binding log group %d: %w", g, err)
}

// hasNetAdmin reports whether the process has CAP_NET_ADMIN in its
// effective set.
func hasNetAdmin() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.Geteuid() == 0
	}
	return data[unix.CAP_NET_ADMIN/32].Effective&(1<<(unix.CAP_NET_ADMIN%32)) != 0
}

// Groups returns the groups the sensor reads, ours last.
func (s *Sensor) Groups() []uint16 {
	var out []uint16
	for _, g := range s.groups {
		out = append(out, g.num)
	}
	return out
}

// Run reads log messages until ctx ends or Close is called, calling out for
// each probe; it returns at once when ctx ends. out must not keep the
// probe: it is reused for the next message. Run returns nil when stopped,
// an error if the socket fails; it is an error to call it twice.
func (s *Sensor) Run(ctx context.Context, out func(*probe.Probe)) error {
	return s.RunMeta(ctx, func(p *probe.Probe, _ *Meta) { out(p) })
}

// RunMeta is Run with the rest of what the kernel said about each packet:
// its group, hook, interfaces, log prefix, sequence number. Neither
// argument may be kept after out returns.
func (s *Sensor) RunMeta(ctx context.Context, out func(*probe.Probe, *Meta)) error {
	ctx, finish, err := s.life.Start(ctx, "nflog")
	if err != nil {
		return err
	}
	defer finish()

	// A read deadline in the past wakes the blocked read at once.
	woke := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		s.conn.SetReadDeadline(time.Unix(1, 0))
		close(woke)
	})
	defer func() {
		if !stop() {
			<-woke // Close resets the deadline after Run: not before this
		}
	}()

	for _, b := range s.pending {
		s.dec.datagram(b, out)
	}
	s.pending, s.pendingSize = nil, 0
	for {
		n, errno, err := s.sock.recv()
		if ctx.Err() != nil {
			return nil
		}
		switch {
		case err != nil:
			// Our deadline is set only when ctx has ended, checked above.
			return fmt.Errorf("nflog: reading the netlink socket: %w", err)
		case errno == unix.ENOBUFS:
			s.overruns.Add(1)
		case errno == unix.EINTR:
		case errno != 0:
			return fmt.Errorf("nflog: reading the netlink socket: %w", errno)
		default:
			if b, ok := s.datagram(n); ok {
				s.dec.datagram(b, out)
			}
		}
	}
}

// datagram checks the datagram just read: it must come from the kernel
// (port id 0) and fit the buffer (a truncated one is read as far as it
// goes).
func (s *Sensor) datagram(n int) ([]byte, bool) {
	if s.sock.from.Pid != 0 {
		s.foreign.Add(1)
		return nil, false
	}
	if n > len(s.sock.buf) {
		s.truncated.Add(1)
		n = len(s.sock.buf)
	}
	return s.sock.buf[:n], true
}

// Close stops Run, if it is running, unbinds the groups and closes the
// socket. The kernel would unbind them when the socket closes anyway; the
// explicit unbind makes a group free for another reader at once.
func (s *Sensor) Close() error {
	if !s.life.Stop() {
		return nil
	}
	err := s.unbindAll()
	s.conn.Close()
	return err
}

func (s *Sensor) unbindAll() error {
	var first error
	for _, g := range s.bound {
		if err := s.request(configMessage(g.num, cmdUnbind, nil), false); err != nil && first == nil {
			first = fmt.Errorf("nflog: unbinding log group %d: %w", g.num, err)
		}
	}
	s.bound = nil
	return first
}
