package connwatch

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"
)

// raw is what the BPF program writes, for building records in tests.
type raw struct {
	ns              uint64
	tgid, tid       uint32
	uid, gid        uint32
	cgroup          uint64
	comm            string
	family          uint16
	dport           uint16
	saddr, daddr    netip.Addr // v4 for AF_INET, v6 (or v4-mapped) for AF_INET6
	magic           uint32
	truncateTo, pad int
}

// record lays r out as the BPF program does, including the v4-mapped copy
// of v4 addresses the tracepoint keeps in saddr_v6 and daddr_v6.
func (r raw) record() []byte {
	b := make([]byte, recordSize)
	ne := binary.NativeEndian
	ne.PutUint64(b[recTime:], r.ns)
	ne.PutUint64(b[recPidTgid:], uint64(r.tgid)<<32|uint64(r.tid))
	ne.PutUint64(b[recUidGid:], uint64(r.gid)<<32|uint64(r.uid))
	ne.PutUint64(b[recCgroup:], r.cgroup)
	copy(b[recComm:recComm+commLen], r.comm)
	ne.PutUint16(b[recFamily:], r.family)
	ne.PutUint16(b[recDport:], r.dport)
	m := r.magic
	if m == 0 {
		m = magic
	}
	ne.PutUint32(b[recMagic:], m)
	if r.saddr.Is4() {
		s4, d4 := r.saddr.As4(), r.daddr.As4()
		copy(b[recSaddr4:], s4[:])
		copy(b[recDaddr4:], d4[:])
	}
	s6, d6 := r.saddr.As16(), r.daddr.As16()
	copy(b[recSaddr6:], s6[:])
	copy(b[recDaddr6:], d6[:])
	if r.truncateTo > 0 {
		b = b[:r.truncateTo]
	}
	return append(b, make([]byte, r.pad)...)
}

var boot = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestDecodeRecord(t *testing.T) {
	v4 := raw{
		ns: 1_500_000_000, tgid: 4242, tid: 4250, uid: 65534, gid: 65533, cgroup: 9876,
		comm: "python3", family: afInet, dport: 8080,
		saddr: netip.MustParseAddr("10.77.0.1"), daddr: netip.MustParseAddr("10.77.0.2"),
	}
	v6 := v4
	v6.family, v6.saddr, v6.daddr = afInet6, netip.MustParseAddr("fd00:77::1"), netip.MustParseAddr("fd00:77::2")
	mapped := v4
	mapped.family = afInet6
	mapped.saddr, mapped.daddr = netip.AddrFrom16(v4.saddr.As16()), netip.AddrFrom16(v4.daddr.As16())
	nasty := v4
	nasty.comm = "a\x1b[2Jb\\c\xffé\x00junk"
	full := v4
	full.comm = "0123456789abcdef" // TASK_COMM_LEN bytes, no NUL: all of it

	want := Conn{
		Time: boot.Add(1500 * time.Millisecond), PID: 4242, TID: 4250, UID: 65534, GID: 65533,
		CgroupID: 9876, Comm: "python3",
		Src: netip.MustParseAddr("10.77.0.1"), Dst: netip.MustParseAddrPort("10.77.0.2:8080"),
	}
	want6 := want
	want6.Src, want6.Dst = netip.MustParseAddr("fd00:77::1"), netip.MustParseAddrPort("[fd00:77::2]:8080")
	wantNasty := want
	wantNasty.Comm = `a\x1b[2Jb\x5cc\xffé`
	wantFull := want
	wantFull.Comm = "0123456789abcdef"

	for _, tc := range []struct {
		name string
		in   raw
		want Conn
	}{
		{"v4", v4, want},
		{"v6", v6, want6},
		{"v4-mapped is unmapped", mapped, want},
		{"comm escaped", nasty, wantNasty},
		{"comm without NUL", full, wantFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeRecord(tc.in.record(), boot)
			if err != nil {
				t.Fatal(err)
			}
			// Times compare as instants (Conn.Time is in the local zone).
			if !got.Time.Equal(tc.want.Time) {
				t.Errorf("time %v, want %v", got.Time, tc.want.Time)
			}
			got.Time = tc.want.Time
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestDecodeRecordErrors(t *testing.T) {
	ok := raw{family: afInet, saddr: netip.IPv4Unspecified(), daddr: netip.MustParseAddr("10.77.0.2")}
	short, long, badMagic, badFamily, badTime := ok, ok, ok, ok, ok
	short.truncateTo = recordSize - 1
	long.pad = 8
	badMagic.magic = 0xdeadbeef
	badFamily.family = 1 // AF_UNIX
	badTime.ns = 1 << 63
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, errRecordSize},
		{"short", short.record(), errRecordSize},
		{"long", long.record(), errRecordSize},
		{"magic", badMagic.record(), errMagic},
		{"family", badFamily.record(), errFamily},
		{"time", badTime.record(), errTime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeRecord(tc.in, boot); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzDecodeRecord feeds arbitrary bytes to the decoder: it must return an
// error or a Conn, never panic, and a Conn it returns must be well formed.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(raw{family: afInet, comm: "nc", dport: 22,
		saddr: netip.MustParseAddr("10.77.0.1"), daddr: netip.MustParseAddr("10.77.0.2")}.record())
	f.Add(raw{family: afInet6, comm: "x\x01\xff",
		saddr: netip.MustParseAddr("fd00:77::1"), daddr: netip.MustParseAddr("fd00:77::2")}.record())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := decodeRecord(b, boot)
		if err != nil {
			return
		}
		if !c.Src.IsValid() || !c.Dst.IsValid() {
			t.Errorf("bad addresses: %v → %v", c.Src, c.Dst)
		}
		for _, r := range c.Comm {
			if r < 0x20 || r == 0x7f {
				t.Errorf("control character in comm %q", c.Comm)
			}
		}
	})
}

func BenchmarkDecodeRecord(b *testing.B) {
	rec := raw{ns: 1e9, tgid: 1, tid: 2, comm: "connect-scan", family: afInet6, dport: 443,
		saddr: netip.MustParseAddr("fd00:77::1"), daddr: netip.MustParseAddr("fd00:77::2")}.record()
	b.SetBytes(recordSize)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeRecord(rec, boot); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndexRecord is what Run does per connect: decode a record and
// add it to a full index (evicting the oldest), with connects spread over
// 256 destinations as a busy client's are.
func BenchmarkIndexRecord(b *testing.B) {
	recs := make([][]byte, 256)
	for i := range recs {
		recs[i] = raw{ns: 1e9, tgid: 1, tid: 2, comm: "curl", family: afInet, dport: uint16(8000 + i%16),
			saddr: netip.MustParseAddr("10.88.0.2"), daddr: netip.AddrFrom4([4]byte{10, 88, 0, byte(10 + i/16)})}.record()
	}
	x := newIndex(DefaultMaxConns, DefaultMaxAge, func() time.Time { return boot })
	bootNs := boot.UnixNano()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		c, err := decodeRaw(recs[i%len(recs)], bootNs)
		if err != nil {
			b.Fatal(err)
		}
		x.add(&c)
		i++
	}
}
