package host

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// The sock_diag part (NETLINK_SOCK_DIAG, linux/inet_diag.h): which sockets
// listen, and which SSH sessions are up. x/sys/unix has no inet_diag types,
// so the structs are laid out here.

const (
	sizeofInetDiagReqV2 = 56 // family, protocol, ext, pad, states, inet_diag_sockid (48)
	sizeofInetDiagMsg   = 72 // family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode

	inetDiagReqBytecode = 1  // INET_DIAG_REQ_BYTECODE
	inetDiagSKV6Only    = 11 // INET_DIAG_SKV6ONLY
	inetDiagBCJmp       = 1  // INET_DIAG_BC_JMP
	inetDiagBCSEq       = 11 // INET_DIAG_BC_S_EQ: local ("source") port equals

	tcpEstablished = 1
	tcpClose       = 7 // an unconnected UDP socket is in TCP_CLOSE
	tcpListen      = 10
)

// diagSocket is one socket as sock_diag describes it.
type diagSocket struct {
	proto  probe.Proto
	family uint8
	state  uint8
	local  netip.AddrPort // IPv4-mapped addresses unmapped
	remote netip.AddrPort
	uid    uint32
	inode  uint32
	v6only bool // IPV6_V6ONLY; the kernel reports it for listening and unconnected sockets
}

// diagDump lists the sockets of one protocol and family in the given states
// (a bit mask of 1<<TCP_* state numbers), filtered in the kernel by bytecode
// when bc is not empty.
func diagDump(c *netlink.Conn, proto probe.Proto, family uint8, states uint32, bc []byte, fn func(diagSocket)) error {
	req := make([]byte, sizeofInetDiagReqV2, sizeofInetDiagReqV2+4+len(bc))
	req[0], req[1] = family, uint8(proto)
	binary.NativeEndian.PutUint32(req[4:8], states)
	if len(bc) > 0 {
		var nla [4]byte
		binary.NativeEndian.PutUint16(nla[0:2], uint16(4+len(bc)))
		binary.NativeEndian.PutUint16(nla[2:4], inetDiagReqBytecode)
		req = append(append(req, nla[:]...), bc...)
	}
	msgs, err := dump(c, unix.SOCK_DIAG_BY_FAMILY, req)
	if err != nil {
		return fmt.Errorf("listing %v sockets (sock_diag): %w", proto, err)
	}
	for _, m := range msgs {
		if m.Header.Type != unix.SOCK_DIAG_BY_FAMILY {
			continue
		}
		s, err := parseDiag(proto, m.Data)
		if err != nil {
			return fmt.Errorf("listing %v sockets (sock_diag): %w", proto, err)
		}
		fn(s)
	}
	return nil
}

func parseDiag(proto probe.Proto, b []byte) (diagSocket, error) {
	if len(b) < sizeofInetDiagMsg {
		return diagSocket{}, errors.New("short inet_diag_msg")
	}
	s := diagSocket{proto: proto, family: b[0], state: b[1]}
	sport := binary.BigEndian.Uint16(b[4:6])
	dport := binary.BigEndian.Uint16(b[6:8])
	var src, dst netip.Addr
	switch s.family {
	case unix.AF_INET:
		src = netip.AddrFrom4([4]byte(b[8:12]))
		dst = netip.AddrFrom4([4]byte(b[24:28]))
	case unix.AF_INET6:
		src = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		dst = netip.AddrFrom16([16]byte(b[24:40])).Unmap()
	default:
		return diagSocket{}, fmt.Errorf("address family %d in inet_diag_msg", s.family)
	}
	s.local = netip.AddrPortFrom(src, sport)
	s.remote = netip.AddrPortFrom(dst, dport)
	s.uid = binary.NativeEndian.Uint32(b[64:68])
	s.inode = binary.NativeEndian.Uint32(b[68:72])
	ad, err := netlink.NewAttributeDecoder(b[sizeofInetDiagMsg:])
	if err != nil {
		return diagSocket{}, err
	}
	for ad.Next() {
		if ad.Type() == inetDiagSKV6Only {
			s.v6only = ad.Uint8() != 0
		}
	}
	return s, ad.Err()
}

// localPortBytecode builds an inet_diag filter that accepts sockets whose
// local port is one of ports, as `ss '( sport = :22 or sport = :2222 )'`
// does. Each port is an S_EQ test followed by a JMP to the end (accept):
//
//	S_EQ p   yes → the JMP after it     no → the next port's S_EQ (the last: past the end, reject)
//	JMP      → the end: accept
//
// The kernel runs the program by following yes/no byte offsets; ending
// exactly at the end accepts, jumping 4 bytes past it rejects
// (net/ipv4/inet_diag.c, inet_diag_bc_run and inet_diag_bc_audit).
func localPortBytecode(ports []uint16) []byte {
	const block = 12 // S_EQ op (4) + its port operand (4) + JMP op (4)
	total := block * len(ports)
	bc := make([]byte, 0, total)
	for i, p := range ports {
		rest := total - block*i // bytes from this S_EQ to the end
		no := block
		if i == len(ports)-1 {
			no = rest + 4
		}
		bc = appendOp(bc, inetDiagBCSEq, 8, uint16(no))
		bc = appendOp(bc, 0, 0, p)
		bc = appendOp(bc, inetDiagBCJmp, 4, uint16(rest-8))
	}
	return bc
}

// appendOp appends a struct inet_diag_bc_op {u8 code, u8 yes, u16 no}.
func appendOp(b []byte, code, yes uint8, no uint16) []byte {
	b = append(b, code, yes, 0, 0)
	binary.NativeEndian.PutUint16(b[len(b)-2:], no)
	return b
}
