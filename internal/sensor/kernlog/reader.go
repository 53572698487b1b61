package kernlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor"
)

// MaxLine is the longest line a Reader reads, newline excluded. Kernel log
// lines are at most about 1 KiB (the printk record limit), and syslog daemons
// add a few dozen bytes; anything near this size is not a firewall line, and
// the bound keeps a hostile file from growing memory.
const MaxLine = 64 << 10

// Reader is a sensor.Source over a stream of log lines: a syslog file,
// saved journalctl or dmesg output, or /dev/kmsg records.
type Reader struct {
	r      io.Reader
	br     *bufio.Reader
	name   string
	ps     *Parser
	stats  sensor.Stats
	lineNo int
	err    error // a read error to report after the line that came with it
}

var _ sensor.Source = (*Reader)(nil)

// NewReader reads lines from r. name labels problems ("name:LINE: what is
// wrong") and is returned by Name. A nil ps means a zero Parser.
func NewReader(r io.Reader, name string, ps *Parser) *Reader {
	if ps == nil {
		ps = new(Parser)
	}
	return &Reader{r: r, br: bufio.NewReaderSize(r, MaxLine+1), name: name, ps: ps}
}

// Next fills p with the next firewall line's probe. Other lines are counted
// in Stats as ignored, garbled firewall lines and over-long lines as
// malformed. It returns io.EOF at the end of the input and any other read
// error as it is.
func (r *Reader) Next(p *probe.Probe) error {
	for {
		if r.err != nil {
			return r.err
		}
		line, err := r.br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			r.skipLong()
			continue
		case err != nil:
			r.err = err
			if !errors.Is(err, io.EOF) {
				r.err = fmt.Errorf("reading %s: %w", r.name, err)
			}
			if len(line) == 0 {
				continue
			}
		}
		r.lineNo++
		r.stats.Read.Add(1)
		ok, perr := r.ps.Parse(line, p)
		switch {
		case perr != nil:
			r.stats.Problem("%s:%d: %v", r.name, r.lineNo, perr)
		case ok:
			r.stats.Probes.Add(1)
			return nil
		default:
			r.stats.Ignored.Add(1)
		}
	}
}

// skipLong discards the rest of a line that does not fit the buffer.
func (r *Reader) skipLong() {
	r.lineNo++
	r.stats.Read.Add(1)
	r.stats.Problem("%s:%d: line longer than %d bytes, skipped", r.name, r.lineNo, MaxLine)
	for {
		_, err := r.br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			if err != nil {
				r.err = err
				if !errors.Is(err, io.EOF) {
					r.err = fmt.Errorf("reading %s: %w", r.name, err)
				}
			}
			return
		}
	}
}

// Stats returns the reader's counters.
func (r *Reader) Stats() *sensor.Stats { return &r.stats }

// Name returns the name given to NewReader.
func (r *Reader) Name() string { return r.name }

// Close closes the underlying reader if it is an io.Closer.
func (r *Reader) Close() error {
	if c, ok := r.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// HostBootTime returns when this host booted, from the btime line of
// /proc/stat, for Parser.Boot. It is right only for logs written since this
// host's last boot: dmesg and /dev/kmsg, not old syslog files or another
// host's logs. btime has whole-second precision and moves when the clock is
// stepped, so probe times from boot-relative stamps may be a second or so
// off.
func HostBootTime() (time.Time, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, fmt.Errorf("reading boot time: %w", err)
	}
	return parseBtime(b)
}

func parseBtime(b []byte) (time.Time, error) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("btime ")); ok {
			sec, err := strconv.ParseInt(string(bytes.TrimSpace(v)), 10, 64)
			if err != nil || sec <= 0 {
				return time.Time{}, fmt.Errorf("bad btime %q in /proc/stat", v)
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, errors.New("no btime line in /proc/stat")
}
