package conntrack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Groups selects the conntrack event groups to subscribe to.
type Groups uint8

const (
	GroupNew     Groups = 1 << iota // NFNLGRP_CONNTRACK_NEW
	GroupUpdate                     // NFNLGRP_CONNTRACK_UPDATE
	GroupDestroy                    // NFNLGRP_CONNTRACK_DESTROY

	// DefaultGroups leaves out updates: mapping a flow back to its client
	// needs its birth and death only, and updates (every TCP state change)
	// are most of the traffic on a busy router.
	DefaultGroups = GroupNew | GroupDestroy
)

// nfnetlink multicast group numbers, enum nfnetlink_groups.
var groupNumbers = [...]struct {
	g   Groups
	num uint32
}{{GroupNew, 1}, {GroupUpdate, 2}, {GroupDestroy, 3}}

// DefaultReadBuffer is the socket receive buffer asked for when Config
// leaves it zero: conntrackd's default NetlinkBufferSize (2 MiB), room for
// some ten thousand events (about 200 bytes each) between two reads.
const DefaultReadBuffer = 2 << 20

// Config says where and what to listen to.
type Config struct {
	// NetNS is the file descriptor of the network namespace to follow
	// (from /run/netns/NAME); 0 is the caller's own.
	NetNS int
	// Groups are the event groups to join; zero means DefaultGroups.
	Groups Groups
	// ReadBuffer is the socket's receive buffer in bytes; zero means
	// DefaultReadBuffer. Raised past net.core.rmem_max with
	// SO_RCVBUFFORCE (needs CAP_NET_ADMIN, as joining the groups does).
	ReadBuffer int
}

// Stats counts what a Listener read.
type Stats struct {
	Events    uint64 // events decoded and handed out
	Malformed uint64 // messages that could not be decoded
	// Overruns counts the kernel's ENOBUFS reports: the socket's buffer
	// was full and events were dropped; a Dump resynchronises.
	Overruns uint64
	Other    uint64 // messages that are not conntrack events, skipped
}

// Listener receives conntrack events from the kernel.
type Listener struct {
	cfg  Config
	conn *netlink.Conn

	events, malformed, overruns, other atomic.Uint64
}

// Open subscribes to conntrack events in cfg.NetNS.
func Open(cfg Config) (*Listener, error) {
	if cfg.Groups == 0 {
		cfg.Groups = DefaultGroups
	}
	if cfg.ReadBuffer == 0 {
		cfg.ReadBuffer = DefaultReadBuffer
	}
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: cfg.NetNS})
	if err != nil {
		return nil, fmt.Errorf("conntrack: opening a netfilter netlink socket: %w", err)
	}
	l := &Listener{cfg: cfg, conn: c}
	if err := l.setReadBuffer(cfg.ReadBuffer); err != nil {
		c.Close()
		return nil, err
	}
	for _, g := range groupNumbers {
		if cfg.Groups&g.g == 0 {
			continue
		}
		if err := c.JoinGroup(g.num); err != nil {
			c.Close()
			return nil, fmt.Errorf("conntrack: joining event group %d (is nf_conntrack_netlink available?): %w", g.num, err)
		}
	}
	return l, nil
}

func (l *Listener) setReadBuffer(n int) error {
	rc, err := l.conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("conntrack: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, n)
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("conntrack: setting the receive buffer to %d bytes: %w", n, err)
	}
	return nil
}

// Close closes the socket; a running Run returns.
func (l *Listener) Close() error {
	return l.conn.Close()
}

// Stats returns the counters; safe to call while Run runs.
func (l *Listener) Stats() Stats {
	return Stats{
		Events:    l.events.Load(),
		Malformed: l.malformed.Load(),
		Overruns:  l.overruns.Load(),
		Other:     l.other.Load(),
	}
}

// Run reads events and calls fn for each, until ctx ends (it returns nil)
// or the Listener is closed (nil too), or the socket fails. fn must not keep the *Event: it is reused.
func (l *Listener) Run(ctx context.Context, fn func(*Event)) error {
	stop := context.AfterFunc(ctx, func() {
		l.conn.SetReadDeadline(time.Unix(1, 0))
	})
	defer stop()
	var e Event
	for {
		msgs, err := l.conn.Receive()
		switch {
		case ctx.Err() != nil, errors.Is(err, net.ErrClosed):
			return nil
		case errors.Is(err, unix.ENOBUFS):
			l.overruns.Add(1)
			continue
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return fmt.Errorf("conntrack: reading events: %w", err)
		}
		now := time.Now()
		for _, m := range msgs {
			typ, err := eventType(m.Header)
			if err != nil {
				l.other.Add(1)
				continue
			}
			e = Event{Type: typ, Time: now}
			if err := decode(m.Data, &e); err != nil {
				l.malformed.Add(1)
				continue
			}
			l.events.Add(1)
			fn(&e)
		}
	}
}

// Dump lists the connections tracked now in the Listener's namespace, each
// as an EventNew. It uses a socket of its own, so Run may go on meanwhile;
// a connection may then show up both in the dump and as an event.
func (l *Listener) Dump(ctx context.Context) ([]Event, error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: l.cfg.NetNS})
	if err != nil {
		return nil, fmt.Errorf("conntrack: opening a socket to dump the table: %w", err)
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{Type: msgType(msgCtGet), Flags: netlink.Request | netlink.Dump},
		// nfgenmsg: AF_UNSPEC asks for every family, version 0, res_id 0.
		Data: []byte{unix.AF_UNSPEC, 0, 0, 0},
	})
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("conntrack: dumping the table: %w", err)
	}
	now := time.Now()
	events := make([]Event, 0, len(msgs))
	for _, m := range msgs {
		if m.Header.Type != msgType(msgCtNew) {
			l.other.Add(1)
			continue
		}
		e := Event{Type: EventNew, Time: now}
		if err := decode(m.Data, &e); err != nil {
			l.malformed.Add(1)
			continue
		}
		events = append(events, e)
	}
	return events, nil
}
