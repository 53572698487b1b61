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

// decodeRecord decodes one ring buffer record. boot is the wall-clock time
// at which the boot clock read zero.
func decodeRecord(b []byte, boot time.Time) (Conn, error) {
	if len(b) != recordSize {
		return Conn{}, fmt.Errorf("%w: %d", errRecordSize, len(b))
	}
	ne := binary.NativeEndian
	if ne.Uint32(b[recMagic:]) != magic {
		return Conn{}, errMagic
	}
	ns := ne.Uint64(b[recTime:])
	if ns > 1<<62 {
		return Conn{}, errTime
	}
	pidTgid, uidGid := ne.Uint64(b[recPidTgid:]), ne.Uint64(b[recUidGid:])
	c := Conn{
		Time:     boot.Add(time.Duration(ns)),
		PID:      int(pidTgid >> 32),
		TID:      int(uint32(pidTgid)),
		UID:      uint32(uidGid),
		GID:      uint32(uidGid >> 32),
		CgroupID: ne.Uint64(b[recCgroup:]),
		Comm:     escapeComm(b[recComm : recComm+commLen]),
	}
	port := ne.Uint16(b[recDport:])
	switch ne.Uint16(b[recFamily:]) {
	case afInet:
		c.Src = netip.AddrFrom4([4]byte(b[recSaddr4:]))
		c.Dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[recDaddr4:])), port)
	case afInet6:
		c.Src = netip.AddrFrom16([16]byte(b[recSaddr6:])).Unmap()
		c.Dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[recDaddr6:])).Unmap(), port)
	default:
		return Conn{}, errFamily
	}
	return c, nil
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
