// Package sockdiag lists IPv4 and IPv6 sockets through NETLINK_SOCK_DIAG
// (linux/inet_diag.h) and builds the bytecode filters the kernel runs on
// them before copying sockets out.
//
// x/sys/unix has no inet_diag types, so the request and reply structs are
// laid out here by hand.
package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const (
	sizeofReqV2 = 56 // family, protocol, ext, pad, states, inet_diag_sockid (48)
	sizeofMsg   = 72 // family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode

	reqBytecode = 1  // INET_DIAG_REQ_BYTECODE
	skV6Only    = 11 // INET_DIAG_SKV6ONLY
)

// TCP states (include/net/tcp_states.h), as numbers and, shifted, as bits
// of the states mask a dump asks for.
const (
	TCPEstablished = 1
	TCPClose       = 7 // an unconnected UDP socket is in TCP_CLOSE
	TCPListen      = 10

	AllStates = 0xffffffff // every TCP_* state, SYN_SENT included
)

// Socket is one socket as sock_diag describes it.
type Socket struct {
	Proto  uint8          // IPPROTO_*, as asked for
	Family uint8          // AF_INET or AF_INET6
	State  uint8          // TCP_*
	Local  netip.AddrPort // IPv4-mapped addresses unmapped
	Remote netip.AddrPort
	UID    uint32
	Inode  uint32
	V6Only bool // IPV6_V6ONLY; the kernel reports it for listening and unconnected sockets
}

// Request builds an inet_diag_req_v2 for the sockets of one protocol and
// family in the given states (a bit mask of 1<<TCP_* state numbers),
// followed by bytecode bc as an INET_DIAG_REQ_BYTECODE attribute when bc is
// not empty.
func Request(proto, family uint8, states uint32, bc []byte) []byte {
	req := make([]byte, sizeofReqV2, sizeofReqV2+4+len(bc))
	req[0], req[1] = family, proto
	binary.NativeEndian.PutUint32(req[4:8], states)
	if len(bc) > 0 {
		var nla [4]byte
		binary.NativeEndian.PutUint16(nla[0:2], uint16(4+len(bc)))
		binary.NativeEndian.PutUint16(nla[2:4], reqBytecode)
		req = append(append(req, nla[:]...), bc...)
	}
	return req
}

// Dump lists the sockets of one protocol and family in the given states in
// the namespace c was opened in, filtered in the kernel by bytecode when bc
// is not empty.
func Dump(c *netlink.Conn, proto, family uint8, states uint32, bc []byte, fn func(Socket)) error {
	msgs, err := ExecuteDump(c, unix.SOCK_DIAG_BY_FAMILY, Request(proto, family, states, bc))
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type != unix.SOCK_DIAG_BY_FAMILY {
			continue
		}
		s, err := Parse(proto, m.Data)
		if err != nil {
			return err
		}
		fn(s)
	}
	return nil
}

// Parse reads one inet_diag_msg and its attributes. proto is recorded as
// given: the message does not carry it.
func Parse(proto uint8, b []byte) (Socket, error) {
	if len(b) < sizeofMsg {
		return Socket{}, errors.New("short inet_diag_msg")
	}
	s := Socket{Proto: proto, Family: b[0], State: b[1]}
	sport := binary.BigEndian.Uint16(b[4:6])
	dport := binary.BigEndian.Uint16(b[6:8])
	var src, dst netip.Addr
	switch s.Family {
	case unix.AF_INET:
		src = netip.AddrFrom4([4]byte(b[8:12]))
		dst = netip.AddrFrom4([4]byte(b[24:28]))
	case unix.AF_INET6:
		src = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		dst = netip.AddrFrom16([16]byte(b[24:40])).Unmap()
	default:
		return Socket{}, fmt.Errorf("address family %d in inet_diag_msg", s.Family)
	}
	s.Local = netip.AddrPortFrom(src, sport)
	s.Remote = netip.AddrPortFrom(dst, dport)
	s.UID = binary.NativeEndian.Uint32(b[64:68])
	s.Inode = binary.NativeEndian.Uint32(b[68:72])
	ad, err := netlink.NewAttributeDecoder(b[sizeofMsg:])
	if err != nil {
		return Socket{}, err
	}
	for ad.Next() {
		if ad.Type() == skV6Only {
			s.V6Only = ad.Uint8() != 0
		}
	}
	if err := ad.Err(); err != nil {
		return Socket{}, err
	}
	return s, nil
}

// dumpAttempts bounds retries of a dump the kernel marks inconsistent
// (NLM_F_DUMP_INTR: the table changed while it was being read).
const dumpAttempts = 3

// ErrDumpInterrupted is returned when every attempt at a dump was
// interrupted.
var ErrDumpInterrupted = errors.New("netlink dump interrupted by concurrent changes")

// ExecuteDump sends one dump request of any netlink family (internal/host
// uses it for route netlink too) and returns the replies, retrying a dump
// the kernel says was interrupted.
func ExecuteDump(c *netlink.Conn, typ netlink.HeaderType, data []byte) ([]netlink.Message, error) {
	req := netlink.Message{
		Header: netlink.Header{Type: typ, Flags: netlink.Request | netlink.Dump},
		Data:   data,
	}
	for i := 0; ; i++ {
		msgs, err := c.Execute(req)
		if err != nil {
			return nil, err
		}
		intr := false
		for _, m := range msgs {
			if m.Header.Flags&netlink.DumpInterrupted != 0 {
				intr = true
				break
			}
		}
		if !intr {
			return msgs, nil
		}
		if i+1 == dumpAttempts {
			return nil, ErrDumpInterrupted
		}
	}
}
