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
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Size limits. PortSentry's own files are a few kilobytes (Debian's
// portsentry.conf is 10 KB); anything near these is not one.
const (
	MaxConfSize   = 1 << 20
	MaxIgnoreSize = 1 << 20
)

// Note is one line of the report: a key of the input (or "" for a line that
// is not a setting), where it was, and what became of it.
type Note struct {
	Key  string `json:"key"`
	Line int    `json:"line,omitempty"`
	Text string `json:"text"`
}

// Result is a conversion.
type Result struct {
	// YAML is the complete scanwarden configuration: a comment header,
	// then only the settings that differ from the defaults.
	YAML []byte `json:"-"`
	// Mapped keys carry over with the same meaning.
	Mapped []Note `json:"mapped"`
	// Changed keys carry over, or were deliberately not, with a different
	// meaning: each says how scanwarden behaves and what to do.
	Changed []Note `json:"changed"`
	// Unsupported keys (and lines that are not settings) have no
	// equivalent: each says why.
	Unsupported []Note `json:"unsupported"`
	// Advice is about the whole configuration rather than one key (what
	// PortSentry's command line decided, what scanwarden adds).
	Advice []string `json:"advice,omitempty"`
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
	if len(data) > max {
		return fmt.Errorf("%d bytes, more than the %d a PortSentry file can plausibly be", len(data), max)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return ErrBinary
	}
	return nil
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
	f, err := os.Open(name)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes, which no PortSentry file is", name, max)
	}
	return data, nil
}

// Summary counts the report: "9 mapped, 6 changed meaning, 1 without
// equivalent".
func (r *Result) Summary() string {
	return fmt.Sprintf("%d mapped, %d changed meaning, %d without equivalent", len(r.Mapped), len(r.Changed), len(r.Unsupported))
}

// WriteReport writes the report for people: the three sections, then the
// advice.
func (r *Result) WriteReport(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "PortSentry import: %s.\n", r.Summary())
	section := func(title string, notes []Note, arrow bool) {
		if len(notes) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s\n", title)
		for _, n := range notes {
			where := n.Key
			switch {
			case n.Key == "" && n.Line > 0:
				where = "line " + strconv.Itoa(n.Line)
			case n.Line > 0:
				where += " (line " + strconv.Itoa(n.Line) + ")"
			}
			sep := ": "
			if arrow {
				sep = " → "
			}
			wrap(&b, "  "+where+sep+n.Text, "      ")
		}
	}
	section("Mapped:", r.Mapped, true)
	section("Changed meaning (read these):", r.Changed, false)
	section("No equivalent:", r.Unsupported, false)
	if len(r.Advice) > 0 {
		b.WriteString("\nAlso:\n")
		for _, a := range r.Advice {
			wrap(&b, "  - "+a, "    ")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// reportWidth is where report lines are wrapped.
const reportWidth = 100

// wrap writes text as lines of at most reportWidth bytes (a longer word
// gets a line of its own), continuation lines indented.
func wrap(b *strings.Builder, text, indent string) {
	line := 0
	for i, w := range strings.Split(text, " ") {
		switch {
		case i == 0:
		case line+1+len(w) > reportWidth && line > len(indent):
			b.WriteString("\n" + indent)
			line = len(indent)
		default:
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteByte('\n')
}

// quote renders text from the input for the report and for YAML comments:
// quoted, anything unprintable escaped (so no input can forge report lines
// or break a comment), at most 100 bytes of it.
func quote(s string) string {
	if len(s) > 100 {
		return strconv.QuoteToGraphic(s[:100]) + "..."
	}
	return strconv.QuoteToGraphic(s)
}
