package route

import (
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The route netlink messages, built and parsed by hand from struct rtmsg
// (linux/rtnetlink.h): family, dst_len, src_len, tos, table, protocol,
// scope, type, then 32 bits of flags, followed by attributes.

const sizeofRtMsg = 12

// batchSize bounds the requests sent in one write. Each is acknowledged
// separately, and an error acknowledgement quotes the request, so a batch
// of 256 needs well under 64 KiB of the socket's receive buffer (the
// default is 208 KiB): no acknowledgement is lost to ENOBUFS.
const batchSize = 256

// route is what a dump tells about one of our routes.
type route struct {
	dst      netip.Prefix
	table    uint32
	protocol uint8
	typ      uint8
	priority uint32
}

// defaultMetric is the metric a route gets when the request names none:
// 0 for IPv4, 1024 (IP6_RT_PRIO_USER) for IPv6.
func defaultMetric(p netip.Prefix) uint32 {
	if p.Addr().Is4() {
		return 0
	}
	return 1024
}

// request builds an RTM_NEWROUTE (create, exclusive) or RTM_DELROUTE for a
// blackhole route of ours to p.
func (e *Enforcer) request(typ netlink.HeaderType, p netip.Prefix) netlink.Message {
	b := make([]byte, sizeofRtMsg)
	b[0] = family(p)
	b[1] = uint8(p.Bits())
	b[4] = tableByte(e.cfg.Table)
	b[5] = e.cfg.Protocol
	b[6] = unix.RT_SCOPE_UNIVERSE
	b[7] = unix.RTN_BLACKHOLE
	flags := netlink.Request | netlink.Acknowledge
	if typ == unix.RTM_NEWROUTE {
		flags |= netlink.Create | netlink.Excl
	} else {
		// Deletion matches routes of any scope; type, protocol and
		// table still have to be ours.
		b[6] = unix.RT_SCOPE_NOWHERE
	}
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(unix.RTA_DST, p.Addr().AsSlice())
	ae.Uint32(unix.RTA_TABLE, e.cfg.Table)
	attrs, _ := ae.Encode()
	return netlink.Message{
		Header: netlink.Header{Type: typ, Flags: flags},
		Data:   append(b, attrs...),
	}
}

func family(p netip.Prefix) uint8 {
	if p.Addr().Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// tableByte is rtm_table: the table itself when it fits in a byte, else
// RT_TABLE_UNSPEC with the real number in RTA_TABLE (as iproute2 does).
func tableByte(t uint32) uint8 {
	if t < 256 {
		return uint8(t)
	}
	return unix.RT_TABLE_UNSPEC
}

// exchange sends requests that each ask for an acknowledgement, in
// batches, and returns the kernel's answer to each: nil or its error.
// The kernel handles the requests of a write in order and acknowledges
// each in turn, so the n-th acknowledgement answers the n-th request.
func (e *Enforcer) exchange(c *netlink.Conn, msgs []netlink.Message) []error {
	errs := make([]error, len(msgs))
	for start := 0; start < len(msgs); start += batchSize {
		batch := msgs[start:min(start+batchSize, len(msgs))]
		sent, err := c.SendMessages(batch)
		if err != nil {
			for i := start; i < len(msgs); i++ {
				errs[i] = err
			}
			return errs
		}
		for i := 0; i < len(sent); {
			replies, err := c.Receive()
			if err != nil {
				var oe *netlink.OpError
				if !errors.As(err, &oe) || oe.Op != "receive" || isIOError(oe.Err) {
					for j := start + i; j < len(msgs); j++ {
						errs[j] = err
					}
					return errs
				}
				errs[start+i] = err
				i++
				continue
			}
			for _, m := range replies {
				if m.Header.Type != netlink.Error {
					continue
				}
				if i < len(sent) && m.Header.Sequence != sent[i].Header.Sequence {
					err := fmt.Errorf("route netlink: acknowledgement %d out of order", m.Header.Sequence)
					for j := start + i; j < len(msgs); j++ {
						errs[j] = err
					}
					return errs
				}
				i++
			}
		}
	}
	return errs
}

// isIOError tells a failure of the socket (a timeout, a system call's
// error) from an error the kernel sent in answer to a request, which the
// netlink package passes on as a bare errno.
func isIOError(err error) bool {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return true
	}
	var errno unix.Errno
	return !errors.As(err, &errno)
}

// dump lists our routes of one family: those of our protocol in our table
// (any type, any metric). With strict checking the kernel filters; the
// filter is applied here again for kernels without it.
func (e *Enforcer) dump(c *netlink.Conn, fam uint8) ([]route, error) {
	b := make([]byte, sizeofRtMsg)
	b[0] = fam
	b[4] = tableByte(e.cfg.Table)
	b[5] = e.cfg.Protocol
	ae := netlink.NewAttributeEncoder()
	ae.Uint32(unix.RTA_TABLE, e.cfg.Table)
	attrs, _ := ae.Encode()
	req := netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETROUTE, Flags: netlink.Request | netlink.Dump},
		Data:   append(b, attrs...),
	}
	const attempts = 3 // a dump interrupted by a concurrent change is retried
	for range attempts {
		msgs, err := c.Execute(req)
		if errors.Is(err, unix.ENOENT) {
			return nil, nil // the table does not exist (yet): nothing of ours in it
		}
		if err != nil {
			if errors.Is(err, unix.EPERM) {
				err = fmt.Errorf("%w: %v", ErrNotPermitted, err)
			}
			return nil, fmt.Errorf("listing routes: %w", err)
		}
		var out []route
		intr := false
		for _, m := range msgs {
			intr = intr || m.Header.Flags&netlink.DumpInterrupted != 0
			if m.Header.Type != unix.RTM_NEWROUTE {
				continue
			}
			r, err := parseRoute(m.Data)
			if err != nil {
				return nil, fmt.Errorf("listing routes: %w", err)
			}
			if r.table == e.cfg.Table && r.protocol == e.cfg.Protocol && r.dst.IsValid() {
				out = append(out, r)
			}
		}
		if !intr {
			return out, nil
		}
	}
	return nil, errors.New("listing routes: the dump was interrupted by changes three times")
}

// parseRoute reads an rtmsg and the attributes we use.
func parseRoute(b []byte) (route, error) {
	if len(b) < sizeofRtMsg {
		return route{}, errors.New("short rtmsg")
	}
	r := route{table: uint32(b[4]), protocol: b[5], typ: b[7]}
	fam, bits := b[0], int(b[1])
	ad, err := netlink.NewAttributeDecoder(b[sizeofRtMsg:])
	if err != nil {
		return route{}, err
	}
	var dst netip.Addr
	for ad.Next() {
		switch ad.Type() {
		case unix.RTA_DST:
			dst, _ = netip.AddrFromSlice(ad.Bytes())
		case unix.RTA_TABLE:
			r.table = ad.Uint32()
		case unix.RTA_PRIORITY:
			r.priority = ad.Uint32()
		}
	}
	if err := ad.Err(); err != nil {
		return route{}, err
	}
	if !dst.IsValid() { // a default route has no RTA_DST
		switch fam {
		case unix.AF_INET:
			dst = netip.IPv4Unspecified()
		case unix.AF_INET6:
			dst = netip.IPv6Unspecified()
		default:
			return r, nil
		}
	}
	r.dst, _ = dst.Prefix(bits)
	return r, nil
}
