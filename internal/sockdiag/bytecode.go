package sockdiag

import (
	"encoding/binary"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Bytecode op codes (enum in linux/inet_diag.h).
const (
	bcJmp   = 1  // INET_DIAG_BC_JMP
	bcDCond = 8  // INET_DIAG_BC_D_COND: remote address/prefix and port
	bcSEq   = 11 // INET_DIAG_BC_S_EQ: local ("source") port equals
)

// MaxRemotes bounds the filter RemoteBytecode builds: each remote costs 20
// or 32 bytes and the jump offsets are 16 bits (2000*32 < 65536).
const MaxRemotes = 2000

// LocalPortBytecode builds a filter that accepts sockets whose local port
// is one of ports, as `ss '( sport = :22 or sport = :2222 )'` does. Each
// port is an S_EQ test followed by a JMP to the end (accept):
//
//	S_EQ p   yes → the JMP after it     no → the next port's S_EQ (the last: past the end, reject)
//	JMP      → the end: accept
//
// The kernel runs the program by following yes/no byte offsets; ending
// exactly at the end accepts, jumping 4 bytes past it rejects
// (net/ipv4/inet_diag.c, inet_diag_bc_run and inet_diag_bc_audit).
func LocalPortBytecode(ports []uint16) []byte {
	const block = 12 // S_EQ op (4) + its port operand (4) + JMP op (4)
	total := block * len(ports)
	bc := make([]byte, 0, total)
	for i, p := range ports {
		rest := total - block*i // bytes from this S_EQ to the end
		no := block
		if i == len(ports)-1 {
			no = rest + 4
		}
		bc = appendOp(bc, bcSEq, 8, uint16(no))
		bc = appendOp(bc, 0, 0, p)
		bc = appendOp(bc, bcJmp, 4, uint16(rest-8))
	}
	return bc
}

// RemoteBytecode builds a filter that accepts sockets whose remote address
// and port are one of remotes (port 0: any port), as
// `ss dst 10.0.0.1:80 or dst 10.0.0.2` does. Each remote is a D_COND
// followed by a JMP to the end (accept), laid out like LocalPortBytecode.
// A D_COND on an IPv4 address also matches v4-mapped AF_INET6 sockets. It
// returns nil (no filter) when remotes is empty or longer than MaxRemotes;
// callers then dump everything and filter themselves.
func RemoteBytecode(remotes []netip.AddrPort) []byte {
	if len(remotes) == 0 || len(remotes) > MaxRemotes {
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
		bc = appendOp(bc, bcDCond, uint8(cond), uint16(no))
		fam := uint8(unix.AF_INET)
		if a.Is6() {
			fam = unix.AF_INET6
		}
		port := int32(r.Port())
		if port == 0 {
			port = -1 // any
		}
		bc = append(bc, fam, uint8(a.BitLen()), 0, 0) // struct inet_diag_hostcond
		bc = binary.NativeEndian.AppendUint32(bc, uint32(port))
		bc = append(bc, a.AsSlice()...)
		bc = appendOp(bc, bcJmp, 4, uint16(rest-cond))
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
