package triage

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"

	"github.com/scanwarden/scanwarden/internal/sensor"
	"github.com/scanwarden/scanwarden/internal/sensor/flowreport"
	"github.com/scanwarden/scanwarden/internal/sensor/input"
	"github.com/scanwarden/scanwarden/internal/sensor/kernlog"
	"github.com/scanwarden/scanwarden/internal/sensor/pcapfile"
)

// sniffBytes is how much of the input decides its format; the same amount
// internal/sensor/input looks at.
const sniffBytes = 64 << 10

// maxLine is the longest line passed on as it is; the readers below refuse
// longer ones (flowreport.MaxLineLen, kernlog.MaxLine) and count them.
const maxLine = 64 << 10

// openReport turns the raw input into a source of probes: bounded, gzip
// undone, refused when binary, mail quoting and indentation removed, and
// read by the parser internal/sensor/input would pick for it.
func openReport(ctx context.Context, r io.Reader, name string, opts *Options) (*report, error) {
	lim := &limitReader{ctx: ctx, r: r, left: opts.MaxBytes}
	br := bufio.NewReaderSize(lim, sniffBytes)
	head, err := br.Peek(2)
	if err != nil && err != io.EOF {
		return nil, readFailed(name, err)
	}
	var text io.Reader = br
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: bad gzip data: %w", safe(name), err)
		}
		// The bound applies to what gzip makes of it too: a small bomb
		// must not stream gigabytes through the parser.
		text = &limitReader{ctx: ctx, r: zr, left: opts.MaxBytes}
	}
	tb := bufio.NewReaderSize(text, sniffBytes)
	head, err = tb.Peek(sniffBytes)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, readFailed(name, err)
	}
	if err := checkText(head); err != nil {
		return nil, fmt.Errorf("%s: %w", safe(name), err)
	}
	norm := &unquoter{br: bufio.NewReaderSize(tb, maxLine+2)}
	nb := bufio.NewReaderSize(norm, sniffBytes)
	head, err = nb.Peek(sniffBytes)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, readFailed(name, err)
	}
	format, err := sniff(head, name, opts)
	if err != nil {
		return nil, err
	}
	rep := &report{format: format, offset: opts.Offset, norm: norm}
	if format == input.FormatKernLog {
		ps := &kernlog.Parser{Location: opts.Location, Now: opts.Now}
		rep.Source = kernlog.NewReader(nb, safe(name), ps)
	} else {
		rep.ps = &flowreport.Parser{Location: opts.Location, Now: opts.Now}
		rep.Source = flowreport.NewReader(nb, safe(name), rep.ps)
	}
	rep.init(opts.MaxLookups)
	return rep, nil
}

func readFailed(name string, err error) error {
	if errors.Is(err, ErrTooLarge) {
		return err // reported with the limit by Run
	}
	return fmt.Errorf("reading %s: %w", safe(name), err)
}

// sniff asks internal/sensor/input which reader the head calls for, so that
// triage reads a file exactly as `scanwarden analyze` does. Only the
// decision is used: the reader is made here, to keep its parser at hand.
func sniff(head []byte, name string, opts *Options) (input.Format, error) {
	cp := bytes.Clone(head)
	src, format, err := input.FromReader(io.NopCloser(bytes.NewReader(cp)), safe(name), input.Options{Location: opts.Location, Now: opts.Now})
	if err != nil {
		if errors.Is(err, input.ErrUnknownFormat) {
			return "", fmt.Errorf("%w: %w", ErrNoReportLines, err)
		}
		return "", err
	}
	src.Close()
	switch format {
	case input.FormatKernLog, input.FormatReport:
		return format, nil
	}
	return "", fmt.Errorf("%s: %w: a %s", safe(name), ErrNotText, format)
}

// checkText refuses binary input: a capture, NUL bytes, or a head that is
// mostly control bytes and invalid UTF-8. Text with a few such bytes is
// read; the lines that carry them are skipped and counted by the parsers.
func checkText(head []byte) error {
	if pcapfile.Sniff(head) {
		return fmt.Errorf("%w: a packet capture (pcap or pcapng); `scanwarden analyze` reads those", ErrNotText)
	}
	if bytes.HasPrefix(head, []byte{0xff, 0xfe}) || bytes.HasPrefix(head, []byte{0xfe, 0xff}) {
		return fmt.Errorf("%w: UTF-16 text; convert it to UTF-8 first (iconv -f UTF-16 -t UTF-8)", ErrNotText)
	}
	if i := bytes.IndexByte(head, 0); i >= 0 {
		return fmt.Errorf("%w: binary data (a NUL byte at offset %d)", ErrNotText, i)
	}
	bad := 0
	for b := head; len(b) > 0; {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 && !(len(b) < utf8.UTFMax && !utf8.FullRune(b)) {
			bad++
		} else if r < 0x20 && r != '\t' && r != '\n' && r != '\r' && r != '\f' || r == 0x7f {
			bad++
		}
		b = b[n:]
	}
	// One byte in ten: mail in Latin-1 or with a stray escape sequence is
	// well under it; compressed or encrypted data is far over it (about
	// 60% of random bytes are not valid UTF-8).
	if bad*10 > len(head) {
		return fmt.Errorf("%w: %d of the first %d bytes are control bytes or invalid UTF-8 (binary data, or an encoding other than UTF-8)", ErrNotText, bad, len(head))
	}
	return nil
}

// limitReader fails with ErrTooLarge once more than left bytes were asked
// for: unlike io.LimitReader, the end of the allowance is an error, not the
// end of the input. It stops when ctx is done, so that a caller can cancel
// the reading of a large report.
type limitReader struct {
	ctx  context.Context
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left < 0 {
		return 0, ErrTooLarge
	}
	if err := l.ctx.Err(); err != nil {
		return 0, err
	}
	if int64(len(p)) > l.left+1 {
		p = p[:l.left+1] // one byte more tells a file of exactly the limit from a larger one
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		return n - 1, ErrTooLarge
	}
	return n, err
}

// unquoter removes what mail does to report lines: quoting ("> ", "> > ")
// and indentation. Kernel log readers need it (they look for the stamp at
// the start of the line); the report parser does it too, so it changes
// nothing there.
//
// Lines longer than maxLine are dropped here and counted (long), an empty
// line taking their place so that the readers' line numbers stay right:
// passed on, the first 64 KiB of one would be all the format sniffing
// sees. It also counts lines with control bytes or invalid UTF-8, for the
// error message when nothing could be read.
type unquoter struct {
	br          *bufio.Reader
	pending     []byte
	inLong      bool
	line        int
	long        int
	firstLong   int // line number of the first long line
	binaryLines int
	err         error
}

var newline = []byte{'\n'}

func (u *unquoter) Read(p []byte) (int, error) {
	for len(u.pending) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		line, err := u.br.ReadSlice('\n')
		full := errors.Is(err, bufio.ErrBufferFull)
		if err != nil && !full {
			u.err = err
		}
		switch {
		case full && !u.inLong:
			u.inLong = true
			u.line++
			if u.long++; u.long == 1 {
				u.firstLong = u.line
			}
		case u.inLong:
			if !full {
				u.inLong = false
				u.pending = newline
			}
		case len(line) > 0:
			u.line++
			u.pending = stripQuoting(line)
			if !isCleanLine(u.pending) {
				u.binaryLines++
			}
		}
	}
	n := copy(p, u.pending)
	u.pending = u.pending[n:]
	return n, nil
}

// stripQuoting drops leading blanks and mail quote marks.
func stripQuoting(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '>') {
		b = b[1:]
	}
	return b
}

func isCleanLine(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(b)
}

var (
	_ sensor.Source = (*report)(nil)
	_ io.Reader     = (*unquoter)(nil)
)
