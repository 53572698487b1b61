package follow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/sensor/kernlog"
)

// /dev/kmsg (Documentation/ABI/testing/dev-kmsg): every read(2) returns one
// record, "prio,seq,usec,flags[,...];message\n", followed by continuation
// lines (" SUBSYSTEM=net\n") that carry the record's dictionary. The message
// has every byte below ' ', from 127 up and '\' written as "\xHH". A read
// fails with EPIPE when the record we were due to read has been overwritten
// (the ring buffer wrapped), and the next read goes on with the oldest record
// left; with O_NONBLOCK it fails with EAGAIN when there is nothing new.

// kmsgBuf holds one record. A record is at most PRINTK_MESSAGE_MAX (2 KiB)
// of text, escaped (up to 4 bytes a byte), plus its dictionary; a buffer
// smaller than the record makes the read fail with EINVAL and lose it.
const kmsgBuf = 16 << 10

// kmsgPoll bounds how long a read waits for a record, hence how long Run
// takes to notice that it should stop.
const kmsgPoll = 200 * time.Millisecond

type kmsgReader struct {
	path   string
	fd     int
	buf    []byte
	carry  []byte // an unfinished line, when the source is not the device (tests)
	skip   bool   // dropping the rest of a line too long to keep (tests)
	caught bool   // a read has found nothing new: later records are live, not backlog

	// read is unix.Read; tests replace it to fake the device's errors
	// (EPIPE, EINVAL), which no FIFO or file gives.
	read func(fd int, p []byte) (int, error)
}

// openKmsg opens path non-blocking, at its end unless fromStart. A path that
// is not /dev/kmsg (a FIFO or a file, for tests) is read as lines.
func openKmsg(path string, fromStart bool) (*kmsgReader, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if !fromStart {
		// /dev/kmsg supports SEEK_END: the next read returns the next
		// record logged. A FIFO cannot seek and has no past anyway.
		if _, err := unix.Seek(fd, 0, unix.SEEK_END); err != nil && !errors.Is(err, unix.ESPIPE) {
			unix.Close(fd)
			return nil, &os.PathError{Op: "seek", Path: path, Err: err}
		}
	}
	return &kmsgReader{path: path, fd: fd, buf: make([]byte, kmsgBuf), read: unix.Read}, nil
}

func (k *kmsgReader) close() {
	if k.fd >= 0 {
		unix.Close(k.fd)
		k.fd = -1
	}
}

// follow reads records until ctx ends, calling fn for each (fn must not keep
// the record). It returns an error only when the source fails for good.
func (k *kmsgReader) follow(ctx context.Context, c *counters, fn func(*kmsgRecord)) error {
	var r kmsgRecord
	for ctx.Err() == nil {
		n, err := k.read(k.fd, k.buf)
		switch {
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.EAGAIN):
			k.caught = true
			k.wait()
		case errors.Is(err, unix.EPIPE):
			// "Ring buffer overrun, messages lost": the kernel has moved
			// our position to the oldest record left.
			c.overruns.Add(1)
		case errors.Is(err, unix.EINVAL):
			// The record did not fit kmsgBuf; the kernel has skipped it.
			c.base.Problem("%s: a record longer than %d bytes, lost", k.path, kmsgBuf)
		case err != nil:
			return fmt.Errorf("reading %s: %w", k.path, err)
		case n == 0:
			// End of a regular file, or a FIFO nobody writes to: only
			// in tests. Poll would not wait; sleep instead.
			k.caught = true
			sleep(ctx, 20*time.Millisecond)
		default:
			k.split(k.buf[:n], c, &r, fn)
		}
	}
	return nil
}

func (k *kmsgReader) wait() {
	fds := []unix.PollFd{{Fd: int32(k.fd), Events: unix.POLLIN}}
	_, _ = unix.Poll(fds, int(kmsgPoll/time.Millisecond)) // EINTR or a timeout: the caller reads again
}

// split hands each record line in b to fn, skipping continuation lines.
func (k *kmsgReader) split(b []byte, c *counters, r *kmsgRecord, fn func(*kmsgRecord)) {
	if len(k.carry) > 0 {
		k.carry = append(k.carry, b...)
		b = k.carry
	}
	for {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			break
		}
		line := b[:i]
		b = b[i+1:]
		if k.skip {
			k.skip = false // the end of a line too long to keep
			continue
		}
		if len(line) == 0 || line[0] == ' ' {
			continue
		}
		r.parse(line)
		r.backlog = !k.caught
		fn(r)
	}
	switch {
	case k.skip:
		b = nil
	case len(b) > kernlog.MaxLine:
		c.base.Problem("%s: a line longer than %d bytes, skipped", k.path, kernlog.MaxLine)
		b, k.skip = nil, true
	}
	if len(k.carry) > 0 {
		// b is the tail of k.carry itself: copy handles the overlap.
		k.carry = k.carry[:copy(k.carry, b)]
	} else {
		k.carry = append(k.carry[:0], b...)
	}
}

// kmsgRecord is one /dev/kmsg record, parsed.
type kmsgRecord struct {
	line    []byte // header and message
	msg     []byte // the message, escaped as the kernel wrote it
	prio    int    // facility<<3 | level
	seq     uint64
	usec    int64 // since boot
	ok      bool  // the header was well formed
	backlog bool  // in the buffer before we caught up with the kernel

	scratch []byte
}

// parse reads "prio,seq,usec,flags[,more];message".
func (r *kmsgRecord) parse(line []byte) {
	*r = kmsgRecord{line: line, scratch: r.scratch[:0]}
	semi := bytes.IndexByte(line, ';')
	if semi < 0 {
		return
	}
	head := line[:semi]
	var nums [3]uint64
	for i := range nums {
		j := 0
		for j < len(head) && head[j] >= '0' && head[j] <= '9' && j < 20 {
			nums[i] = nums[i]*10 + uint64(head[j]-'0')
			j++
		}
		if j == 0 || j == 20 || j == len(head) || head[j] != ',' {
			return
		}
		head = head[j+1:]
	}
	// prio is facility<<3 | level. Syslog facilities stop at 23, but
	// devkmsg_write takes any number a writer puts in "<N>" and the kernel
	// keeps the facility in a u8 (struct printk_info), so /dev/kmsg shows
	// up to 255<<3|7: "<1003>" is read back as "1003,...". usec below 10^15
	// is 31 years of uptime.
	if nums[0] > 255<<3|7 || nums[2] >= 1e15 {
		return
	}
	r.prio, r.seq, r.usec = int(nums[0]), nums[1], int64(nums[2])
	r.msg = line[semi+1:]
	r.ok = true
}

// facility is the record's syslog facility: 0 (kern) only for records the
// kernel logged. A record written to /dev/kmsg from user space gets 1
// (user), or the facility its writer named (printk's devkmsg_write), but
// not 0, except by the byte wrapping described in the package doc.
func (r *kmsgRecord) facility() int { return r.prio >> 3 }

func (r *kmsgRecord) time(boot time.Time) time.Time {
	return boot.Add(time.Duration(r.usec) * time.Microsecond)
}

// text returns the message with the kernel's "\xHH" escapes undone, as
// syslog daemons and journald store it.
func (r *kmsgRecord) text() []byte {
	if bytes.IndexByte(r.msg, '\\') < 0 {
		return r.msg
	}
	out := r.scratch[:0]
	for i := 0; i < len(r.msg); i++ {
		c := r.msg[i]
		if c == '\\' && i+3 < len(r.msg) && r.msg[i+1] == 'x' {
			if hi, ok := unhex(r.msg[i+2]); ok {
				if lo, ok := unhex(r.msg[i+3]); ok {
					out = append(out, hi<<4|lo)
					i += 3
					continue
				}
			}
		}
		out = append(out, c)
	}
	r.scratch = out
	return out
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
