// Package input opens the files a user points scanwarden at and picks the
// reader from their content, not their name: pcap and pcapng captures,
// kernel firewall logs (syslog, journalctl, dmesg) and flow or abuse-report
// lines. Gzip is undone transparently and "-" means standard input.
//
// It knows nothing of detection.
package input

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/scanwarden/scanwarden/internal/sensor"
	"github.com/scanwarden/scanwarden/internal/sensor/flowreport"
	"github.com/scanwarden/scanwarden/internal/sensor/kernlog"
	"github.com/scanwarden/scanwarden/internal/sensor/pcapfile"
)

// Format is what a file turned out to be.
type Format string

// Formats.
const (
	FormatCapture Format = "capture"
	FormatKernLog Format = "kernel log"
	FormatReport  Format = "flow report"
)

// Options configures the text readers.
type Options struct {
	// Location is the time zone of log and report stamps that carry none.
	// Kernel logs default to the local zone, reports to UTC (see the
	// readers' docs); a non-nil Location overrides both.
	Location *time.Location
	// Now anchors year inference for syslog stamps without a year.
	Now func() time.Time
	// Boot turns boot-relative stamps (dmesg, /dev/kmsg) into wall time.
	Boot time.Time
}

// ErrUnknownFormat means the content is none of the supported formats.
var ErrUnknownFormat = errors.New("unrecognised format")

// sniffBytes is how much of a file is looked at to decide its format.
const sniffBytes = 64 << 10

// Open opens path ("-" for standard input) and returns a source for it.
func Open(path string, opts Options) (sensor.Source, Format, error) {
	var f io.ReadCloser = os.Stdin
	name := "stdin"
	if path != "-" {
		fh, err := os.Open(path)
		if err != nil {
			return nil, "", err
		}
		st, err := fh.Stat()
		if err == nil && st.IsDir() {
			fh.Close()
			return nil, "", fmt.Errorf("%s: is a directory", path)
		}
		f, name = fh, path
	}
	src, format, err := FromReader(f, name, opts)
	if err != nil {
		f.Close()
		return nil, "", err
	}
	return src, format, nil
}

// FromReader sniffs r and returns a source reading it; Close on the source
// closes r.
func FromReader(r io.ReadCloser, name string, opts Options) (sensor.Source, Format, error) {
	br := bufio.NewReaderSize(r, sniffBytes)
	head, err := br.Peek(4)
	if len(head) >= 2 && head[0] == 0x1f && head[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, "", fmt.Errorf("%s: bad gzip data: %w", name, err)
		}
		zr.Multistream(true)
		return FromReader(closeBoth{zr, r}, name, opts)
	}
	if err != nil && err != io.EOF {
		return nil, "", fmt.Errorf("%s: %w", name, err)
	}
	if pcapfile.Sniff(head) {
		src, err := pcapfile.New(readCloser{br, r}, name)
		if err != nil {
			return nil, "", err
		}
		return src, FormatCapture, nil
	}
	buf, _ := br.Peek(sniffBytes)
	format, err := sniffText(buf, name)
	if err != nil {
		return nil, "", err
	}
	rc := readCloser{br, r}
	if format == FormatKernLog {
		ps := &kernlog.Parser{Location: opts.Location, Now: opts.Now, Boot: opts.Boot}
		return kernlog.NewReader(rc, name, ps), format, nil
	}
	ps := &flowreport.Parser{Location: opts.Location, Now: opts.Now}
	return flowreport.NewReader(rc, name, ps), format, nil
}

// sniffText decides between the line formats by counting the lines of the
// file's head that each recognises. An empty file is an (empty) log.
func sniffText(buf []byte, name string) (Format, error) {
	if len(buf) == 0 {
		return FormatKernLog, nil
	}
	if bytes.IndexByte(buf, 0) >= 0 {
		return "", fmt.Errorf("%s: %w: binary data, but not a pcap or pcapng capture", name, ErrUnknownFormat)
	}
	logs, reports, lines := 0, 0, 0
	first := ""
	for len(buf) > 0 && lines < 1000 {
		line := buf
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			line, buf = buf[:i], buf[i+1:]
		} else {
			buf = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		lines++
		if first == "" {
			first = string(line)
		}
		switch {
		case kernlog.LooksLikeLogLine(line):
			logs++
		case flowreport.LooksLikeReportLine(line):
			reports++
		}
	}
	switch {
	case logs == 0 && reports == 0 && lines == 0:
		return FormatKernLog, nil
	case logs == 0 && reports == 0:
		if len(first) > 80 {
			first = first[:80] + "..."
		}
		return "", fmt.Errorf("%s: %w: not a pcap/pcapng capture, kernel firewall log (IN=... SRC=... DST=... PROTO=...) or flow report (SRC/PORT->DST/PORT); first line: %q", name, ErrUnknownFormat, first)
	case logs >= reports:
		return FormatKernLog, nil
	}
	return FormatReport, nil
}

type readCloser struct {
	io.Reader
	c io.Closer
}

func (r readCloser) Close() error { return r.c.Close() }

type closeBoth struct {
	*gzip.Reader
	under io.Closer
}

func (c closeBoth) Close() error {
	err := c.Reader.Close()
	if e := c.under.Close(); err == nil {
		err = e
	}
	return err
}
