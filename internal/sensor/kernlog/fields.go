package kernlog

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// The field part of a line, as net/netfilter/nf_log_syslog.c prints it
// (older kernels print the same text from nf_log_ipv4.c, nf_log_ipv6.c and
// nf_log_common.c). Every field is followed by one space; [ ] marks
// optional parts:
//
//	IN=%s OUT=%s [PHYSIN=%s] [PHYSOUT=%s]
//	[MAC=xx:xx:... [TUNNEL=a->b] | MACSRC=%pM MACDST=%pM [VPROTO= VID=] MACPROTO=%04x]   (only with IN)
//	IPv4: SRC=%pI4 DST=%pI4 LEN=%u TOS=0x%02X PREC=0x%02X TTL=%u ID=%u [CE] [DF] [MF] [FRAG:%u] [OPT (hex)]
//	IPv6: SRC=%pI6 DST=%pI6 LEN=%zu TC=%u HOPLIMIT=%u FLOWLBL=%u
//	      per extension header: [OPT ( ] [FRAG:%u [INCOMPLETE] ID:%08x] [AH|ESP SPI=0x%x] [)]
//	PROTO=TCP [INCOMPLETE [%u bytes] | SPT=%u DPT=%u [SEQ=%u ACK=%u] WINDOW=%u RES=0x%02x
//	          [AE] [CWR] [ECE] [URG] [ACK] [PSH] [RST] [SYN] [FIN] URGP=%u [OPT (hex) | OPT (TRUNCATED)]]
//	PROTO=UDP|UDPLITE [SPT=%u DPT=%u LEN=%u]
//	PROTO=ICMP [TYPE=%u CODE=%u [ID=%u SEQ=%u | PARAMETER=%u | [GATEWAY=%pI4] [quote] [MTU=%u]]]
//	PROTO=ICMPv6 [TYPE=%u CODE=%u [ID=%u SEQ=%u | [POINTER=%08x] [quote] [MTU=%u]]]
//	PROTO=AH|ESP SPI=0x%x, or PROTO=%u for any other protocol
//	[UID=%u GID=%u] [MARK=0x%x]
//
// where quote is "[" + the IP part and protocol part of the packet an ICMP
// error quotes + "]". Transport fields are missing from IPv4 later fragments
// (FRAG: offset in 8-byte units > 0) and IPv6 ones (FRAG: byte offset > 0);
// IPv6's INCOMPLETE in a fragment header is its more-fragments flag.
//
// The parser walks the fields in this order. It ignores words it does not
// know, so that a field added by a later kernel (as the AE flag was) does not
// make every line an error, but a field it knows seen twice in the same part,
// SRC= or DST= anywhere but first in the IP part, or an IP field after
// PROTO= is an error: that is what a line forged to make us read an
// attacker's address looks like.

// maxIfname is the longest interface name Linux allows (IFNAMSIZ - 1).
const maxIfname = 15

var (
	errNoOut      = errors.New("IN= without OUT=")
	errNoProto    = errors.New("missing PROTO=")
	errMissingSrc = errors.New("missing SRC=")
)

// tokenizer splits the fields at spaces without copying.
type tokenizer struct {
	b []byte
	i int
}

func (t *tokenizer) next() []byte {
	b, i := t.b, t.i
	for i < len(b) && b[i] == ' ' {
		i++
	}
	j := bytes.IndexByte(b[i:], ' ')
	if j < 0 {
		j = len(b) - i
	}
	t.i = i + j
	return b[i : i+j]
}

// unread pushes back the last len(tok) bytes read.
func (t *tokenizer) unread(tok []byte) { t.i -= len(tok) }

func (t *tokenizer) peek() []byte {
	save := t.i
	tok := t.next()
	t.i = save
	return tok
}

// key names a field for duplicate detection; the same name in different
// parts (LEN= of IPv4 and of UDP, ID= of IP and of an ICMP echo) are
// different keys.
type key uint8

const (
	kSRC key = iota
	kDST
	kLEN
	kTOS
	kPREC
	kTTL
	kID
	kCE
	kDF
	kMF
	kFRAG
	kIPOPT
	kTC
	kHOPLIMIT
	kFLOWLBL
	kFRAGID
	kV6MF
	kPROTO
	kSPT
	kDPT
	kSEQ
	kACK
	kWINDOW
	kRES
	kURGP
	kTCPOPT
	kULEN
	kTYPE
	kCODE
	kECHOID
	kECHOSEQ
	kPARAMETER
	kPOINTER
	kGATEWAY
	kMTU
	kQUOTE
	kINCOMPLETE
	kSPI
	kUID
	kGID
	kMARK
	kPHYSIN
	kPHYSOUT
	kMAC
	kMACSRC
	kMACDST
	kMACPROTO
	kVPROTO
	kVID
	kTUNNEL
)

// section is one IP packet as logged: the packet itself, or the one an ICMP
// error quotes.
type section struct {
	src, dst     netip.Addr
	v6           bool
	proto        probe.Proto
	sport, dport uint16
	ttl          uint8
	ipid         uint16
	ipLen        uint32
	ipOpt        int    // bytes of IPv4 options shown by OPT (hex)
	frag         uint32 // fragment offset as printed
	mf           bool   // more fragments follow
	seq, ack     uint32
	window       uint16
	flags        probe.TCPFlags
	opts         probe.TCPOpts
	ulen         uint16
	icmpType     uint8
	icmpCode     uint8
	seen         uint64
}

func (s *section) has(k key) bool { return s.seen&(1<<k) != 0 }

// mark records k and fails, naming the field, if it was seen before. name
// is always one of the field names this file matched, never raw input.
func (s *section) mark(k key, name []byte) error {
	if s.has(k) {
		return fmt.Errorf("repeated %s", name)
	}
	s.seen |= 1 << k
	return nil
}

// fieldParser reads the fields of one line, starting at "IN=".
type fieldParser struct {
	tok      tokenizer
	in, out  []byte
	outer    section
	inner    section
	hasInner bool
}

func (f *fieldParser) parse() error {
	if err := f.parseHead(); err != nil {
		return err
	}
	return f.parseSection(&f.outer, false)
}

// parseHead reads IN=, OUT= and the link-layer fields up to SRC=.
func (f *fieldParser) parseHead() error {
	f.in = f.tok.next()[len("IN="):] // findFields put IN= name OUT= here
	f.out = f.tok.next()[len("OUT="):]
	if err := checkIfname(f.in); err != nil {
		return fmt.Errorf("IN=: %w", err)
	}
	if err := checkIfname(f.out); err != nil {
		return fmt.Errorf("OUT=: %w", err)
	}
	var head section // only its seen bits are used
	for {
		tok := f.tok.next()
		if len(tok) == 0 {
			return errMissingSrc
		}
		if bytes.HasPrefix(tok, []byte("SRC=")) {
			f.tok.unread(tok)
			return nil
		}
		name, _, kv := split(tok)
		if !kv {
			continue
		}
		var k key
		switch string(name) {
		case "IN", "OUT":
			return fmt.Errorf("repeated %s=", name)
		case "PHYSIN":
			k = kPHYSIN
		case "PHYSOUT":
			k = kPHYSOUT
		case "MAC":
			k = kMAC
		case "MACSRC":
			k = kMACSRC
		case "MACDST":
			k = kMACDST
		case "MACPROTO":
			k = kMACPROTO
		case "VPROTO":
			k = kVPROTO
		case "VID":
			k = kVID
		case "TUNNEL":
			k = kTUNNEL
		default:
			continue // a word of a future kernel, or of a MAC= we do not read
		}
		if err := head.mark(k, tok[:len(name)+1]); err != nil {
			return err
		}
	}
}

// checkIfname refuses names no kernel would print: too long, or holding
// control characters (which would end up in reports and terminals).
func checkIfname(b []byte) error {
	if len(b) > maxIfname {
		return fmt.Errorf("interface name %s longer than %d bytes", quote(b), maxIfname)
	}
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("control character in interface name %s", quote(b))
		}
	}
	return nil
}

// parseSection reads an IP part and its protocol part. For a quote it stops
// at the closing "]".
func (f *fieldParser) parseSection(s *section, inner bool) error {
	tok := f.tok.next()
	if !bytes.HasPrefix(tok, []byte("SRC=")) {
		return fmt.Errorf("quoted packet starts with %s, not SRC=", quote(tok))
	}
	var ok bool
	if s.src, ok = parseAddr(tok[4:]); !ok {
		return fmt.Errorf("bad address SRC=%s", quote(tok[4:]))
	}
	s.v6 = s.src.Is6()
	tok = f.tok.next()
	if !bytes.HasPrefix(tok, []byte("DST=")) {
		return fmt.Errorf("%s where DST= must follow SRC=", quote(tok))
	}
	if s.dst, ok = parseAddr(tok[4:]); !ok {
		return fmt.Errorf("bad address DST=%s", quote(tok[4:]))
	}
	if s.dst.Is6() != s.v6 {
		return errors.New("SRC= and DST= are of different address families")
	}
	s.seen = 1<<kSRC | 1<<kDST
	for {
		tok = f.tok.next()
		if len(tok) == 0 {
			if !s.has(kPROTO) && !inner {
				return errNoProto
			}
			return nil // a quote cut short by the kernel's line limit is used as far as it goes
		}
		if inner && (string(tok) == "]" || string(tok) == "TRUNCATED]") {
			return nil
		}
		var err error
		if s.has(kPROTO) {
			err = f.transportField(s, tok, inner)
		} else {
			err = f.ipField(s, tok)
		}
		if err != nil {
			return err
		}
	}
}

// split cuts "KEY=value" at the first '='; ok is false for a bare word. The
// longest field name is PARAMETER; a longer "name" is a word we do not know.
func split(tok []byte) (name, val []byte, ok bool) {
	for i := 0; i < len(tok) && i < 12; i++ {
		if tok[i] == '=' {
			return tok[:i], tok[i+1:], true
		}
	}
	return tok, nil, false
}

// ipField reads one field of the IP part (before PROTO=).
func (f *fieldParser) ipField(s *section, tok []byte) error {
	name, val, kv := split(tok)
	if !kv {
		return f.ipWord(s, tok)
	}
	var k key
	var max uint64
	switch string(name) {
	case "SRC", "DST", "IN", "OUT":
		return fmt.Errorf("repeated %s=", name)
	case "LEN":
		k, max = kLEN, 1<<32-1 // IPv6 jumbograms and BIG TCP exceed 65535
	case "TTL":
		k, max = kTTL, 255
	case "HOPLIMIT":
		k, max = kHOPLIMIT, 255
	case "ID":
		k, max = kID, 65535
	case "TOS", "PREC", "TC", "FLOWLBL":
		return f.ignoredIPField(s, tok[:len(name)+1])
	case "PROTO":
		return s.setProto(tok[:len(name)+1], val)
	default:
		return nil // SPI= of an IPv6 AH header, or a future field
	}
	if k == kTTL && s.v6 || k == kID && s.v6 || k == kHOPLIMIT && !s.v6 {
		return fmt.Errorf("%s= in an IPv%d packet", name, ipVersion(s.v6))
	}
	v, ok := parseUint(val, max)
	if !ok {
		return fmt.Errorf("bad %s=%s", name, quote(val))
	}
	if err := s.mark(k, tok[:len(name)+1]); err != nil {
		return err
	}
	switch k {
	case kLEN:
		s.ipLen = uint32(v)
	case kTTL, kHOPLIMIT:
		s.ttl = uint8(v)
	case kID:
		s.ipid = uint16(v)
	}
	return nil
}

// ignoredIPField checks TOS=, PREC=, TC= and FLOWLBL= belong to the family
// and appear once; their values are not used. name includes the '='.
func (f *fieldParser) ignoredIPField(s *section, name []byte) error {
	k, v6 := kTOS, false
	switch string(name) {
	case "PREC=":
		k = kPREC
	case "TC=":
		k, v6 = kTC, true
	case "FLOWLBL=":
		k, v6 = kFLOWLBL, true
	}
	if v6 != s.v6 {
		return fmt.Errorf("%s in an IPv%d packet", name, ipVersion(s.v6))
	}
	return s.mark(k, name)
}

func ipVersion(v6 bool) int {
	if v6 {
		return 6
	}
	return 4
}

// ipWord reads a bare word of the IP part: IPv4 flags, FRAG:, IPv4 options
// and IPv6 extension headers.
func (f *fieldParser) ipWord(s *section, tok []byte) error {
	switch string(tok) {
	case "CE":
		return s.mark(kCE, tok)
	case "DF":
		return s.mark(kDF, tok)
	case "MF":
		if s.v6 {
			return errors.New("MF in an IPv6 packet")
		}
		s.mf = true
		return s.mark(kMF, tok)
	case "INCOMPLETE": // IPv6 fragment header: more fragments follow
		if !s.v6 || !s.has(kFRAG) {
			return errors.New("INCOMPLETE before PROTO= outside an IPv6 fragment header")
		}
		s.mf = true
		return s.mark(kV6MF, tok)
	case "OPT":
		next := f.tok.peek()
		if len(next) < 2 || next[0] != '(' || next[len(next)-1] != ')' {
			return nil // IPv6 "OPT ( ... )": the words inside are read one by one
		}
		f.tok.next()
		if s.v6 {
			return nil
		}
		var buf [40]byte // at most 40 bytes of IPv4 options (IHL 15)
		n, ok := decodeHex(buf[:], next[1:len(next)-1])
		if !ok {
			return fmt.Errorf("bad IP options %s", quote(next))
		}
		s.ipOpt = n
		return s.mark(kIPOPT, tok)
	}
	switch {
	case bytes.HasPrefix(tok, []byte("FRAG:")):
		max := uint64(8191) // IPv4: 13-bit offset in 8-byte units
		if s.v6 {
			max = 65528 // IPv6: byte offset, a multiple of 8
		}
		v, ok := parseUint(tok[5:], max)
		if !ok || s.v6 && v%8 != 0 {
			return fmt.Errorf("bad fragment offset %s", quote(tok))
		}
		s.frag = uint32(v)
		return s.mark(kFRAG, tok[:5])
	case bytes.HasPrefix(tok, []byte("ID:")):
		v, ok := parseHex32(tok[3:])
		if !ok || !s.v6 {
			return fmt.Errorf("bad fragment ID %s", quote(tok))
		}
		s.ipid = uint16(v) // the low 16 bits, as probe.Decode keeps them
		return s.mark(kFRAGID, tok[:3])
	}
	return nil // "(", ")", "AH", "ESP" and words we do not know
}

func (s *section) setProto(label, val []byte) error {
	var p probe.Proto
	switch string(val) {
	case "TCP":
		p = probe.TCP
	case "UDP":
		p = probe.UDP
	case "UDPLITE":
		p = protoUDPLite
	case "ICMP":
		p = probe.ICMP
	case "ICMPv6":
		p = probe.ICMPv6
	case "AH":
		p = protoAH
	case "ESP":
		p = protoESP
	default:
		v, ok := parseUint(val, 255)
		if !ok {
			return fmt.Errorf("unknown protocol PROTO=%s", quote(val))
		}
		p = probe.Proto(v)
	}
	if p == probe.ICMP && s.v6 || p == probe.ICMPv6 && !s.v6 {
		return fmt.Errorf("PROTO=%s in an IPv%d packet", quote(val), ipVersion(s.v6))
	}
	s.proto = p
	return s.mark(kPROTO, label)
}

const (
	protoESP     probe.Proto = 50
	protoAH      probe.Proto = 51
	protoUDPLite probe.Proto = 136
)

func (s *section) isTCP() bool  { return s.proto == probe.TCP }
func (s *section) isUDP() bool  { return s.proto == probe.UDP || s.proto == protoUDPLite }
func (s *section) isICMP() bool { return s.proto == probe.ICMP || s.proto == probe.ICMPv6 }

// quote renders a piece of the line for an error message: quoted, escaped,
// and cut short so a hostile line cannot make a huge error.
func quote(b []byte) string {
	const max = 40
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}
