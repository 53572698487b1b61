package kernlog

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// fill checks that the parsed fields make a packet and copies them into p.
func (f *fieldParser) fill(p *probe.Probe, ifaces *ifaceCache) error {
	s := &f.outer
	if err := s.checkTransport(); err != nil {
		return err
	}
	src, dst := s.src.Unmap(), s.dst.Unmap()
	if src.Is4() != dst.Is4() {
		return errors.New("SRC= and DST= mix an IPv4-mapped and an IPv6 address")
	}
	p.Src = netip.AddrPortFrom(src, s.sport)
	p.Dst = netip.AddrPortFrom(dst, s.dport)
	p.Proto = s.proto
	if s.has(kSPT) && s.has(kDPT) {
		p.Known |= probe.KnownPorts
	}
	if s.has(kTTL) || s.has(kHOPLIMIT) {
		p.TTL = s.ttl
		p.Known |= probe.KnownTTL
	}
	if s.has(kID) || s.has(kFRAGID) {
		p.IPID = s.ipid
		p.Known |= probe.KnownIPID
	}
	if s.isTCP() {
		p.Flags = s.flags
		if s.has(kSEQ) {
			p.Seq, p.Ack = s.seq, s.ack
			p.Known |= probe.KnownSeq
		}
		if s.has(kWINDOW) {
			p.Window = s.window
			p.Known |= probe.KnownWindow
		}
		if s.has(kTCPOPT) {
			p.Opts = s.opts
			p.Known |= probe.KnownOptions
		}
	}
	n, known, err := s.payload()
	if err != nil {
		return err
	}
	if known {
		p.Payload = n
		p.Known |= probe.KnownPayload
	}
	p.ICMPType, p.ICMPCode = s.icmpType, s.icmpCode
	switch {
	case s.frag > 0:
		p.Frag = probe.FragLater
	case s.mf:
		p.Frag = probe.FragFirst
	}
	if f.hasInner {
		p.Inner = f.inner.innerOf()
	}
	f.direction(p, ifaces)
	p.Sensor = probe.SensorKernLog
	p.Outcome = probe.OutcomeDropped
	return nil
}

// checkTransport insists on the fields the kernel always prints for a
// protocol unless the packet is a later fragment or was cut short.
func (s *section) checkTransport() error {
	later := s.frag > 0
	cut := s.has(kINCOMPLETE)
	switch {
	case s.isTCP() || s.isUDP():
		ports := s.has(kSPT) || s.has(kDPT)
		switch {
		case later && ports:
			return errors.New("ports in a non-first fragment")
		case !later && !cut && !(s.has(kSPT) && s.has(kDPT)):
			return fmt.Errorf("missing SPT= or DPT= in a %v packet", s.proto)
		}
	case s.isICMP():
		if !later && !cut && !(s.has(kTYPE) && s.has(kCODE)) {
			return fmt.Errorf("missing TYPE= or CODE= in an %v packet", s.proto)
		}
	}
	return nil
}

// payload derives the transport payload length from the lengths logged.
//
// UDP carries its own length; it is used except in a first fragment, whose
// UDP length counts the whole datagram while probe.Decode counts what this
// packet carries. TCP's header length is known only when its options were
// logged (--log-tcp-options, nftables "flags tcp options"), or when the IP
// length leaves room for no payload at all, as in most scan probes.
//
// The IP header length is taken as the minimum (20 bytes plus logged IPv4
// options; 40 plus a logged fragment header for IPv6): without
// --log-ip-options the kernel does not say whether IPv4 options were
// present, and it never prints the length of other IPv6 extension headers.
// Options on TCP and UDP packets are rare enough on today's Internet (many
// routers drop them) that the error is accepted rather than giving up the
// field.
func (s *section) payload() (uint16, bool, error) {
	if s.frag > 0 {
		return 0, false, nil
	}
	if s.proto == probe.UDP && !s.mf && s.has(kULEN) {
		if s.ulen < 8 {
			return 0, false, fmt.Errorf("UDP LEN=%d is shorter than its header", s.ulen)
		}
		return s.ulen - 8, true, nil
	}
	if !s.has(kLEN) || !(s.isTCP() || s.isUDP()) || s.has(kINCOMPLETE) {
		return 0, false, nil
	}
	ip := int64(20 + s.ipOpt)
	if s.v6 {
		ip = 40
		if s.has(kFRAG) {
			ip += 8
		}
	}
	transport := int64(8)
	if s.isTCP() {
		transport = 20 + int64(s.opts.Len)
	}
	n := int64(s.ipLen) - ip - transport
	switch {
	case n < 0:
		return 0, false, fmt.Errorf("LEN=%d is shorter than the headers", s.ipLen)
	case s.isTCP() && !s.has(kTCPOPT) && n > 0:
		return 0, false, nil // options of unknown length may fill the gap
	case n > 0xffff:
		n = 0xffff
	}
	return uint16(n), true, nil
}

// innerOf turns a quoted packet into probe.Inner. As in probe.Decode, a
// quote of a TCP or UDP packet without ports says nothing we can use.
func (s *section) innerOf() probe.Inner {
	if !s.has(kPROTO) || (s.isTCP() || s.isUDP()) && !(s.has(kSPT) && s.has(kDPT)) {
		return probe.Inner{}
	}
	src, dst := s.src.Unmap(), s.dst.Unmap()
	if src.Is4() != dst.Is4() {
		return probe.Inner{}
	}
	in := probe.Inner{
		Valid: true,
		Proto: s.proto,
		Src:   netip.AddrPortFrom(src, s.sport),
		Dst:   netip.AddrPortFrom(dst, s.dport),
	}
	if s.isTCP() && s.has(kSEQ) {
		in.Seq = s.seq
	}
	return in
}

// direction sets Direction and Iface from IN= and OUT=. A forwarded packet
// is filed under the interface it arrived on.
func (f *fieldParser) direction(p *probe.Probe, ifaces *ifaceCache) {
	switch {
	case len(f.in) > 0 && len(f.out) == 0:
		p.Direction = probe.DirInbound
		p.Iface = ifaces.intern(f.in)
	case len(f.in) == 0 && len(f.out) > 0:
		p.Direction = probe.DirOutbound
		p.Iface = ifaces.intern(f.out)
	case len(f.in) > 0:
		p.Direction = probe.DirForwarded
		p.Iface = ifaces.intern(f.in)
	}
}
