// Package bait listens on bait ports (PortSentry's connect mode): TCP and
// UDP ports no service uses, so that a completed connection or a datagram
// to one is a deliberate probe. Each is reported as a probe marked
// probe.BaitConnect. A completed TCP handshake also proves the source
// address is real: nobody can be framed by a spoofed connection.
//
// A port a real service already holds is skipped, and Open says so. The
// package knows nothing of detection or blocking.
package bait

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv6"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Config says which ports are bait.
type Config struct {
	TCP, UDP []uint16
	// Banner is written to each TCP bait connection before it is closed
	// (PortSentry's PORT_BANNER); "" writes nothing.
	Banner string
	Log    *slog.Logger
}

// Skipped is a bait port that could not be used, and why.
type Skipped struct {
	Port  uint16
	Proto probe.Proto
	Why   string
}

func (s Skipped) String() string { return fmt.Sprintf("%d/%s: %s", s.Port, s.Proto, s.Why) }

// Sensor holds the bait sockets.
type Sensor struct {
	cfg  Config
	tcp  []*net.TCPListener
	udp  []*net.UDPConn
	mu   sync.Mutex
	done bool

	connections, datagrams atomic.Uint64
}

// Open binds every configured port, on all addresses, IPv4 and IPv6 (one
// dual-stack socket per port). Ports in use are returned as skipped, not
// as an error; an error means nothing could be bound for another reason
// (no permission for ports below 1024, say) and names the port.
func Open(cfg Config) (*Sensor, []Skipped, error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	s := &Sensor{cfg: cfg}
	var skipped []Skipped
	lc := net.ListenConfig{}
	for _, port := range uniq(cfg.TCP) {
		l, err := lc.Listen(context.Background(), "tcp", fmt.Sprintf("[::]:%d", port))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				skipped = append(skipped, Skipped{port, probe.TCP, "a service already listens there"})
				continue
			}
			s.Close()
			return nil, nil, fmt.Errorf("bait port %d/tcp: %w", port, err)
		}
		s.tcp = append(s.tcp, l.(*net.TCPListener))
	}
	for _, port := range uniq(cfg.UDP) {
		c, err := lc.ListenPacket(context.Background(), "udp", fmt.Sprintf("[::]:%d", port))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				skipped = append(skipped, Skipped{port, probe.UDP, "a service already uses it"})
				continue
			}
			s.Close()
			return nil, nil, fmt.Errorf("bait port %d/udp: %w", port, err)
		}
		s.udp = append(s.udp, c.(*net.UDPConn))
	}
	return s, skipped, nil
}

func uniq(ps []uint16) []uint16 {
	out := slices.Clone(ps)
	slices.Sort(out)
	return slices.Compact(out)
}

// Ports returns the ports actually held, for status and logs.
func (s *Sensor) Ports() (tcp, udp []uint16) {
	for _, l := range s.tcp {
		tcp = append(tcp, uint16(l.Addr().(*net.TCPAddr).Port))
	}
	for _, c := range s.udp {
		udp = append(udp, uint16(c.LocalAddr().(*net.UDPAddr).Port))
	}
	return tcp, udp
}

// Stats counts bait contacts.
func (s *Sensor) Stats() (connections, datagrams uint64) {
	return s.connections.Load(), s.datagrams.Load()
}

// Run reports every bait contact to out until ctx ends. out is called from
// several goroutines (one per socket) and must be safe for that; it must
// not keep the probe.
func (s *Sensor) Run(ctx context.Context, out func(*probe.Probe)) error {
	var wg sync.WaitGroup
	for _, l := range s.tcp {
		wg.Add(1)
		go func() { defer wg.Done(); s.acceptLoop(ctx, l, out) }()
	}
	for _, c := range s.udp {
		wg.Add(1)
		go func() { defer wg.Done(); s.readLoop(ctx, c, out) }()
	}
	<-ctx.Done()
	s.Close()
	wg.Wait()
	return nil
}

func (s *Sensor) acceptLoop(ctx context.Context, l *net.TCPListener, out func(*probe.Probe)) {
	for {
		c, err := l.AcceptTCP()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.cfg.Log.Warn("bait: accepting", "port", l.Addr(), "err", err)
			time.Sleep(10 * time.Millisecond) // EMFILE and the like: do not spin
			continue
		}
		s.connections.Add(1)
		var p probe.Probe
		remote, local := addrPort(c.RemoteAddr()), addrPort(c.LocalAddr())
		p.Time = time.Now()
		p.Src, p.Dst = remote, local
		p.Proto = probe.TCP
		p.Flags = probe.SYN
		p.Known = probe.KnownFlags | probe.KnownPorts
		p.Direction = probe.DirInbound
		p.Sensor = probe.SensorBait
		p.Outcome = probe.OutcomeOpen
		p.Bait = probe.BaitConnect
		out(&p)
		go s.answer(c)
	}
}

// answer writes the banner (bounded in time) and closes the connection.
func (s *Sensor) answer(c *net.TCPConn) {
	defer c.Close()
	if s.cfg.Banner == "" {
		return
	}
	c.SetWriteDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte(s.cfg.Banner + "\r\n"))
}

func (s *Sensor) readLoop(ctx context.Context, c *net.UDPConn, out func(*probe.Probe)) {
	buf := make([]byte, 2048)
	local := addrPort(c.LocalAddr())
	// The socket listens on every address; IPV6_PKTINFO says which one each
	// datagram was sent to (v4-mapped for IPv4 on this dual-stack socket).
	pc := ipv6.NewPacketConn(c)
	pktinfo := pc.SetControlMessage(ipv6.FlagDst, true) == nil
	for {
		n, cm, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			s.cfg.Log.Warn("bait: reading", "port", c.LocalAddr(), "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.datagrams.Add(1)
		var p probe.Probe
		p.Time = time.Now()
		p.Src = addrPort(from)
		dst := local.Addr()
		if pktinfo && cm != nil {
			if a, ok := netip.AddrFromSlice(cm.Dst); ok {
				dst = a.Unmap()
			}
		}
		p.Dst = netip.AddrPortFrom(dst, local.Port())
		p.Proto = probe.UDP
		p.Payload = uint16(min(n, 0xffff))
		p.Known = probe.KnownPorts | probe.KnownPayload
		p.Direction = probe.DirInbound
		p.Sensor = probe.SensorBait
		p.Outcome = probe.OutcomeOpen
		p.Bait = probe.BaitConnect
		out(&p)
	}
}

func addrPort(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.TCPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	case *net.UDPAddr:
		ap := v.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return netip.AddrPort{}
}

// Close closes every bait socket.
func (s *Sensor) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		return nil
	}
	s.done = true
	for _, l := range s.tcp {
		l.Close()
	}
	for _, c := range s.udp {
		c.Close()
	}
	return nil
}
