package kernlog

import "net/netip"

// Hand-written scanners for the numbers and addresses of a log line. They
// work on byte slices and never allocate: netip.ParseAddr would need a string
// copy of every address and keeps the input in its error, so it allocates on
// every line. The address parsers accept exactly what netip.ParseAddr accepts,
// except IPv6 zones; FuzzAddr checks that.

// parseUint parses an unsigned decimal of at most 10 digits that is not
// larger than max. The kernel prints these with %u: no sign, no spaces.
func parseUint(b []byte, max uint64) (uint64, bool) {
	if len(b) == 0 || len(b) > 10 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + uint64(c-'0')
	}
	return v, v <= max
}

// hexVal returns the value of one hex digit, or -1.
func hexVal(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// parseHex32 parses 1 to 8 hex digits.
func parseHex32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		d := hexVal(c)
		if d < 0 {
			return 0, false
		}
		v = v<<4 | uint32(d)
	}
	return v, true
}

// decodeHex decodes pairs of hex digits into dst and returns the number of
// bytes written; it fails on odd length, a non-hex digit or overflow of dst.
func decodeHex(dst []byte, b []byte) (int, bool) {
	if len(b)%2 != 0 || len(b)/2 > len(dst) {
		return 0, false
	}
	for i := 0; i < len(b); i += 2 {
		hi, lo := hexVal(b[i]), hexVal(b[i+1])
		if hi < 0 || lo < 0 {
			return 0, false
		}
		dst[i/2] = byte(hi<<4 | lo)
	}
	return len(b) / 2, true
}

// parseAddr parses an IPv4 or IPv6 address in any textual form netip
// accepts, without a zone. The kernel prints IPv6 uncompressed (%pI6:
// "2001:0db8:0000:...") but other tools and tests write "2001:db8::1".
func parseAddr(b []byte) (netip.Addr, bool) {
	for _, c := range b {
		if c == ':' {
			return parseIPv6(b)
		}
	}
	return parseIPv4(b)
}

// parseIPv4 parses a dotted quad; like netip it rejects leading zeros, which
// some resolvers read as octal.
func parseIPv4(b []byte) (netip.Addr, bool) {
	var a [4]byte
	i := 0
	for n := 0; n < 4; n++ {
		if n > 0 {
			if i >= len(b) || b[i] != '.' {
				return netip.Addr{}, false
			}
			i++
		}
		start, v := i, 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' && i-start < 3 {
			v = v*10 + int(b[i]-'0')
			i++
		}
		if i == start || v > 255 || i-start > 1 && b[start] == '0' {
			return netip.Addr{}, false
		}
		a[n] = byte(v)
	}
	if i != len(b) {
		return netip.Addr{}, false
	}
	return netip.AddrFrom4(a), true
}

// parseIPv6 follows netip's parseIPv6 rule for rule: groups of one to four
// hex digits, at most one "::" standing for at least one zero group, and an
// optional dotted quad in the last 32 bits. Zones ("%eth0") are refused.
func parseIPv6(b []byte) (netip.Addr, bool) {
	var ip [16]byte
	ellipsis := -1
	if len(b) >= 2 && b[0] == ':' && b[1] == ':' {
		ellipsis = 0
		b = b[2:]
		if len(b) == 0 {
			return netip.IPv6Unspecified(), true
		}
	}
	i := 0
	for i < 16 {
		off, acc := 0, 0
		for off < len(b) {
			d := hexVal(b[off])
			if d < 0 {
				break
			}
			if off == 4 {
				return netip.Addr{}, false // more than four digits in a group
			}
			acc = acc<<4 | d
			off++
		}
		if off == 0 {
			return netip.Addr{}, false
		}
		if off < len(b) && b[off] == '.' {
			if ellipsis < 0 && i != 12 || i+4 > 16 {
				return netip.Addr{}, false
			}
			v4, ok := parseIPv4(b)
			if !ok {
				return netip.Addr{}, false
			}
			a := v4.As4()
			copy(ip[i:], a[:])
			i += 4
			b = nil
			break
		}
		ip[i], ip[i+1] = byte(acc>>8), byte(acc)
		i += 2
		b = b[off:]
		if len(b) == 0 {
			break
		}
		if b[0] != ':' || len(b) == 1 {
			return netip.Addr{}, false
		}
		b = b[1:]
		if b[0] == ':' {
			if ellipsis >= 0 {
				return netip.Addr{}, false
			}
			ellipsis = i
			b = b[1:]
			if len(b) == 0 {
				break
			}
		}
	}
	if len(b) != 0 {
		return netip.Addr{}, false
	}
	if i < 16 {
		if ellipsis < 0 {
			return netip.Addr{}, false
		}
		n := 16 - i
		for j := i - 1; j >= ellipsis; j-- {
			ip[j+n] = ip[j]
		}
		clear(ip[ellipsis : ellipsis+n])
	} else if ellipsis >= 0 {
		return netip.Addr{}, false
	}
	return netip.AddrFrom16(ip), true
}
