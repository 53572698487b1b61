package kernlog

import (
	"errors"
	"fmt"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// The protocol part of a packet: what follows PROTO=, including the packet
// an ICMP error quotes.

// tcpFlagWords are the flag words in the order the kernel prints them.
var tcpFlagWords = [...]struct {
	word string
	bit  probe.TCPFlags
}{{"CWR", probe.CWR}, {"ECE", probe.ECE}, {"URG", probe.URG}, {"ACK", probe.ACK},
	{"PSH", probe.PSH}, {"RST", probe.RST}, {"SYN", probe.SYN}, {"FIN", probe.FIN}}

// transportField reads one field after PROTO=.
func (f *fieldParser) transportField(s *section, tok []byte, inner bool) error {
	if tok[0] == '[' {
		return f.quoteStart(s, tok, inner)
	}
	name, val, kv := split(tok)
	if !kv {
		return f.transportWord(s, tok)
	}
	var (
		k     key
		max   uint64
		valid bool
	)
	switch string(name) {
	case "SRC", "DST", "IN", "OUT", "PROTO", "TTL", "HOPLIMIT", "TOS", "PREC", "TC", "FLOWLBL":
		return fmt.Errorf("%s= after PROTO=", name)
	case "SPT":
		k, max, valid = kSPT, 65535, s.isTCP() || s.isUDP()
	case "DPT":
		k, max, valid = kDPT, 65535, s.isTCP() || s.isUDP()
	case "SEQ":
		k, max, valid = kSEQ, 1<<32-1, s.isTCP()
		if s.isICMP() {
			k, max, valid = kECHOSEQ, 65535, true
		}
	case "ACK":
		k, max, valid = kACK, 1<<32-1, s.isTCP()
	case "WINDOW":
		k, max, valid = kWINDOW, 65535, s.isTCP()
	case "URGP":
		k, max, valid = kURGP, 65535, s.isTCP()
	case "LEN":
		k, max, valid = kULEN, 65535, s.isUDP()
	case "TYPE":
		k, max, valid = kTYPE, 255, s.isICMP()
	case "CODE":
		k, max, valid = kCODE, 255, s.isICMP()
	case "ID":
		k, max, valid = kECHOID, 65535, s.isICMP()
	case "MTU":
		k, max, valid = kMTU, 1<<32-1, s.isICMP()
	case "PARAMETER":
		k, max, valid = kPARAMETER, 255, s.proto == probe.ICMP
	case "RES", "POINTER", "GATEWAY", "SPI", "UID", "GID", "MARK":
		return f.ignoredTransportField(s, tok[:len(name)+1], inner)
	default:
		return nil
	}
	if !valid {
		return fmt.Errorf("%s= in a %v packet", name, s.proto)
	}
	v, ok := parseUint(val, max)
	if !ok {
		return fmt.Errorf("bad %s=%s", name, quote(val))
	}
	if err := s.mark(k, tok[:len(name)+1]); err != nil {
		return err
	}
	switch k {
	case kSPT:
		s.sport = uint16(v)
	case kDPT:
		s.dport = uint16(v)
	case kSEQ:
		s.seq = uint32(v)
	case kACK:
		s.ack = uint32(v)
	case kWINDOW:
		s.window = uint16(v)
	case kULEN:
		s.ulen = uint16(v)
	case kTYPE:
		s.icmpType = uint8(v)
	case kCODE:
		s.icmpCode = uint8(v)
	}
	return nil
}

// ignoredTransportField checks that fields whose values are not used appear
// once and where they belong. name includes the '='.
func (f *fieldParser) ignoredTransportField(s *section, name []byte, inner bool) error {
	var k key
	valid := true
	switch string(name) {
	case "RES=":
		k, valid = kRES, s.isTCP()
	case "POINTER=":
		k, valid = kPOINTER, s.proto == probe.ICMPv6
	case "GATEWAY=":
		k, valid = kGATEWAY, s.proto == probe.ICMP
	case "SPI=":
		k, valid = kSPI, s.proto == protoAH || s.proto == protoESP
	case "UID=", "GID=", "MARK=": // of the socket and skb: never in a quote
		if inner {
			return fmt.Errorf("%s inside a quoted packet", name)
		}
		k = kUID
		if name[0] == 'G' {
			k = kGID
		} else if name[0] == 'M' {
			k = kMARK
		}
	}
	if !valid {
		return fmt.Errorf("%s in a %v packet", name, s.proto)
	}
	return s.mark(k, name)
}

// transportWord reads a bare word after PROTO=: TCP flags, TCP options and
// the kernel's note that the header was cut short.
func (f *fieldParser) transportWord(s *section, tok []byte) error {
	switch string(tok) {
	case "INCOMPLETE": // "INCOMPLETE [%u bytes]": the header was not captured
		if err := s.mark(kINCOMPLETE, tok); err != nil {
			return err
		}
		if n := f.tok.peek(); len(n) > 1 && n[0] == '[' && n[len(n)-1] != ']' {
			f.tok.next()
			if string(f.tok.peek()) == "bytes]" {
				f.tok.next()
			}
		}
		return nil
	case "OPT":
		if !s.isTCP() {
			return nil
		}
		next := f.tok.next()
		if string(next) == "(TRUNCATED)" {
			return nil
		}
		if len(next) < 2 || next[0] != '(' || next[len(next)-1] != ')' {
			return fmt.Errorf("bad TCP options %s", quote(next))
		}
		var buf [40]byte // at most 40 bytes of TCP options (data offset 15)
		n, ok := decodeHex(buf[:], next[1:len(next)-1])
		if !ok {
			return fmt.Errorf("bad TCP options %s", quote(next))
		}
		s.opts = probe.ParseTCPOptions(buf[:n])
		return s.mark(kTCPOPT, tok)
	}
	if !s.isTCP() {
		return nil
	}
	for _, fw := range tcpFlagWords {
		if string(tok) == fw.word {
			if s.flags&fw.bit != 0 {
				return fmt.Errorf("repeated %s", fw.word)
			}
			s.flags |= fw.bit
			return nil
		}
	}
	return nil // AE (accurate ECN, no bit in probe.TCPFlags) and future words
}

// quoteStart reads the "[SRC=... ]" an ICMP error quotes.
func (f *fieldParser) quoteStart(s *section, tok []byte, inner bool) error {
	if inner {
		return errors.New("quote inside a quote")
	}
	if !s.isICMP() {
		return fmt.Errorf("quoted packet in a %v packet", s.proto)
	}
	if s.has(kQUOTE) {
		return errors.New("repeated quoted packet")
	}
	s.seen |= 1 << kQUOTE
	rest := tok[1:]
	f.tok.unread(rest) // read the rest of this word as the quote's first
	switch string(rest) {
	case "TRUNCATED]":
		f.tok.next()
		return nil
	case "TRUNCATED":
		f.tok.next()
		if string(f.tok.peek()) == "]" {
			f.tok.next()
		}
		return nil
	}
	f.hasInner = true
	if err := f.parseSection(&f.inner, true); err != nil {
		return fmt.Errorf("in quoted packet: %w", err)
	}
	if f.inner.v6 != s.v6 {
		return errors.New("ICMP error quotes a packet of the other IP version")
	}
	return nil
}
