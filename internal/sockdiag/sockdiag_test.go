package sockdiag

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// msg lays out an inet_diag_msg as the kernel sends it, followed by attrs.
func msg(family, state uint8, src, dst netip.AddrPort, uid, inode uint32, attrs ...byte) []byte {
	b := make([]byte, sizeofMsg)
	b[0], b[1] = family, state
	binary.BigEndian.PutUint16(b[4:6], src.Port())
	binary.BigEndian.PutUint16(b[6:8], dst.Port())
	s, d := src.Addr().As16(), dst.Addr().As16()
	if family == unix.AF_INET {
		s4, d4 := src.Addr().As4(), dst.Addr().As4()
		copy(b[8:], s4[:])
		copy(b[24:], d4[:])
	} else {
		copy(b[8:], s[:])
		copy(b[24:], d[:])
	}
	binary.NativeEndian.PutUint32(b[64:68], uid)
	binary.NativeEndian.PutUint32(b[68:72], inode)
	return append(b, attrs...)
}

// v6only is an INET_DIAG_SKV6ONLY attribute (u8, padded to 4).
func v6only(v byte) []byte {
	a := make([]byte, 8)
	binary.NativeEndian.PutUint16(a[0:2], 5)
	binary.NativeEndian.PutUint16(a[2:4], skV6Only)
	a[4] = v
	return a
}

// overlong is an attribute whose header claims more bytes than follow.
func overlong() []byte {
	a := v6only(1)
	binary.NativeEndian.PutUint16(a[0:2], 20)
	return a
}

func TestParse(t *testing.T) {
	ap := netip.MustParseAddrPort
	for _, tc := range []struct {
		name    string
		b       []byte
		want    Socket
		wantErr bool
	}{{
		name: "ipv4 established",
		b:    msg(unix.AF_INET, TCPEstablished, ap("10.0.0.1:22"), ap("192.0.2.7:40000"), 1000, 4242),
		want: Socket{Proto: unix.IPPROTO_TCP, Family: unix.AF_INET, State: TCPEstablished,
			Local: ap("10.0.0.1:22"), Remote: ap("192.0.2.7:40000"), UID: 1000, Inode: 4242},
	}, {
		name: "ipv6 listener, v6only",
		b:    msg(unix.AF_INET6, TCPListen, ap("[::]:443"), ap("[::]:0"), 0, 7, v6only(1)...),
		want: Socket{Proto: unix.IPPROTO_TCP, Family: unix.AF_INET6, State: TCPListen,
			Local: ap("[::]:443"), Remote: ap("[::]:0"), Inode: 7, V6Only: true},
	}, {
		name: "v4-mapped addresses unmapped, v6only off",
		b:    msg(unix.AF_INET6, TCPEstablished, ap("[::ffff:10.0.0.1]:5000"), ap("[::ffff:192.0.2.9]:80"), 1, 2, v6only(0)...),
		want: Socket{Proto: unix.IPPROTO_TCP, Family: unix.AF_INET6, State: TCPEstablished,
			Local: ap("10.0.0.1:5000"), Remote: ap("192.0.2.9:80"), UID: 1, Inode: 2},
	}, {
		name:    "short",
		b:       make([]byte, sizeofMsg-1),
		wantErr: true,
	}, {
		name:    "unknown family",
		b:       append([]byte{unix.AF_UNIX}, make([]byte, sizeofMsg-1)...),
		wantErr: true,
	}, {
		name:    "attribute longer than the message",
		b:       msg(unix.AF_INET, TCPClose, ap("0.0.0.0:53"), ap("0.0.0.0:0"), 0, 1, overlong()...),
		wantErr: true,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(unix.IPPROTO_TCP, tc.b)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && got != tc.want {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	ap := netip.MustParseAddrPort
	f.Add(msg(unix.AF_INET, TCPEstablished, ap("10.0.0.1:22"), ap("192.0.2.7:40000"), 1000, 4242))
	f.Add(msg(unix.AF_INET6, TCPListen, ap("[::]:443"), ap("[::]:0"), 0, 7, v6only(1)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(unix.IPPROTO_UDP, b)
		if err == nil && (!s.Local.IsValid() || !s.Remote.IsValid() || s.Local.Addr().Is4In6()) {
			t.Errorf("parsed %+v from %x", s, b)
		}
	})
}

func TestRequest(t *testing.T) {
	want := make([]byte, sizeofReqV2)
	want[0], want[1] = unix.AF_INET6, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(want[4:8], 1<<TCPListen)
	if got := Request(unix.IPPROTO_TCP, unix.AF_INET6, 1<<TCPListen, nil); !bytes.Equal(got, want) {
		t.Errorf("no bytecode: got %x, want %x", got, want)
	}
	bc := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	nla := make([]byte, 4)
	binary.NativeEndian.PutUint16(nla[0:2], 12)
	binary.NativeEndian.PutUint16(nla[2:4], reqBytecode)
	want = append(append(want, nla...), bc...)
	if got := Request(unix.IPPROTO_TCP, unix.AF_INET6, 1<<TCPListen, bc); !bytes.Equal(got, want) {
		t.Errorf("with bytecode: got %x, want %x", got, want)
	}
}
