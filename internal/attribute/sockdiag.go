package attribute

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The sock_diag part (NETLINK_SOCK_DIAG, linux/inet_diag.h), laid out as in
// internal/host/sockdiag.go: x/sys/unix has no inet_diag types.

const (
	sizeofInetDiagReqV2 = 56 // family, protocol, ext, pad, states, inet_diag_sockid (48)
	sizeofInetDiagMsg   = 72 // family, state, timer, retrans, sockid (48), expires, rqueue, wqueue, uid, inode

	allStates = 0xffffffff // every TCP_* state, SYN_SENT included

	inetDiagReqBytecode = 1 // INET_DIAG_REQ_BYTECODE
	inetDiagBCJmp       = 1 // INET_DIAG_BC_JMP
	inetDiagBCDCond     = 8 // INET_DIAG_BC_D_COND: remote address/prefix and port

	// maxFilterRemotes bounds the kernel filter: each remote costs 20 or
	// 32 bytes and the jump offsets are 16 bits (2000*32 < 65536). Past it,
	// everything is dumped and filtered here.
	maxFilterRemotes = 2000

	// dumpAttempts bounds retries of a dump the kernel marks interrupted
	// (NLM_F_DUMP_INTR: the socket table changed under it).
	dumpAttempts = 3
)

// diagSocket is one socket as sock_diag describes it.
type diagSocket struct {
	local  netip.AddrPort // IPv4-mapped addresses unmapped
	remote netip.AddrPort
	uid    uint32
	inode  uint32
}

// diagDump lists the sockets of one protocol and family in the namespace
// c was opened in, filtered in the kernel by bytecode when bc is not empty.
func diagDump(c *netlink.Conn, proto, family uint8, bc []byte, fn func(diagSocket)) error {
	req := make([]byte, sizeofInetDiagReqV2, sizeofInetDiagReqV2+4+len(bc))
	req[0], req[1] = family, proto
	binary.NativeEndian.PutUint32(req[4:8], allStates)
	if len(bc) > 0 {
		var nla [4]byte
		binary.NativeEndian.PutUint16(nla[0:2], uint16(4+len(bc)))
		binary.NativeEndian.PutUint16(nla[2:4], inetDiagReqBytecode)
		req = append(append(req, nla[:]...), bc...)
	}
	msgs, err := dump(c, req)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type != unix.SOCK_DIAG_BY_FAMILY {
			continue
		}
		s, err := parseDiag(m.Data)
		if err != nil {
			return err
		}
		fn(s)
	}
	return nil
}

func dump(c *netlink.Conn, data []byte) ([]netlink.Message, error) {
	req := netlink.Message{
		Header: netlink.Header{Type: unix.SOCK_DIAG_BY_FAMILY, Flags: netlink.Request | netlink.Dump},
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
			return nil, errors.New("dump interrupted repeatedly: the socket table kept changing")
		}
	}
}

func parseDiag(b []byte) (diagSocket, error) {
	if len(b) < sizeofInetDiagMsg {
		return diagSocket{}, errors.New("short inet_diag_msg")
	}
	sport := binary.BigEndian.Uint16(b[4:6])
	dport := binary.BigEndian.Uint16(b[6:8])
	var src, dst netip.Addr
	switch b[0] {
	case unix.AF_INET:
		src = netip.AddrFrom4([4]byte(b[8:12]))
		dst = netip.AddrFrom4([4]byte(b[24:28]))
	case unix.AF_INET6:
		src = netip.AddrFrom16([16]byte(b[8:24])).Unmap()
		dst = netip.AddrFrom16([16]byte(b[24:40])).Unmap()
	default:
		return diagSocket{}, fmt.Errorf("address family %d in inet_diag_msg", b[0])
	}
	return diagSocket{
		local:  netip.AddrPortFrom(src, sport),
		remote: netip.AddrPortFrom(dst, dport),
		uid:    binary.NativeEndian.Uint32(b[64:68]),
		inode:  binary.NativeEndian.Uint32(b[68:72]),
	}, nil
}

// remoteBytecode builds an inet_diag filter that accepts sockets whose
// remote address and port are one of remotes (port 0: any port), as
// `ss dst 10.0.0.1:80 or dst 10.0.0.2` does. Each remote is a D_COND
// followed by a JMP to the end (accept), laid out like
// internal/host.localPortBytecode; ending exactly at the end accepts,
// jumping 4 bytes past it rejects (net/ipv4/inet_diag.c, inet_diag_bc_run
// and inet_diag_bc_audit). A D_COND on an IPv4 address also matches
// v4-mapped AF_INET6 sockets. It returns nil (no filter) when remotes is
// empty or too long.
func remoteBytecode(remotes []netip.AddrPort) []byte {
	if len(remotes) == 0 || len(remotes) > maxFilterRemotes {
		return nil
	}
	size := func(a netip.Addr) int { return 4 + 8 + a.BitLen()/8 + 4 } // D_COND op, hostcond, address, JMP op
	total := 0
	for _, r := range remotes {
		total += size(r.Addr())
	}
	bc := make([]byte, 0, total)
	rest := total // bytes from this block to the end
	for i, r := range remotes {
		a := r.Addr()
		block := size(a)
		no := block
		if i == len(remotes)-1 {
			no = rest + 4
		}
		cond := block - 4
		bc = appendOp(bc, inetDiagBCDCond, uint8(cond), uint16(no))
		fam := uint8(unix.AF_INET)
		if a.Is6() {
			fam = unix.AF_INET6
		}
		port := int32(r.Port())
		if port == 0 {
			port = -1 // any
		}
		bc = append(bc, fam, uint8(a.BitLen()), 0, 0)
		bc = binary.NativeEndian.AppendUint32(bc, uint32(port))
		bc = append(bc, a.AsSlice()...)
		bc = appendOp(bc, inetDiagBCJmp, 4, uint16(rest-cond))
		rest -= block
	}
	return bc
}

// appendOp appends a struct inet_diag_bc_op {u8 code, u8 yes, u16 no}.
func appendOp(b []byte, code, yes uint8, no uint16) []byte {
	b = append(b, code, yes, 0, 0)
	binary.NativeEndian.PutUint16(b[len(b)-2:], no)
	return b
}
