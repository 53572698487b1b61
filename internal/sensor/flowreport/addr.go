package flowreport

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
)

// epKind says what a token next to an arrow turned out to be.
type epKind uint8

const (
	epNone     epKind = iota // not an endpoint
	epAddr                   // an address without a port
	epAddrPort               // an address with its port
	epPort                   // a bare port number (the two-column form)
)

// endpoint is one side of a reported packet.
type endpoint struct {
	addr     netip.Addr
	port     uint16
	kind     epKind
	redacted bool // some or all of the address was masked by the reporter
	whole    bool // all of it: its family follows the other side
	form     Format
}

var errNoAddr = errors.New("not an address")

// parseEndpoint reads an endpoint token. It returns epNone and no error for
// text that is not shaped like an endpoint at all, and an error for text
// that is (an address with a slash and a port, say) but is wrong.
func parseEndpoint(tok []byte) (endpoint, error) {
	var ep endpoint
	if len(tok) == 0 {
		return ep, nil
	}
	if allDigits(tok) {
		port, err := parsePort(tok)
		if err != nil {
			return ep, err
		}
		ep.port, ep.kind = port, epPort
		return ep, nil
	}
	if tok[0] == '[' {
		return parseBracketed(tok)
	}
	if i := bytes.LastIndexByte(tok, '/'); i >= 0 {
		return splitEndpoint(tok[:i], tok[i+1:], FormatSlash)
	}
	switch colons := bytes.Count(tok, colonSep); {
	case colons == 1:
		i := bytes.IndexByte(tok, ':')
		return splitEndpoint(tok[:i], tok[i+1:], FormatColon)
	case colons > 1: // IPv6 with no port: ambiguous forms are addresses
		return addrOnly(tok)
	}
	if bytes.Count(tok, dotSep) == 4 {
		i := bytes.LastIndexByte(tok, '.')
		if allDigits(tok[i+1:]) {
			if a, red, err := parseIPv4(tok[:i]); err == nil {
				port, err := parsePort(tok[i+1:])
				if err != nil {
					return ep, err
				}
				return endpoint{addr: a, port: port, kind: epAddrPort, redacted: red, form: FormatDotted}, nil
			}
		}
	}
	return addrOnly(tok)
}

var (
	colonSep = []byte{':'}
	dotSep   = []byte{'.'}
)

func addrOnly(tok []byte) (endpoint, error) {
	ep, err := parseAddr(tok)
	if err == errNoAddr {
		return endpoint{}, nil
	}
	if err != nil {
		return endpoint{}, err
	}
	ep.kind, ep.form = epAddr, FormatPortless
	return ep, nil
}

func splitEndpoint(a, port []byte, form Format) (endpoint, error) {
	ep, err := parseAddr(a)
	if err == errNoAddr {
		return ep, fmt.Errorf("bad address %s", quoteShort(a))
	}
	if err != nil {
		return ep, err
	}
	if !allDigits(port) {
		return ep, fmt.Errorf("bad port %s", quoteShort(port))
	}
	if ep.port, err = parsePort(port); err != nil {
		return ep, err
	}
	ep.kind, ep.form = epAddrPort, form
	return ep, nil
}

// parseBracketed reads "[2001:db8::1]:52218" and "[2001:db8::1]".
func parseBracketed(tok []byte) (endpoint, error) {
	end := bytes.IndexByte(tok, ']')
	if end < 0 {
		return endpoint{}, fmt.Errorf("bad address %s: no closing bracket", quoteShort(tok))
	}
	inner, rest := tok[1:end], tok[end+1:]
	var ep endpoint
	var err error
	if isMaskWord(tok[:end+1]) {
		ep = endpoint{addr: netip.IPv4Unspecified(), redacted: true, whole: true}
	} else if ep, err = parseAddr(inner); err != nil {
		return endpoint{}, fmt.Errorf("bad address %s", quoteShort(tok))
	}
	switch {
	case len(rest) == 0:
		ep.kind, ep.form = epAddr, FormatPortless
	case (rest[0] == ':' || rest[0] == '/') && allDigits(rest[1:]):
		if ep.port, err = parsePort(rest[1:]); err != nil {
			return endpoint{}, err
		}
		ep.kind, ep.form = epAddrPort, FormatColon
		if rest[0] == '/' {
			ep.form = FormatSlash
		}
	default:
		return endpoint{}, fmt.Errorf("bad port after %s", quoteShort(tok))
	}
	return ep, nil
}

// parseAddr reads an IPv4 or IPv6 address, or a masked one. It returns
// errNoAddr for words that are neither.
func parseAddr(b []byte) (endpoint, error) {
	var ep endpoint
	switch {
	case len(b) == 0:
		return ep, errNoAddr
	case bytes.IndexByte(b, ':') >= 0:
		a, ok := parseIPv6(b)
		if !ok && bytes.IndexByte(b, '%') >= 0 { // a zone: rare, let netip allocate for it
			var err error
			a, err = netip.ParseAddr(string(b))
			ok = err == nil
		}
		if !ok {
			if i := bytes.LastIndexByte(b, ':'); allDigits(b[i+1:]) && len(b[i+1:]) > 4 {
				return ep, fmt.Errorf("bad address %s (an IPv6 address with a port is written [addr]:port)", quoteShort(b))
			}
			return ep, fmt.Errorf("bad address %s", quoteShort(b))
		}
		ep.addr = a.Unmap() // ::ffff:a.b.c.d is the IPv4 host
		return ep, nil
	case bytes.IndexByte(b, '.') >= 0:
		a, red, err := parseIPv4(b)
		if err != nil {
			if isMaskWord(b) {
				return endpoint{addr: netip.IPv4Unspecified(), redacted: true, whole: true}, nil
			}
			return ep, err
		}
		ep.addr, ep.redacted = a, red
		return ep, nil
	case isMaskWord(b):
		return endpoint{addr: netip.IPv4Unspecified(), redacted: true, whole: true}, nil
	}
	return ep, errNoAddr
}

// parseIPv6 reads an IPv6 address without a zone (RFC 4291 section 2.2,
// with the embedded IPv4 form). It exists because netip.ParseAddr takes a
// string, and converting each token would allocate.
func parseIPv6(b []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1 // where "::" was, in bytes of ip
	i, n := 0, 0
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis, i = 0, 2
		if i == len(b) {
			return netip.IPv6Unspecified(), true
		}
	}
	for n < 16 {
		v, d := 0, 0
		for ; d < 4 && i+d < len(b); d++ {
			h, ok := hexVal(b[i+d])
			if !ok {
				break
			}
			v = v<<4 | h
		}
		if d == 0 {
			return netip.Addr{}, false
		}
		if i+d < len(b) && b[i+d] == '.' { // embedded IPv4 in the last 32 bits
			if n > 12 || (ellipsis < 0 && n != 12) {
				return netip.Addr{}, false
			}
			a, red, err := parseIPv4(b[i:])
			if err != nil || red {
				return netip.Addr{}, false
			}
			v4 := a.As4()
			copy(ip[n:], v4[:])
			n += 4
			i = len(b)
			break
		}
		ip[n], ip[n+1] = byte(v>>8), byte(v)
		n += 2
		i += d
		if i == len(b) {
			break
		}
		if b[i] != ':' || i+1 == len(b) {
			return netip.Addr{}, false
		}
		i++
		if b[i] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = n
			i++
			if i == len(b) {
				break
			}
		}
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	if ellipsis >= 0 {
		if n == 16 {
			return netip.Addr{}, false // "::" must stand for at least one group
		}
		gap := 16 - n
		copy(ip[ellipsis+gap:], ip[ellipsis:n])
		for j := ellipsis; j < ellipsis+gap; j++ {
			ip[j] = 0
		}
	} else if n != 16 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(ip), true
}

func hexVal(c byte) (int, bool) {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0'), true
	case c|0x20 >= 'a' && c|0x20 <= 'f':
		return int(c|0x20-'a') + 10, true
	}
	return 0, false
}

// parseIPv4 reads a dotted quad in which any octet may be masked ("x",
// "xxx", "*", "yyy"); masked octets become 0. Leading zeros are read as
// decimal, as a human wrote them, not as octal.
func parseIPv4(b []byte) (netip.Addr, bool, error) {
	var oct [4]byte
	redacted := false
	n := 0
	for start := 0; start <= len(b); {
		end := bytes.IndexByte(b[start:], '.')
		if end < 0 {
			end = len(b)
		} else {
			end += start
		}
		if n == 4 {
			return netip.Addr{}, false, fmt.Errorf("bad IPv4 address %s", quoteShort(b))
		}
		part := b[start:end]
		switch {
		case len(part) >= 1 && len(part) <= 3 && allDigits(part):
			v := 0
			for _, c := range part {
				v = v*10 + int(c-'0')
			}
			if v > 255 {
				return netip.Addr{}, false, fmt.Errorf("bad IPv4 address %s: octet %d", quoteShort(b), v)
			}
			oct[n] = byte(v)
		case isMaskOctet(part):
			redacted = true
		default:
			return netip.Addr{}, false, fmt.Errorf("bad IPv4 address %s", quoteShort(b))
		}
		n++
		start = end + 1
	}
	if n != 4 {
		return netip.Addr{}, false, fmt.Errorf("bad IPv4 address %s", quoteShort(b))
	}
	return netip.AddrFrom4(oct), redacted, nil
}

// isMaskOctet reports whether b masks one octet: one to four copies of the
// same letter or of '*', '#', '?' or '_' ("x", "xxx", "yyy", "***"). Words
// with different letters are left alone, so a host name such as
// "www.example.co.uk" is not taken for a masked address.
func isMaskOctet(b []byte) bool {
	if len(b) == 0 || len(b) > 4 {
		return false
	}
	c := b[0]
	if !isLetter(c) && c != '*' && c != '#' && c != '?' && c != '_' {
		return false
	}
	for _, d := range b[1:] {
		if d != c {
			return false
		}
	}
	return true
}

// isMaskWord reports whether b stands for a whole masked address: runs of
// x, * or # ("xxx", "***"), an upper-case placeholder ("SERVERPUBLICIP",
// "REDACTED", "***CENSORED***", "YOUR_IP"), a bracketed word without digits
// ("[redacted]", "<your-ip>"), or dotted mask octets ("x.x.x.x"). Protocol,
// flag, zone, month and day names are not placeholders.
func isMaskWord(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	if len(b) >= 3 && (b[0] == '[' && b[len(b)-1] == ']' || b[0] == '<' && b[len(b)-1] == '>') {
		inner := b[1 : len(b)-1]
		for _, c := range inner {
			if !isLetter(c) && c != '-' && c != '_' && c != ' ' && c != '*' {
				return false
			}
		}
		return len(inner) > 0
	}
	if bytes.IndexByte(b, '.') >= 0 {
		parts := 0
		for rest := b; ; parts++ {
			i := bytes.IndexByte(rest, '.')
			if i < 0 {
				return parts == 3 && isMaskOctet(rest)
			}
			if !isMaskOctet(rest[:i]) {
				return false
			}
			rest = rest[i+1:]
		}
	}
	xs, upper := true, true
	for _, c := range b {
		switch {
		case c == 'x' || c == 'X' || c == '*' || c == '#':
		case c >= 'A' && c <= 'Z' || c == '_' || c == '-':
			xs = false
		default:
			return false
		}
		if c == 'x' {
			upper = false
		}
	}
	if xs {
		return true
	}
	if !upper || len(b) < 2 || isKeyword(b) {
		return false
	}
	return true
}

// parsePort reads a decimal port number.
func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 10 || !allDigits(b) {
		return 0, fmt.Errorf("bad port %s", quoteShort(b))
	}
	v := 0
	for _, c := range b {
		v = v*10 + int(c-'0')
	}
	if v > 65535 {
		return 0, fmt.Errorf("port %d out of range", v)
	}
	return uint16(v), nil
}

func allDigits(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
