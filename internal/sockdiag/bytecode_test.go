package sockdiag

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// entry is the part of a socket the filters look at.
type entry struct {
	family uint8
	sport  uint16
	remote netip.AddrPort // as the kernel holds it: v4-mapped in AF_INET6
}

// run runs an inet_diag filter the way the kernel does (net/ipv4/inet_diag.c:
// inet_diag_bc_run) for the ops this package emits, after auditing it as
// inet_diag_bc_audit would.
func run(t *testing.T, bc []byte, e entry) bool {
	t.Helper()
	audit(t, bc)
	b, n := bc, len(bc)
	for n > 0 {
		code, yes, no := b[0], int(b[1]), int(binary.NativeEndian.Uint16(b[2:4]))
		var ok bool
		switch code {
		case bcJmp:
			ok = false
		case bcSEq:
			ok = e.sport == binary.NativeEndian.Uint16(b[6:8])
		case bcDCond:
			ok = dcond(b[4:yes], e)
		default:
			t.Fatalf("unexpected op %d", code)
		}
		step := no
		if ok {
			step = yes
		}
		n -= step
		if n < 0 {
			return false
		}
		b = b[step:]
	}
	return n == 0
}

// dcond matches a struct inet_diag_hostcond against the remote end.
func dcond(c []byte, e entry) bool {
	fam, plen, port := c[0], int(c[1]), int32(binary.NativeEndian.Uint32(c[4:8]))
	if port != -1 && uint16(port) != e.remote.Port() {
		return false
	}
	addr := e.remote.Addr()
	if fam != e.family {
		if !(fam == unix.AF_INET && e.family == unix.AF_INET6 && addr.Is4In6()) {
			return false
		}
		addr = addr.Unmap()
	}
	want, _ := netip.AddrFromSlice(c[8:])
	p, err := want.Prefix(plen)
	return err == nil && p.Contains(addr)
}

// audit checks the jumps the kernel's auditor checks: every yes and no is a
// multiple of 4, at least one op long and lands on an op or 4 past the end.
func audit(t *testing.T, bc []byte) {
	t.Helper()
	opLen := func(i int) int {
		switch bc[i] {
		case bcSEq:
			return 8
		case bcDCond:
			return int(bc[i+1])
		}
		return 4
	}
	starts := map[int]bool{}
	for i := 0; i < len(bc); i += opLen(i) {
		starts[len(bc)-i] = true
	}
	for i := 0; i < len(bc); i += opLen(i) {
		rest := len(bc) - i
		yes, no := int(bc[i+1]), int(binary.NativeEndian.Uint16(bc[i+2:i+4]))
		for _, j := range []int{yes, no} {
			if j < opLen(i) || j > rest+4 || j&3 != 0 || (j < rest && !starts[rest-j]) {
				t.Fatalf("op at %d: bad jump %d (rest %d)", i, j, rest)
			}
		}
	}
}

func TestLocalPortBytecode(t *testing.T) {
	// One port: S_EQ 22 (yes 8, no past the end), its operand, JMP to the end.
	one := []byte{bcSEq, 8, 0, 0, 0, 0, 0, 0, bcJmp, 4, 0, 0}
	binary.NativeEndian.PutUint16(one[2:4], 16)
	binary.NativeEndian.PutUint16(one[6:8], 22)
	binary.NativeEndian.PutUint16(one[10:12], 4)
	if got := LocalPortBytecode([]uint16{22}); !bytes.Equal(got, one) {
		t.Errorf("port 22: got %x, want %x", got, one)
	}
	many := make([]uint16, 200)
	for i := range many {
		many[i] = uint16(1000 + i)
	}
	for _, ports := range [][]uint16{{22}, {22, 2222}, {22, 443, 830, 2222, 65535}, many} {
		bc := LocalPortBytecode(ports)
		for _, p := range []uint16{0, 21, 22, 23, 443, 830, 999, 1000, 1199, 1200, 2222, 8080, 65535} {
			if got, want := run(t, bc, entry{sport: p}), slices.Contains(ports, p); got != want {
				t.Errorf("%d ports, local port %d: accepted %v, want %v", len(ports), p, got, want)
			}
		}
	}
}

func TestRemoteBytecode(t *testing.T) {
	ap := netip.MustParseAddrPort
	if RemoteBytecode(nil) != nil || RemoteBytecode(make([]netip.AddrPort, MaxRemotes+1)) != nil {
		t.Error("no filter expected for no remotes or too many")
	}
	remotes := []netip.AddrPort{ap("192.0.2.1:80"), ap("192.0.2.2:0"), ap("[2001:db8::1]:443")}
	bc := RemoteBytecode(remotes)
	if len(bc) != 20+20+32 {
		t.Fatalf("length %d, want 72", len(bc))
	}
	v4, v6 := uint8(unix.AF_INET), uint8(unix.AF_INET6)
	for _, tc := range []struct {
		e    entry
		want bool
	}{
		{entry{v4, 0, ap("192.0.2.1:80")}, true},
		{entry{v4, 0, ap("192.0.2.1:81")}, false},
		{entry{v4, 0, ap("192.0.2.2:1")}, true},
		{entry{v4, 0, ap("192.0.2.3:80")}, false},
		{entry{v6, 0, ap("[::ffff:192.0.2.1]:80")}, true},
		{entry{v6, 0, ap("[::ffff:192.0.2.2]:25")}, true},
		{entry{v6, 0, ap("[2001:db8::1]:443")}, true},
		{entry{v6, 0, ap("[2001:db8::1]:80")}, false},
		{entry{v6, 0, ap("[2001:db8::2]:443")}, false},
	} {
		if got := run(t, bc, tc.e); got != tc.want {
			t.Errorf("%v (family %d): accepted %v, want %v", tc.e.remote, tc.e.family, got, tc.want)
		}
	}
	big := make([]netip.AddrPort, MaxRemotes)
	for i := range big {
		big[i] = netip.AddrPortFrom(netip.AddrFrom16([16]byte{0x20, 1, 0xd, 0xb8, 14: byte(i >> 8), 15: byte(i)}), 443)
	}
	bc = RemoteBytecode(big)
	if !run(t, bc, entry{v6, 0, big[0]}) || !run(t, bc, entry{v6, 0, big[MaxRemotes-1]}) || run(t, bc, entry{v6, 0, ap("[2001:db8::1]:80")}) {
		t.Error("largest program is wrong")
	}
}
