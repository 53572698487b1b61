package nflog

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Why the socket is read here rather than with netlink.Conn.Receive: that
// allocates a buffer and a []Message per read, and every message's Data,
// and it peeks first (two system calls). The sensor reads each datagram
// (a batch of up to queueThreshold messages) into one buffer kept for its
// life, through the Conn's syscall.RawConn so that the read still waits in
// Go's network poller and honours deadlines, and walks the messages in
// place. mdlayher/netlink still makes the socket (in the right namespace),
// numbers and sends the configuration requests.

// sock is the receiving side of the netlink socket.
type sock struct {
	conn *netlink.Conn
	rc   syscall.RawConn
	buf  []byte

	// Filled by read, the function RawConn.Read calls; a method value made
	// once, so a read allocates nothing.
	n       int
	errno   unix.Errno
	from    unix.RawSockaddrNetlink
	fromLen uint32
	read    func(fd uintptr) bool

	rcvbuf int // SO_RCVBUF as the kernel set it
}

func newSock(c *netlink.Conn, rcvbuf int) (*sock, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("nflog: %w", err)
	}
	k := &sock{conn: c, rc: rc, buf: make([]byte, readBufferSize)}
	k.read = k.recvfrom
	var serr error
	err = rc.Control(func(fd uintptr) {
		// SO_RCVBUFFORCE passes rmem_max (208 KiB by default) with
		// CAP_NET_ADMIN, which binding a group needs anyway.
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); serr != nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
		}
		k.rcvbuf, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, fmt.Errorf("nflog: setting the socket's receive buffer to %d bytes: %w", rcvbuf, err)
	}
	return k, nil
}

// recvfrom reads one datagram; it reports false to be called again when
// the socket is ready (EAGAIN). MSG_TRUNC makes the kernel return the
// datagram's full length, so a datagram larger than the buffer is seen.
func (k *sock) recvfrom(fd uintptr) bool {
	k.fromLen = unix.SizeofSockaddrNetlink
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, fd,
		uintptr(unsafe.Pointer(&k.buf[0])), uintptr(len(k.buf)), unix.MSG_TRUNC,
		uintptr(unsafe.Pointer(&k.from)), uintptr(unsafe.Pointer(&k.fromLen)))
	if e == unix.EAGAIN {
		return false
	}
	k.n, k.errno = int(n), e
	return true
}

// recv reads one datagram into k.buf. errno is the socket's error (ENOBUFS:
// the kernel dropped messages for want of buffer space); err is the
// poller's (a deadline, a closed socket).
func (k *sock) recv() (n int, errno unix.Errno, err error) {
	if err := k.rc.Read(k.read); err != nil {
		return 0, 0, err
	}
	if k.errno != 0 {
		return 0, k.errno, nil
	}
	return k.n, 0, nil
}

// request sends a configuration message and waits for the kernel's
// acknowledgement. Log messages that arrive meanwhile are kept for Run
// (hold) or discarded (when closing).
func (s *Sensor) request(body []byte, hold bool) error {
	req, err := s.conn.Send(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(msgConfig), Flags: netlink.Request | netlink.Acknowledge},
		Data:   body,
	})
	if err != nil {
		return err
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(ackTimeout)); err != nil {
		return err
	}
	defer s.conn.SetReadDeadline(time.Time{})
	for {
		n, errno, err := s.sock.recv()
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return fmt.Errorf("no answer from the kernel within %v", ackTimeout)
		case err != nil:
			return err
		case errno == unix.ENOBUFS:
			s.overruns.Add(1) // the answer may be lost with the rest; waited for anyway
			continue
		case errno == unix.EINTR:
			continue
		case errno != 0:
			return errno
		}
		b, ok := s.datagram(n)
		if !ok {
			continue
		}
		if errno, found := findAck(b, req.Header.Sequence); found {
			if errno != 0 {
				return unix.Errno(errno)
			}
			return nil
		}
		s.hold(b, hold)
	}
}

// findAck looks for the acknowledgement of request seq in a datagram.
func findAck(b []byte, seq uint32) (errno int32, found bool) {
	for {
		m, rest, ok, _ := nextMessage(b)
		if !ok {
			return 0, false
		}
		b = rest
		if m.typ == nlmsgError && m.seq == seq {
			if errno, ok := ackError(m.body); ok {
				return errno, true
			}
		}
	}
}

// hold keeps a copy of a datagram of log messages for Run, up to
// maxPending bytes; the rest, and everything read while closing, is
// counted as discarded.
func (s *Sensor) hold(b []byte, keep bool) {
	if keep && s.pendingSize+len(b) <= maxPending {
		s.pending = append(s.pending, slices.Clone(b))
		s.pendingSize += len(b)
		return
	}
	for {
		m, rest, ok, _ := nextMessage(b)
		if !ok {
			return
		}
		b = rest
		if m.typ == msgPacket {
			s.discarded.Add(1)
		}
	}
}
