package packet

// Stats counts what the sensor's sockets saw: totals, and per socket.
type Stats struct {
	SocketStats
	Sockets []SocketStats
	// NATCopies are forwarded packets seen again leaving with this host's
	// address after source NAT, skipped (their arrival was reported).
	NATCopies uint64
}

// SocketStats counts one socket's work. Packets are frames the filter let
// through and user space read; each is a probe, ignored (a duplicate
// sighting, not IP, a forwarded packet leaving) or malformed. The Kernel
// counters are PACKET_STATISTICS: frames the filter accepted, frames dropped
// because the ring was full, and how often the ring froze for lack of a free
// block.
type SocketStats struct {
	Interface string // AllInterfaces or the interface name; "" in totals
	Open      bool
	Closed    string // why the socket is closed, when it is
	Reopens   uint64

	Packets, Probes, Ignored, Malformed uint64

	KernelPackets, KernelDrops, QueueFreezes uint64

	// HeaderMismatch counts frames whose ring header did not look as
	// expected, so direction came from addresses alone. Always 0 unless the
	// kernel's ring layout changes.
	HeaderMismatch uint64
}

// Stats returns the sensor's counters. Safe to call while Run runs.
func (s *Sensor) Stats() Stats {
	var st Stats
	st.NATCopies = s.fwd.hits.Load()
	for _, sl := range s.slots {
		s.kernelStats(sl, true)
		sl.mu.Lock()
		ss := SocketStats{
			Interface:      sl.name,
			Open:           sl.tp != nil,
			Closed:         sl.why,
			Reopens:        sl.reopens.Load(),
			Packets:        sl.packets.Load(),
			Probes:         sl.probes.Load(),
			Ignored:        sl.ignored.Load(),
			Malformed:      sl.malformed.Load(),
			KernelPackets:  sl.kernel.packets,
			KernelDrops:    sl.kernel.drops,
			QueueFreezes:   sl.kernel.freezes,
			HeaderMismatch: sl.mismatch.Load(),
		}
		sl.mu.Unlock()
		if ss.Interface == "" {
			ss.Interface = AllInterfaces
		}
		st.Sockets = append(st.Sockets, ss)
		st.add(ss)
	}
	return st
}

func (t *SocketStats) add(s SocketStats) {
	t.Reopens += s.Reopens
	t.Packets += s.Packets
	t.Probes += s.Probes
	t.Ignored += s.Ignored
	t.Malformed += s.Malformed
	t.KernelPackets += s.KernelPackets
	t.KernelDrops += s.KernelDrops
	t.QueueFreezes += s.QueueFreezes
	t.HeaderMismatch += s.HeaderMismatch
}
