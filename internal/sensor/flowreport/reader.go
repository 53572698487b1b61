package flowreport

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor"
)

// Reader is a sensor.Source over the lines of a report. Lines that are not
// report lines are counted as ignored; garbled report lines, binary lines
// and lines longer than MaxLineLen are counted as malformed and skipped.
// Memory stays bounded whatever the input.
type Reader struct {
	r     io.Reader
	br    *bufio.Reader
	name  string
	ps    *Parser
	stats sensor.Stats
	line  int
}

var _ sensor.Source = (*Reader)(nil)

// NewReader reads report lines from r; name (a file name) prefixes problem
// descriptions. ps may be shared with the caller, who can then ask it about
// the line behind each probe (Parser.Last); nil means a zero Parser.
func NewReader(r io.Reader, name string, ps *Parser) *Reader {
	if ps == nil {
		ps = &Parser{}
	}
	// Room for the longest line plus "\r\n": ReadSlice fails on longer ones.
	return &Reader{r: r, br: bufio.NewReaderSize(r, MaxLineLen+2), name: name, ps: ps}
}

// Next fills p with the next report line's probe. It returns io.EOF at the
// end of the input, and other errors only when reading fails.
func (r *Reader) Next(p *probe.Probe) error {
	for {
		b, err := r.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			r.line++
			r.stats.Read.Add(1)
			r.stats.Problem("%s:%d: %v, skipped", r.name, r.line, ErrTooLong)
			if err := r.skipRest(); err != nil {
				return r.readErr(err)
			}
			continue
		}
		if len(b) == 0 && err != nil {
			return r.readErr(err)
		}
		r.line++
		r.stats.Read.Add(1)
		k, perr := r.ps.parse(b, p)
		switch {
		case perr != nil:
			r.stats.Problem("%s:%d: %v: %s", r.name, r.line, perr, excerpt(b))
		case k == kindProbe:
			r.stats.Probes.Add(1)
			return nil // a read error, if any, comes back on the next call
		default:
			r.stats.Ignored.Add(1)
		}
		if err != nil {
			return r.readErr(err)
		}
	}
}

// skipRest drops the rest of an over-long line.
func (r *Reader) skipRest() error {
	for {
		_, err := r.br.ReadSlice('\n')
		if !errors.Is(err, bufio.ErrBufferFull) {
			return err
		}
	}
}

func (r *Reader) readErr(err error) error {
	if err == nil || err == io.EOF {
		return io.EOF
	}
	return fmt.Errorf("reading %s: %w", r.name, err)
}

// Stats returns the counts of what was read.
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

// excerpt quotes the start of a line for a problem report: escaped, so a
// hostile report cannot put terminal escapes on an operator's screen, and
// cut to 80 bytes.
func excerpt(b []byte) string { return quoteCut(trimEOL(b), 80) }
