package packet

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gopacket/gopacket/afpacket"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// One socket's life: opened (in the host's namespace), read by its own
// goroutine, closed when its interface goes away and reopened when it is
// back.

// slot is one socket: the listen-everywhere one, or one per interface. Its
// reader goroutine alone opens, reads and closes it; mu orders that against
// Stats.
type slot struct {
	name string // configured interface; "" listens everywhere

	mu      sync.Mutex
	tp      *afpacket.TPacket
	ifindex int      // what the socket is bound to (0: everywhere)
	prog    *program // the filter attached
	why     string   // why the socket is closed
	kernel  kernelCounts
	last    afpacket.SocketStatsV3 // gopacket's cumulative (32-bit) counters at the last read
	statsAt time.Time

	packets, probes, ignored, malformed, mismatch, reopens atomic.Uint64
}

type kernelCounts struct{ packets, drops, freezes uint64 }

// open opens sl's socket and attaches the current filter.
func (s *Sensor) open(sl *slot) error {
	ifindex := 0
	if sl.name != "" {
		l, ok := s.host.LinkByName(sl.name)
		if !ok {
			return fmt.Errorf("packet: no interface %q", sl.name)
		}
		ifindex = l.Index
	}
	prog := s.prog.Load()
	var tp *afpacket.TPacket
	err := s.host.Do(func() error {
		opts := []any{
			afpacket.OptSocketType(afpacket.SocketDgram),
			afpacket.OptTPacketVersion(afpacket.TPacketVersion3),
			afpacket.OptBlockSize(s.cfg.BlockSize),
			afpacket.OptNumBlocks(s.cfg.NumBlocks),
			afpacket.OptFrameSize(s.cfg.FrameSize),
			afpacket.OptBlockTimeout(s.cfg.BlockTimeout),
			afpacket.OptPollTimeout(pollTimeout),
		}
		if sl.name != "" {
			opts = append(opts, afpacket.OptInterface(sl.name))
		}
		var err error
		if tp, err = afpacket.NewTPacket(opts...); err != nil {
			return err
		}
		// gopacket binds before the filter can be attached, so a few
		// packets may reach the ring unfiltered; user space copes with any
		// packet, they only cost a little.
		if err := tp.SetBPF(prog.raw); err != nil {
			tp.Close()
			return fmt.Errorf("attaching the filter: %w", err)
		}
		return nil
	})
	if err != nil {
		where := "on all interfaces"
		if sl.name != "" {
			where = "on " + sl.name
		}
		if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			return fmt.Errorf("packet: opening an AF_PACKET socket %s: %w (the packet sensor needs root or CAP_NET_RAW)", where, err)
		}
		return fmt.Errorf("packet: opening an AF_PACKET socket %s: %w", where, err)
	}
	sl.mu.Lock()
	sl.tp, sl.ifindex, sl.prog, sl.why = tp, ifindex, prog, ""
	sl.last, sl.statsAt = afpacket.SocketStatsV3{}, time.Now()
	sl.mu.Unlock()
	return nil
}

// read is one socket's reader loop.
func (s *Sensor) read(ctx context.Context, sl *slot, emit func(*probe.Probe)) {
	f := &framer{host: s.host, all: sl.name == "", fwd: s.fwd}
	var seen uint64
	var n uint32
	idle := true
	for {
		// Checked on every wakeup with nothing to read (at most pollTimeout
		// apart) and every 64 packets when busy.
		if n++; idle || n&63 == 0 {
			select {
			case <-ctx.Done():
				return
			default:
			}
		}
		idle = true
		if g := s.gen.Load(); g != seen {
			seen = g
			s.sync(sl)
		}
		if sl.tp == nil {
			s.reopen(ctx, sl)
			continue
		}
		data, ci, err := sl.tp.ZeroCopyReadPacketData()
		switch {
		case err == nil:
			idle = false
			sl.packets.Add(1)
			switch f.frame(data, ci) {
			case frameProbe:
				sl.probes.Add(1)
				emit(&f.p)
			case frameIgnored:
				sl.ignored.Add(1)
			case frameMalformed:
				sl.malformed.Add(1)
			}
			if f.headerMismatch != 0 {
				sl.mismatch.Add(f.headerMismatch)
				f.headerMismatch = 0
			}
			if n&4095 == 0 {
				s.kernelStats(sl, false)
			}
		case errors.Is(err, afpacket.ErrTimeout):
			s.kernelStats(sl, false)
		case errors.Is(err, afpacket.ErrPoll):
			// The kernel flagged the socket (ENETDOWN: its interface went
			// down or away). The error stays set, so the socket is of no
			// more use: reopen it once the interface is back.
			s.closeSlot(sl, "interface went down or away")
		case errors.Is(err, unix.EINTR):
		default:
			s.closeSlot(sl, err.Error())
		}
	}
}

// sync attaches the latest filter and, for a socket bound to an interface,
// closes it if the interface is gone, down or was replaced (same name, new
// index).
func (s *Sensor) sync(sl *slot) {
	if sl.tp == nil {
		return
	}
	if prog := s.prog.Load(); prog != sl.prog {
		if err := sl.tp.SetBPF(prog.raw); err == nil {
			sl.prog = prog
		}
	}
	if sl.name == "" {
		return
	}
	switch l, ok := s.host.LinkByName(sl.name); {
	case !ok:
		s.closeSlot(sl, "interface deleted")
	case l.Index != sl.ifindex:
		s.closeSlot(sl, "interface replaced")
	case !l.Up:
		s.closeSlot(sl, "interface down")
	}
}

// reopen reopens a closed socket when its interface is there and up, or
// waits for the host's links to change (or the retry interval).
func (s *Sensor) reopen(ctx context.Context, sl *slot) {
	changed := s.host.Changed()
	ready := true
	if sl.name != "" {
		l, ok := s.host.LinkByName(sl.name)
		ready = ok && l.Up
	}
	if ready {
		err := s.open(sl)
		if err == nil {
			sl.reopens.Add(1)
			return
		}
		sl.mu.Lock()
		sl.why = err.Error()
		sl.mu.Unlock()
	}
	t := time.NewTimer(retryInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-changed:
	case <-t.C:
	}
}

func (s *Sensor) closeSlot(sl *slot, why string) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if sl.tp == nil {
		return
	}
	s.kernelStatsLocked(sl)
	sl.tp.Close()
	sl.tp, sl.prog, sl.why = nil, nil, why
}

func (s *Sensor) closeSlots() {
	for _, sl := range s.slots {
		s.closeSlot(sl, "closed")
	}
}

// kernelStats folds the socket's PACKET_STATISTICS into the slot's totals,
// at most once per kernelStatsInterval unless forced.
func (s *Sensor) kernelStats(sl *slot, force bool) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if force || time.Since(sl.statsAt) >= kernelStatsInterval {
		s.kernelStatsLocked(sl)
	}
}

func (s *Sensor) kernelStatsLocked(sl *slot) {
	if sl.tp == nil {
		return
	}
	_, v3, err := sl.tp.SocketStats()
	if err != nil {
		return
	}
	// gopacket keeps uint32 running sums; differences survive a wrap.
	sl.kernel.packets += uint64(uint32(v3.Packets()) - uint32(sl.last.Packets()))
	sl.kernel.drops += uint64(uint32(v3.Drops()) - uint32(sl.last.Drops()))
	sl.kernel.freezes += uint64(uint32(v3.QueueFreezes()) - uint32(sl.last.QueueFreezes()))
	sl.last, sl.statsAt = v3, time.Now()
}
