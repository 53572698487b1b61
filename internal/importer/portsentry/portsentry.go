// Package portsentry converts a PortSentry configuration (1.2, as Debian
// ships it, or 2.x) and its ignore file into scanwarden's YAML
// configuration, and says key by key what mapped, what changed meaning and
// what has no equivalent: no key of the input is dropped silently.
//
// The conversion is a pure function of its input (Convert, ConvertInput);
// ReadInput reads the files the way `scanwarden import portsentry` does.
// The YAML holds only the settings that differ from scanwarden's defaults,
// each under a comment naming the PortSentry key it came from, and is
// checked with config.Parse before it is returned.
package portsentry

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// Size limits. PortSentry's own files are a few kilobytes (Debian's
// portsentry.conf is 10 KB); anything near these is not one.
const (
	MaxConfSize   = 1 << 20
	MaxIgnoreSize = 1 << 20
)

// Note is one line of the report: a key of the input (or "" for a line that
// is not a setting), where it was, and what became of it.
type Note = importutil.Note

// Result is a conversion.
type Result struct {
	// YAML is the complete scanwarden configuration: a comment header,
	// then only the settings that differ from the defaults.
	YAML []byte `json:"-"`
	// Report is every key in one of three sections (Mapped, Changed,
	// Unsupported), and Advice about the whole configuration (what
	// PortSentry's command line decided, what scanwarden adds).
	importutil.Report
}

// Input is everything a conversion reads.
type Input struct {
	Conf     []byte
	ConfName string
	// Ignore is the ignore file's content; nil when it was not read.
	Ignore     []byte
	IgnoreName string
	// IgnoreErr is why the file IGNORE_FILE names could not be read, when
	// Ignore is nil.
	IgnoreErr error
	// Modes are PortSentry's modes as it was started, which its command
	// line chose and the file does not say: tcp, stcp, atcp, udp, sudp,
	// audp (1.2; Debian: TCP_MODE and UDP_MODE in /etc/default/portsentry)
	// or connect, stealth (2.x). Empty: not known.
	Modes []string
	// Now is when the conversion is made, for the header (zero: now).
	Now time.Time
}

// Modes lists the values Input.Modes may hold.
var Modes = []string{"tcp", "stcp", "atcp", "udp", "sudp", "audp", "connect", "stealth"}

// ErrBinary is returned for input that holds NUL bytes: not a text file.
var ErrBinary = errors.New("binary data, not a PortSentry configuration")

// Convert converts a portsentry.conf (read from confName) and, when ignore
// is not nil, the ignore file (read from ignoreName) into a scanwarden
// configuration and a report. The error is for input that is not a
// PortSentry configuration at all (binary, too large); anything else in it
// is reported in the Result.
func Convert(conf []byte, confName string, ignore []byte, ignoreName string) (*Result, error) {
	return ConvertInput(Input{Conf: conf, ConfName: confName, Ignore: ignore, IgnoreName: ignoreName})
}

// ConvertInput is Convert with every input spelled out.
func ConvertInput(in Input) (*Result, error) {
	if in.ConfName == "" {
		in.ConfName = "portsentry.conf"
	}
	if err := checkText(in.Conf, MaxConfSize); err != nil {
		return nil, fmt.Errorf("%s: %w", in.ConfName, err)
	}
	if in.Ignore != nil {
		if err := checkText(in.Ignore, MaxIgnoreSize); err != nil {
			return nil, fmt.Errorf("%s: %w", in.IgnoreName, err)
		}
	}
	for _, m := range in.Modes {
		if !slices.Contains(Modes, m) {
			return nil, fmt.Errorf("unknown PortSentry mode %q (want one of %s)", m, strings.Join(Modes, ", "))
		}
	}
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	c := newConverter(in)
	c.convert()
	return c.result()
}

func checkText(data []byte, max int) error {
	return importutil.CheckText(data, max, "PortSentry", ErrBinary)
}

// ReadInput reads a portsentry.conf and its ignore file as the CLI does:
// the ignore file named (ignorePath, --ignore) or else the one IGNORE_FILE
// names. An unreadable configuration, or an unreadable ignore file that was
// named, is an error; an IGNORE_FILE that cannot be read is reported by the
// conversion (Input.IgnoreErr).
func ReadInput(confPath, ignorePath string) (Input, error) {
	in := Input{ConfName: confPath}
	var err error
	if in.Conf, err = readLimited(confPath, MaxConfSize); err != nil {
		return in, err
	}
	if ignorePath != "" {
		in.IgnoreName = ignorePath
		if in.Ignore, err = readLimited(ignorePath, MaxIgnoreSize); err != nil {
			return in, fmt.Errorf("the ignore file %w", err)
		}
		return in, nil
	}
	if p := IgnoreFile(in.Conf); p != "" {
		in.IgnoreName = p
		in.Ignore, in.IgnoreErr = readLimited(p, MaxIgnoreSize)
	}
	return in, nil
}

// readLimited reads at most max bytes (and says so when there are more),
// so a huge or endless file (/dev/zero) costs nothing.
func readLimited(name string, max int) ([]byte, error) {
	return importutil.ReadLimited(name, max, "PortSentry")
}

// WriteReport writes the report for people: the three sections, then the
// advice.
func (r *Result) WriteReport(w io.Writer) error {
	return r.Report.Write(w, "PortSentry import: "+r.Summary())
}
