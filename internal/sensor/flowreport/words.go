package flowreport

import (
	"bytes"
	"fmt"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// facts are what the words of a line say besides the endpoints and the
// time: the protocol, TCP flags, and CERT.br's parenthesised value.
type facts struct {
	proto    probe.Proto
	protoSet bool
	flags    probe.TCPFlags
	flagsSet bool
	aux      int64
	auxSet   bool
}

func (f *facts) setProto(p probe.Proto) error {
	if p == probe.ICMPv6 {
		p = probe.ICMP // the family decides which; "icmp" on an IPv6 line is not a conflict
	}
	if f.protoSet && f.proto != p {
		return fmt.Errorf("conflicting protocols %v and %v", f.proto, p)
	}
	f.proto, f.protoSet = p, true
	return nil
}

func (f *facts) addFlags(fl probe.TCPFlags) {
	f.flags |= fl
	f.flagsSet = true
}

type key uint8

const (
	keyNone key = iota
	keyProto
	keyFlags
)

// scan reads the protocol and flag words of b.
func (f *facts) scan(b []byte) error {
	prev := keyNone
	for i := 0; i < len(b); {
		if !isWordByte(b[i]) {
			i++
			continue
		}
		s := i
		for i < len(b) && isWordByte(b[i]) {
			i++
		}
		bracketed := s > 0 && b[s-1] == '[' && i < len(b) && b[i] == ']'
		k, err := f.word(b[s:i], prev, bracketed)
		if err != nil {
			return err
		}
		prev = k
	}
	return nil
}

// isWordByte: letters, digits and the punctuation that belongs inside the
// words we look for ("6(0)", "tcp(6)", "SYN/ACK", "ipv6-icmp", "S.").
func isWordByte(c byte) bool {
	return isLetter(c) || isDigit(c) || c == '.' || c == '(' || c == ')' || c == '/' || c == '-' || c == '_' || c == '+'
}

// word interprets one word; it returns the key the word sets for the next.
func (f *facts) word(w []byte, prev key, bracketed bool) (key, error) {
	if n, aux, ok := numParen(w); ok { // CERT.br "6(0)"
		if n > 255 {
			return keyNone, fmt.Errorf("bad protocol number %d", n)
		}
		f.aux, f.auxSet = aux, true
		return keyNone, f.setProto(probe.Proto(n))
	}
	if p, n, ok := wordParen(w); ok { // honeyd "tcp(6)"
		if n != int64(p) {
			return keyNone, fmt.Errorf("conflicting protocols %v and %d", p, n)
		}
		return keyNone, f.setProto(p)
	}
	if len(w) > 1 && w[0] == '(' && w[len(w)-1] == ')' {
		w = w[1 : len(w)-1]
	}
	switch prev {
	case keyProto:
		if allDigits(w) {
			if len(w) > 3 || atoi(w) > 255 {
				return keyNone, fmt.Errorf("bad protocol number %s", quoteShort(w))
			}
			return keyNone, f.setProto(probe.Proto(atoi(w)))
		}
	case keyFlags:
		if fl, ok := parseFlagValue(w); ok {
			f.addFlags(fl)
			return keyNone, nil
		}
	}
	if fl, ok := flagLetters(w); ok && (bracketed || len(w) > 1 && w[len(w)-1] == '.' || len(w) == 1 && w[0] == 'S') {
		f.addFlags(fl) // tcpdump "[S]", "S.", a lone "S"
		return keyNone, nil
	}
	w = trimDot(w)
	if p, ok := protoWord(w); ok {
		return keyNone, f.setProto(p)
	}
	if fl, ok := flagWords(w); ok {
		f.addFlags(fl)
		return keyNone, nil
	}
	switch lowerWord(w) {
	case "proto", "protocol", "prot", "ipproto":
		return keyProto, nil
	case "flags", "flag", "tcpflags", "tcp_flags":
		return keyFlags, nil
	}
	return keyNone, nil
}

func trimDot(w []byte) []byte {
	for len(w) > 1 && w[len(w)-1] == '.' {
		w = w[:len(w)-1]
	}
	return w
}

// lowerWord lower-cases short words into a string without allocating when
// the result is only compared; longer words give "".
func lowerWord(w []byte) string {
	var buf [12]byte
	if len(w) > len(buf) {
		return ""
	}
	for i, c := range w {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return string(buf[:len(w)])
}

// numParen reads "6(0)": a protocol number and a value in parentheses.
func numParen(w []byte) (n, aux int64, ok bool) {
	d := digitsAt(w, 0)
	if d == 0 || d > 3 || d+2 >= len(w) || w[d] != '(' || w[len(w)-1] != ')' {
		return 0, 0, false
	}
	in := w[d+1 : len(w)-1]
	if !allDigits(in) || len(in) > 9 {
		return 0, 0, false
	}
	return int64(atoi(w[:d])), int64(atoi(in)), true
}

// wordParen reads honeyd's "tcp(6)".
func wordParen(w []byte) (probe.Proto, int64, bool) {
	open := bytes.IndexByte(w, '(')
	if open <= 0 || open+2 >= len(w) || w[len(w)-1] != ')' {
		return 0, 0, false
	}
	in := w[open+1 : len(w)-1]
	if !allDigits(in) || len(in) > 3 {
		return 0, 0, false
	}
	p, ok := protoWord(w[:open])
	if !ok {
		return 0, 0, false
	}
	return p, int64(atoi(in)), true
}

// protoWord knows protocol names as /etc/protocols and reporters write
// them. The short, word-like names (AH, ESP, GRE) count only in capitals.
func protoWord(w []byte) (probe.Proto, bool) {
	switch string(w) {
	case "AH":
		return 51, true
	case "ESP":
		return 50, true
	case "GRE":
		return 47, true
	}
	switch lowerWord(w) {
	case "tcp":
		return probe.TCP, true
	case "udp":
		return probe.UDP, true
	case "icmp":
		return probe.ICMP, true
	case "icmp6", "icmpv6", "ipv6-icmp":
		return probe.ICMPv6, true
	case "sctp":
		return 132, true
	case "igmp":
		return 2, true
	case "dccp":
		return 33, true
	case "udplite":
		return 136, true
	}
	return 0, false
}

// flagWords reads SYN, ACK, "SYN/ACK", "SYN-ACK", "SYN+ACK", "SYNACK".
func flagWords(w []byte) (probe.TCPFlags, bool) {
	var fl probe.TCPFlags
	for len(w) > 0 {
		i := 0
		for i < len(w) && w[i] != '/' && w[i] != '-' && w[i] != '+' {
			i++
		}
		f, ok := flagWord(w[:i])
		if !ok {
			return 0, false
		}
		fl |= f
		if i == len(w) {
			break
		}
		w = w[i+1:]
	}
	return fl, fl != 0
}

func flagWord(w []byte) (probe.TCPFlags, bool) {
	switch lowerWord(w) {
	case "syn":
		return probe.SYN, true
	case "ack":
		return probe.ACK, true
	case "fin":
		return probe.FIN, true
	case "rst", "reset":
		return probe.RST, true
	case "psh", "push":
		return probe.PSH, true
	case "urg":
		return probe.URG, true
	case "ece":
		return probe.ECE, true
	case "cwr":
		return probe.CWR, true
	case "synack":
		return probe.SYN | probe.ACK, true
	}
	return 0, false
}

// flagLetters reads tcpdump and nmap letter flags: "S", "S.", "SA", "FPU",
// "R.", with '.' or 'A' for ACK and 'W' or 'C' for CWR. Letters must be
// capitals and may not repeat.
func flagLetters(w []byte) (probe.TCPFlags, bool) {
	if len(w) == 0 || len(w) > 8 {
		return 0, false
	}
	var fl probe.TCPFlags
	for _, c := range w {
		var f probe.TCPFlags
		switch c {
		case 'F':
			f = probe.FIN
		case 'S':
			f = probe.SYN
		case 'R':
			f = probe.RST
		case 'P':
			f = probe.PSH
		case 'A', '.':
			f = probe.ACK
		case 'U':
			f = probe.URG
		case 'E':
			f = probe.ECE
		case 'W', 'C':
			f = probe.CWR
		default:
			return 0, false
		}
		if fl&f != 0 {
			return 0, false
		}
		fl |= f
	}
	return fl, true
}

// parseFlagValue reads flags given as a value of their own (after a
// "flags" key, or in a flags column): a number ("2", "0x12"), letters
// ("S", "SA", "S."), words ("SYN", "SYN/ACK") or "none" for a NULL probe.
func parseFlagValue(w []byte) (probe.TCPFlags, bool) {
	if len(w) > 2 && w[0] == '0' && (w[1] == 'x' || w[1] == 'X') {
		v := 0
		for _, c := range w[2:] {
			switch {
			case isDigit(c):
				v = v*16 + int(c-'0')
			case c|0x20 >= 'a' && c|0x20 <= 'f':
				v = v*16 + int(c|0x20-'a') + 10
			default:
				return 0, false
			}
			if v > 255 {
				return 0, false
			}
		}
		return probe.TCPFlags(v), true
	}
	if allDigits(w) {
		if len(w) > 3 || atoi(w) > 255 {
			return 0, false
		}
		return probe.TCPFlags(atoi(w)), true
	}
	if fl, ok := flagLetters(w); ok {
		return fl, true
	}
	if fl, ok := flagWords(w); ok {
		return fl, true
	}
	switch lowerWord(w) {
	case "none", "null":
		return 0, true
	}
	return 0, false
}

// isKeyword reports whether an upper-case word means something on a report
// line, so that it is never taken for a masked address.
func isKeyword(w []byte) bool {
	if _, ok := protoWord(w); ok {
		return true
	}
	if _, ok := flagWords(w); ok {
		return true
	}
	if _, ok := zoneOffset(w); ok && len(w) <= 5 {
		return true
	}
	if monthNumber(w) != 0 || weekday(w) {
		return true
	}
	switch lowerWord(w) {
	case "src", "dst", "source", "dest", "destination", "target", "port", "proto",
		"prot", "protocol", "size", "len", "length", "time", "date", "from", "to",
		"ip", "in", "out", "flags", "none", "null", "n/a", "na":
		return true
	}
	return false
}
