package nflog

import "maps"

// Stats counts what the sensor read. Messages are NFULNL_MSG_PACKET
// messages; each is a probe, ignored (no payload, not IP) or malformed.
type Stats struct {
	Datagrams uint64 // datagrams read (a datagram is a batch of messages)
	Messages  uint64
	Probes    uint64

	// NoPayload counts messages without packet bytes: a rule with
	// `snaplen 0`, or a group another program set to copy metadata only.
	NoPayload uint64
	// Ignored counts payloads that are not IP (ARP logged by a bridge or
	// netdev chain).
	Ignored uint64
	// Malformed counts messages too broken to read: truncated attributes,
	// unreadable IP headers. FirstProblem describes the first.
	Malformed    uint64
	FirstProblem string

	// Overruns counts the kernel's ENOBUFS reports: our socket's buffer was
	// full and it dropped messages. Lost counts the messages dropped, from
	// gaps in each group's sequence numbers.
	Overruns uint64
	Lost     uint64

	// Truncated counts datagrams larger than the read buffer (never seen:
	// the buffer holds the kernel's largest batch), Foreign datagrams not
	// sent by the kernel, Discarded messages read while binding beyond
	// what is held for Run, or while closing.
	Truncated, Foreign, Discarded uint64

	// OtherMessages counts netlink messages that are not logged packets
	// (late acknowledgements, errors) read while running.
	OtherMessages uint64

	// ReadBuffer is the socket's receive buffer as the kernel set it
	// (twice what was asked: the kernel counts its overhead in it).
	ReadBuffer int

	Groups []GroupStats

	// Prefixes counts messages by their rule's log prefix (the first 64
	// distinct prefixes; OtherPrefixes counts the rest).
	Prefixes      map[string]uint64
	OtherPrefixes uint64
}

// GroupStats counts one group's messages.
type GroupStats struct {
	Group    uint16
	Own      bool // our own group: outcome left to the daemon
	Messages uint64
	Probes   uint64
	Lost     uint64 // from gaps in the group's sequence numbers
}

// Stats returns the sensor's counters. Safe to call while Run runs.
func (s *Sensor) Stats() Stats {
	st := s.dec.stats()
	st.Overruns = s.overruns.Load()
	st.Truncated = s.truncated.Load()
	st.Foreign = s.foreign.Load()
	st.Discarded = s.discarded.Load()
	st.ReadBuffer = s.sock.rcvbuf
	return st
}

func (d *decoder) stats() Stats {
	st := Stats{
		Datagrams:     d.datagrams.Load(),
		Messages:      d.messages.Load(),
		Probes:        d.probes.Load(),
		NoPayload:     d.noPayload.Load(),
		Ignored:       d.ignored.Load(),
		Malformed:     d.malformed.Load(),
		OtherMessages: d.otherMsgs.Load(),
	}
	if p := d.firstProblem.Load(); p != nil {
		st.FirstProblem = *p
	}
	for _, g := range d.groups {
		gs := GroupStats{Group: g.num, Own: g.own, Messages: g.messages.Load(), Probes: g.probes.Load(), Lost: g.lost.Load()}
		st.Lost += gs.Lost
		st.Groups = append(st.Groups, gs)
	}
	d.prefixMu.Lock()
	st.Prefixes = make(map[string]uint64, len(d.prefixes))
	for k, v := range maps.All(d.prefixes) {
		st.Prefixes[k] = *v
	}
	st.OtherPrefixes = d.otherPrefixes
	d.prefixMu.Unlock()
	return st
}
