// Package probetext reads probes written one per line in a terse text form,
// so detector tests and scenario files can state exactly the packets they
// mean:
//
//	# time  src > dst  proto  flags  key=value...
//	0.000  10.0.0.1:40000 > 10.0.0.2:587  tcp S   seq=100 win=64240 opts=mss,sack,ts,ws ttl=64 id=7
//	0.001  10.0.0.2:587 > 10.0.0.1:40000  tcp R.  ack=101
//	0.500  10.0.0.1:5000 > 10.0.0.2:53    udp
//	0.600  10.0.0.2 > 10.0.0.1  icmp unreach/3  quote=10.0.0.1:5000>10.0.0.2:53/udp
//	1.000  [fd00::1]:40000 > [fd00::2]:22  tcp S  outcome=dropped
//
// Times are seconds from an epoch given to the reader. Flags use tcpdump's
// letters (F S R P U E W, "." for ACK, "none" for no flags). Keys: seq, ack,
// win, ttl, id, len (payload bytes), opts (mss, mss=N, sack, ts, ws, nop),
// outcome (open, closed, dropped), dir (inbound, outbound, forwarded),
// quote (the packet an ICMP error quotes, src>dst/proto).
//
// It is a test fixture format: it knows nothing of detection.
package probetext

import (
	"bufio"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor"
)

// Parse reads one line into p. It returns false for blank and comment lines.
func Parse(line string, epoch time.Time, p *probe.Probe) (bool, error) {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		return false, nil
	}
	if len(f) < 5 || f[2] != ">" {
		return false, fmt.Errorf("want 'TIME SRC > DST PROTO ...', got %q", line)
	}
	*p = probe.Probe{}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return false, fmt.Errorf("bad time %q", f[0])
	}
	p.Time = epoch.Add(time.Duration(secs * float64(time.Second)))
	if p.Src, err = endpoint(f[1]); err != nil {
		return false, err
	}
	if p.Dst, err = endpoint(f[3]); err != nil {
		return false, err
	}
	rest := f[5:]
	switch f[4] {
	case "tcp":
		p.Proto = probe.TCP
		if len(rest) == 0 {
			return false, fmt.Errorf("tcp needs flags")
		}
		if p.Flags, err = flags(rest[0]); err != nil {
			return false, err
		}
		p.Known |= probe.KnownFlags | probe.KnownPorts | probe.KnownPayload
		rest = rest[1:]
	case "udp":
		p.Proto = probe.UDP
		p.Known |= probe.KnownPorts | probe.KnownPayload
	case "icmp", "icmp6":
		p.Proto = probe.ICMP
		if f[4] == "icmp6" {
			p.Proto = probe.ICMPv6
		}
		if len(rest) == 0 {
			return false, fmt.Errorf("icmp needs TYPE/CODE")
		}
		t, c, ok := strings.Cut(rest[0], "/")
		if !ok {
			return false, fmt.Errorf("icmp wants NAME/CODE or TYPE/CODE, got %q", rest[0])
		}
		p.ICMPType, err = icmpType(t, p.Proto)
		if err != nil {
			return false, err
		}
		code, err := strconv.ParseUint(c, 10, 8)
		if err != nil {
			return false, fmt.Errorf("bad icmp code %q", c)
		}
		p.ICMPCode = uint8(code)
		rest = rest[1:]
	default:
		return false, fmt.Errorf("unknown protocol %q", f[4])
	}
	for _, kv := range rest {
		if err := setKey(p, kv); err != nil {
			return false, err
		}
	}
	return true, nil
}

func icmpType(t string, proto probe.Proto) (uint8, error) {
	names := map[string]uint8{"unreach": 3, "echo": 8, "echoreply": 0, "timex": 11}
	if proto == probe.ICMPv6 {
		names = map[string]uint8{"unreach": 1, "echo": 128, "echoreply": 129, "timex": 3}
	}
	if v, ok := names[t]; ok {
		return v, nil
	}
	n, err := strconv.ParseUint(t, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("bad icmp type %q", t)
	}
	return uint8(n), nil
}

func endpoint(s string) (netip.AddrPort, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad endpoint %q", s)
	}
	return netip.AddrPortFrom(a, 0), nil
}

func flags(s string) (probe.TCPFlags, error) {
	if s == "none" {
		return 0, nil
	}
	var f probe.TCPFlags
	for _, c := range s {
		switch c {
		case 'F':
			f |= probe.FIN
		case 'S':
			f |= probe.SYN
		case 'R':
			f |= probe.RST
		case 'P':
			f |= probe.PSH
		case 'U':
			f |= probe.URG
		case 'E':
			f |= probe.ECE
		case 'W':
			f |= probe.CWR
		case '.':
			f |= probe.ACK
		default:
			return 0, fmt.Errorf("bad flag %q in %q", c, s)
		}
	}
	return f, nil
}

func setKey(p *probe.Probe, kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("want key=value, got %q", kv)
	}
	num := func(bits int) (uint64, error) {
		n, err := strconv.ParseUint(v, 0, bits)
		if err != nil {
			return 0, fmt.Errorf("bad %s %q", k, v)
		}
		return n, nil
	}
	switch k {
	case "seq", "ack":
		n, err := num(32)
		if err != nil {
			return err
		}
		if k == "seq" {
			p.Seq = uint32(n)
		} else {
			p.Ack = uint32(n)
		}
		p.Known |= probe.KnownSeq
	case "win":
		n, err := num(16)
		if err != nil {
			return err
		}
		p.Window = uint16(n)
		p.Known |= probe.KnownWindow
	case "ttl":
		n, err := num(8)
		if err != nil {
			return err
		}
		p.TTL = uint8(n)
		p.Known |= probe.KnownTTL
	case "id":
		n, err := num(16)
		if err != nil {
			return err
		}
		p.IPID = uint16(n)
		p.Known |= probe.KnownIPID
	case "len":
		n, err := num(16)
		if err != nil {
			return err
		}
		p.Payload = uint16(n)
	case "opts":
		return opts(p, v)
	case "outcome":
		switch v {
		case "open":
			p.Outcome = probe.OutcomeOpen
		case "closed":
			p.Outcome = probe.OutcomeClosed
		case "dropped":
			p.Outcome = probe.OutcomeDropped
		default:
			return fmt.Errorf("bad outcome %q", v)
		}
	case "dir":
		switch v {
		case "inbound":
			p.Direction = probe.DirInbound
		case "outbound":
			p.Direction = probe.DirOutbound
		case "forwarded":
			p.Direction = probe.DirForwarded
		default:
			return fmt.Errorf("bad dir %q", v)
		}
	case "quote":
		return quote(p, v)
	default:
		return fmt.Errorf("unknown key %q", k)
	}
	return nil
}

func opts(p *probe.Probe, v string) error {
	p.Known |= probe.KnownOptions
	if v == "none" {
		return nil
	}
	var o probe.TCPOpts
	for _, name := range strings.Split(v, ",") {
		name, val, _ := strings.Cut(name, "=")
		switch name {
		case "mss":
			o.Bits |= probe.OptMSS
			o.MSS = 1460
			if val != "" {
				n, err := strconv.ParseUint(val, 10, 16)
				if err != nil {
					return fmt.Errorf("bad mss %q", val)
				}
				o.MSS = uint16(n)
			}
			o.Len += 4
		case "sack":
			o.Bits |= probe.OptSACKPerm
			o.Len += 2
		case "ts":
			o.Bits |= probe.OptTimestamp
			o.Len += 10
		case "ws":
			o.Bits |= probe.OptWScale
			o.Len += 3
		case "nop":
			o.Bits |= probe.OptNOP
			o.Len++
		default:
			return fmt.Errorf("unknown option %q", name)
		}
		o.Count++
	}
	p.Opts = o
	return nil
}

func quote(p *probe.Probe, v string) error {
	tuple, proto, ok := strings.Cut(v, "/")
	if !ok {
		return fmt.Errorf("quote wants src>dst/proto, got %q", v)
	}
	s, d, ok := strings.Cut(tuple, ">")
	if !ok {
		return fmt.Errorf("quote wants src>dst/proto, got %q", v)
	}
	src, err := endpoint(s)
	if err != nil {
		return err
	}
	dst, err := endpoint(d)
	if err != nil {
		return err
	}
	in := probe.Inner{Valid: true, Src: src, Dst: dst}
	switch proto {
	case "tcp":
		in.Proto = probe.TCP
	case "udp":
		in.Proto = probe.UDP
	default:
		return fmt.Errorf("quote protocol %q", proto)
	}
	p.Inner = in
	return nil
}

// Reader is a sensor.Source over probe lines.
type Reader struct {
	sc    *bufio.Scanner
	name  string
	epoch time.Time
	line  int
	stats sensor.Stats
}

// NewReader reads probe lines from r; times count from epoch.
func NewReader(r io.Reader, name string, epoch time.Time) *Reader {
	return &Reader{sc: bufio.NewScanner(r), name: name, epoch: epoch}
}

// Next implements sensor.Source. A malformed line is an error here: test
// fixtures should be exact.
func (r *Reader) Next(p *probe.Probe) error {
	for r.sc.Scan() {
		r.line++
		r.stats.Read.Add(1)
		ok, err := Parse(r.sc.Text(), r.epoch, p)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", r.name, r.line, err)
		}
		if ok {
			r.stats.Probes.Add(1)
			return nil
		}
		r.stats.Ignored.Add(1)
	}
	if err := r.sc.Err(); err != nil {
		return err
	}
	return io.EOF
}

// Stats implements sensor.Source.
func (r *Reader) Stats() *sensor.Stats { return &r.stats }

// Name implements sensor.Source.
func (r *Reader) Name() string { return r.name }

// Close implements sensor.Source.
func (r *Reader) Close() error { return nil }
