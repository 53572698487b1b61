package connwatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The record the BPF program writes to the ring buffer, in host byte order
// (addresses in network order, as the tracepoint holds them).
const (
	recTime    = 0  // u64 bpf_ktime_get_boot_ns
	recPidTgid = 8  // u64 tgid<<32 | tid
	recUidGid  = 16 // u64 gid<<32 | uid
	recCgroup  = 24 // u64 cgroup v2 id
	recComm    = 32 // [16]byte task comm, NUL-padded
	recFamily  = 48 // u16 AF_INET or AF_INET6
	recDport   = 50 // u16 remote port, host order (the tracepoint ntohs'es it)
	recMagic   = 52 // u32 magic: tells a record from garbage
	recSaddr4  = 56 // [4]byte
	recDaddr4  = 60 // [4]byte
	recSaddr6  = 64 // [16]byte; v4-mapped for an AF_INET socket
	recDaddr6  = 80 // [16]byte
	recordSize = 96

	commLen = 16 // TASK_COMM_LEN
	magic   = 0x77637773

	afInet  = 2
	afInet6 = 10
)

// Decoding errors.
var (
	errRecordSize = fmt.Errorf("record is not %d bytes", recordSize)
	errMagic      = errors.New("record has the wrong magic number")
	errFamily     = errors.New("record has an address family other than AF_INET and AF_INET6")
	errTime       = errors.New("record timestamp out of range")
)

// rawConn is a connect as the index keeps it: fixed-size, no pointers
// (the index holds 65 536 of them; the garbage collector need not look
// inside), the comm as the kernel gave it. Conn is made from it on lookup.
type rawConn struct {
	ns       int64 // wall clock, Unix nanoseconds
	pidTgid  uint64
	uidGid   uint64
	cgroup   uint64
	src, dst addrKey
	port     uint16
	comm     [commLen]byte
}

// addrKey is an address as 16 bytes, IPv4 (and IPv4-mapped IPv6) in its
// mapped form: comparable and hashable without netip.Addr's zone pointer.
type addrKey [16]byte

func keyOf(a netip.Addr) addrKey { return a.WithZone("").Unmap().As16() }

func (k addrKey) addr() netip.Addr { return netip.AddrFrom16(k).Unmap() }

// conn is the Conn rc records.
func (rc *rawConn) conn() Conn {
	return Conn{
		Time:     time.Unix(0, rc.ns),
		PID:      int(rc.pidTgid >> 32),
		TID:      int(uint32(rc.pidTgid)),
		UID:      uint32(rc.uidGid),
		GID:      uint32(rc.uidGid >> 32),
		CgroupID: rc.cgroup,
		Comm:     escapeComm(rc.comm[:]),
		Src:      rc.src.addr(),
		Dst:      netip.AddrPortFrom(rc.dst.addr(), rc.port),
	}
}

// rawOf is the inverse of conn, for tests that index Conns.
func rawOf(c Conn) rawConn {
	rc := rawConn{
		ns: c.Time.UnixNano(), pidTgid: uint64(c.PID)<<32 | uint64(uint32(c.TID)),
		uidGid: uint64(c.GID)<<32 | uint64(c.UID), cgroup: c.CgroupID,
		src: keyOf(c.Src), dst: keyOf(c.Dst.Addr()), port: c.Dst.Port(),
	}
	copy(rc.comm[:], c.Comm)
	return rc
}

// decodeRecord decodes one ring buffer record. boot is the wall-clock time
// at which the boot clock read zero.
func decodeRecord(b []byte, boot time.Time) (Conn, error) {
	rc, err := decodeRaw(b, boot.UnixNano())
	if err != nil {
		return Conn{}, err
	}
	return rc.conn(), nil
}

// decodeRaw decodes one ring buffer record without allocating. boot is
// the Unix time in nanoseconds at which the boot clock read zero.
func decodeRaw(b []byte, boot int64) (rawConn, error) {
	if len(b) != recordSize {
		return rawConn{}, fmt.Errorf("%w: %d", errRecordSize, len(b))
	}
	ne := binary.NativeEndian
	if ne.Uint32(b[recMagic:]) != magic {
		return rawConn{}, errMagic
	}
	ns := ne.Uint64(b[recTime:])
	if ns > 1<<62 {
		return rawConn{}, errTime
	}
	rc := rawConn{
		ns:      boot + int64(ns),
		pidTgid: ne.Uint64(b[recPidTgid:]),
		uidGid:  ne.Uint64(b[recUidGid:]),
		cgroup:  ne.Uint64(b[recCgroup:]),
		port:    ne.Uint16(b[recDport:]),
		comm:    [commLen]byte(b[recComm:]),
	}
	switch ne.Uint16(b[recFamily:]) {
	case afInet:
		rc.src = keyOf(netip.AddrFrom4([4]byte(b[recSaddr4:])))
		rc.dst = keyOf(netip.AddrFrom4([4]byte(b[recDaddr4:])))
	case afInet6:
		rc.src = keyOf(netip.AddrFrom16([16]byte(b[recSaddr6:])))
		rc.dst = keyOf(netip.AddrFrom16([16]byte(b[recDaddr6:])))
	default:
		return rawConn{}, errFamily
	}
	return rc, nil
}

// escapeComm returns a task comm up to its first NUL, with backslashes,
// control characters and bytes that are not UTF-8 written as \xNN: a
// process names itself (prctl PR_SET_NAME), so its name must not be able
// to forge log lines or terminal escapes.
func escapeComm(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	clean := true
	for _, c := range b {
		if c < 0x20 || c >= 0x7f || c == '\\' {
			clean = false
			break
		}
	}
	if clean {
		return string(b)
	}
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError || r == '\\' || !unicode.IsPrint(r) {
			for _, c := range b[:n] {
				fmt.Fprintf(&sb, `\x%02x`, c)
			}
		} else {
			sb.WriteRune(r)
		}
		b = b[n:]
	}
	return sb.String()
}
