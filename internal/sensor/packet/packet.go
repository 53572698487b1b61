// Package packet is the live packet sensor: AF_PACKET sockets with a
// TPACKET_V3 ring (gopacket/afpacket) and a kernel-side classic BPF filter
// that lets into user space only what port scan detection needs (SYN, FIN,
// RST and flagless TCP, UDP, ICMP unreachables; see filter.go). Frames are
// decoded by probe.Decode without allocating, given a direction from the
// ring header's packet type and the host's addresses, and handed to the
// caller as probes.
//
// The sockets are SOCK_DGRAM ("cooked"): every frame starts at its IP header,
// so one socket serves Ethernet, loopback, tun and WireGuard devices alike.
// With no interfaces configured, one socket bound to no interface sees every
// interface, including those created after Open. With interfaces
// configured, each gets its own socket bound to it; an interface that goes
// down or is deleted is closed and reopened when it is back (by name).
//
// Sockets are created in the network namespace of the host view (see
// host.Host.Do): AF_PACKET sockets, like all sockets, belong to the
// namespace they were created in.
//
// The package knows nothing of detection, policy or blocking: it says what
// crossed the wire.
package packet

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/bpf"

	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor"
)

// Config configures a Sensor. The zero value listens on every interface.
type Config struct {
	// Interfaces to listen on, by name. Empty (or "all") listens on every
	// interface with one socket.
	Interfaces []string

	// BlockSize and NumBlocks size each socket's ring: 16 blocks of 256 KiB,
	// 4 MiB. A frame takes 96 bytes of header plus the captured bytes
	// (at most SnapLen), so a ring holds 11,000 to 26,000 frames: 10 to 25
	// ms of a 1 Mpps flood while the reader is busy elsewhere.
	BlockSize int
	NumBlocks int

	// FrameSize is TPACKET_V3's tp_frame_size, an accounting unit that must
	// divide BlockSize; V3 packs frames of any size into a block. Default 2048.
	FrameSize int

	// SnapLen is how many bytes of each accepted packet the filter copies:
	// the headers (IPv6 with extension headers, TCP with options, an ICMP
	// error and the header it quotes). Default 256.
	SnapLen int

	// BlockTimeout is how long the kernel waits before handing over a block
	// that is not full: the latency of a probe on a quiet link. Default 10 ms.
	BlockTimeout time.Duration

	// AllUDP passes every UDP datagram to user space. By default datagrams
	// to (and replies from) ports where a UDP socket listens on a
	// non-loopback address, outside the ephemeral port range, are dropped
	// in the kernel, and the filter is rebuilt when listeners change: a busy
	// DNS or QUIC server's traffic is not a port probe. The price is that
	// first contacts with those open services are not seen as successes. A
	// service inside the ephemeral range (WireGuard's 51820 with Linux's
	// default range 32768-60999) is not excluded.
	AllUDP bool
}

// Defaults.
const (
	DefaultBlockSize    = 256 << 10
	DefaultNumBlocks    = 16
	DefaultFrameSize    = 2048
	DefaultSnapLen      = 256
	DefaultBlockTimeout = 10 * time.Millisecond

	// AllInterfaces is how Interfaces names the listen-everywhere socket.
	AllInterfaces = "all"

	// pollTimeout bounds how long a reader blocks with nothing to read, so
	// Run returns within it of its context ending.
	pollTimeout = 50 * time.Millisecond
	// retryInterval is how often a socket that could not be reopened is
	// tried again (besides whenever the host's links change).
	retryInterval = time.Second
	// kernelStatsInterval: PACKET_STATISTICS counters are 32-bit and reset
	// on read; reading them this often keeps the 64-bit totals exact.
	kernelStatsInterval = time.Second
)

func (c *Config) defaults() error {
	if c.BlockSize == 0 {
		c.BlockSize = DefaultBlockSize
	}
	if c.NumBlocks == 0 {
		c.NumBlocks = DefaultNumBlocks
	}
	if c.FrameSize == 0 {
		c.FrameSize = DefaultFrameSize
	}
	if c.SnapLen == 0 {
		c.SnapLen = DefaultSnapLen
	}
	if c.BlockTimeout == 0 {
		c.BlockTimeout = DefaultBlockTimeout
	}
	switch page := os.Getpagesize(); {
	case c.BlockSize%page != 0:
		return fmt.Errorf("packet: block size %d is not a multiple of the page size %d", c.BlockSize, page)
	case c.FrameSize <= dgramDataOffset || c.FrameSize%16 != 0 || c.BlockSize%c.FrameSize != 0:
		return fmt.Errorf("packet: frame size %d must be a multiple of 16 above %d that divides the block size %d", c.FrameSize, dgramDataOffset, c.BlockSize)
	case c.NumBlocks < 1:
		return fmt.Errorf("packet: %d ring blocks", c.NumBlocks)
	case c.SnapLen < 64:
		return fmt.Errorf("packet: snap length %d is too short for the headers (at least 64)", c.SnapLen)
	case c.BlockTimeout < time.Millisecond:
		return fmt.Errorf("packet: block timeout %v is below the kernel's 1 ms resolution", c.BlockTimeout)
	}
	return nil
}

// Sensor captures packets on its sockets until closed.
type Sensor struct {
	cfg   Config
	host  *host.Host
	slots []*slot
	prog  atomic.Pointer[program] // the filter the sockets should have
	gen   atomic.Uint64           // bumped when the filter or the host's links change
	fwd   *forwardedSeen          // shared by the sockets' framers

	life sensor.Once // Run once; Close stops it
}

// program is one version of the filter.
type program struct {
	raw      []bpf.RawInstruction
	udpPorts []uint16
}

// Open opens the sensor's sockets, in h's network namespace, with the filter
// attached. It needs root or CAP_NET_RAW. A configured interface that does
// not exist is an error here; one that disappears later is waited for.
func Open(cfg Config, h *host.Host) (*Sensor, error) {
	if h == nil {
		return nil, errors.New("packet: a host view is needed (addresses decide direction)")
	}
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	s := &Sensor{cfg: cfg, host: h, fwd: newForwardedSeen()}
	if err := s.refilter(); err != nil {
		return nil, err
	}
	if len(cfg.Interfaces) == 0 || slices.Contains(cfg.Interfaces, AllInterfaces) {
		s.slots = []*slot{{}}
	} else {
		for _, name := range cfg.Interfaces {
			if _, ok := h.LinkByName(name); !ok {
				return nil, fmt.Errorf("packet: no interface %q here (see `ip link`)", name)
			}
			s.slots = append(s.slots, &slot{name: name})
		}
	}
	for _, sl := range s.slots {
		if err := s.open(sl); err != nil {
			s.closeSlots()
			return nil, err
		}
	}
	return s, nil
}

// refilter rebuilds the filter for the host's current UDP listeners.
//
// Only ports outside the ephemeral range count as services. An unconnected
// UDP socket in the range was most likely given its port by the kernel: a
// client, or a scanner that sends from one socket to many hosts, whose
// datagrams must stay visible for outbound detection. The exclusion has to
// cover both directions (a DNS server's replies without the queries they
// answer would look like the server spraying datagrams), so it can only be
// made for real services.
func (s *Sensor) refilter() error {
	var ports []uint16
	if !s.cfg.AllUDP {
		lo, hi := s.host.EphemeralPorts()
		for _, l := range s.host.Listeners() {
			p := l.Addr.Port()
			if l.Proto == probe.UDP && !l.Addr.Addr().IsLoopback() && (p < lo || p > hi) {
				ports = append(ports, p)
			}
		}
		slices.Sort(ports)
		ports = slices.Compact(ports)
	}
	if old := s.prog.Load(); old != nil && slices.Equal(old.udpPorts, ports) {
		return nil
	}
	raw, err := Filter(uint32(s.cfg.SnapLen), ports)
	if err != nil {
		return fmt.Errorf("packet: building the filter: %w", err)
	}
	s.prog.Store(&program{raw: raw, udpPorts: ports})
	return nil
}

// Run reads every socket until ctx ends or Close is called, calling out for
// each probe. Each socket has its own goroutine; calls to out are
// serialised, so out need not be safe for concurrent use. out must not keep
// the probe: it is reused for the next packet. A socket that fails is
// reopened (see Stats for why it is closed), so Run returns only when
// stopped, with nil; it is an error to call it twice.
func (s *Sensor) Run(ctx context.Context, out func(*probe.Probe)) error {
	ctx, finish, err := s.life.Start(ctx, "packet")
	if err != nil {
		return err
	}
	defer finish()

	emit := out
	if len(s.slots) > 1 {
		var mu sync.Mutex
		emit = func(p *probe.Probe) {
			mu.Lock()
			defer mu.Unlock()
			out(p)
		}
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		s.follow(ctx)
	}()
	for _, sl := range s.slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.read(ctx, sl, emit)
		}()
	}
	wg.Wait()
	return nil
}

// follow rebuilds the filter when listeners change and tells the readers to
// look at the host's links again.
func (s *Sensor) follow(ctx context.Context) {
	for {
		changed := s.host.Changed()
		// An error cannot happen with a Config Open accepted; the old
		// filter stays.
		_ = s.refilter()
		s.gen.Add(1)
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
	}
}

// Close stops Run, if it is running, and closes the sockets.
func (s *Sensor) Close() error {
	s.life.Stop()
	s.closeSlots()
	return nil
}

// Interfaces names what the sensor listens on: the configured interfaces,
// or AllInterfaces.
func (s *Sensor) Interfaces() []string {
	var out []string
	for _, sl := range s.slots {
		if sl.name == "" {
			out = append(out, AllInterfaces)
		} else {
			out = append(out, sl.name)
		}
	}
	return out
}
