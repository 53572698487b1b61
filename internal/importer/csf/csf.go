// Package csf converts the port-scan half of a CSF/LFD configuration
// (ConfigServer Security & Firewall: csf.conf and the csf.allow, csf.ignore,
// csf.deny, csf.dyndns and csf.blocklists lists, with their Include lines)
// into scanwarden's YAML configuration, and says key by key and entry by
// entry what mapped, what changed meaning and what has no equivalent: no
// key or entry is dropped silently.
//
// The conversion is a pure function of its input (Convert); ReadDir reads a
// directory the way `scanwarden import csf DIR` does. The YAML holds only
// the settings that differ from scanwarden's defaults, each under a comment
// naming the CSF key or file line it came from, and is checked with
// config.Parse before it is returned. The permanent blocks of csf.deny are
// not configuration (scanwarden keeps its bans in its store): they come out
// as `scanwarden ban` commands (Result.BansScript).
package csf

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// Size limits. CSF's own csf.conf is 130 KB and its lists are a few
// kilobytes; a csf.deny kept at DENY_IP_LIMIT (200 by default, some raise it
// to thousands with LF_IPSET) stays well under a megabyte. Anything near
// these is not a CSF file, and an Include cannot make the import read more
// than MaxTotal.
const (
	MaxConfSize     = 1 << 20
	MaxListSize     = 4 << 20
	MaxTotal        = 16 << 20
	MaxIncludeDepth = 8  // CSF itself follows Includes without a limit, and loops for ever on a cycle
	MaxFiles        = 64 // files read through Include lines, all lists together
)

// Lists are the files of a CSF directory the import reads besides csf.conf,
// in the order it reports them.
var Lists = []string{"csf.allow", "csf.ignore", "csf.deny", "csf.dyndns", "csf.blocklists"}

// Note is one line of the report: a key of csf.conf (or a list file's name,
// or "" for a line that is not a setting), where it was, and what became of
// it.
type Note = importutil.Note

// Input is everything a conversion reads.
type Input struct {
	// Dir is the directory the files come from ("/etc/csf"), for the report
	// and for Include lines: an Include of /etc/csf/NAME is looked for in
	// Dir first when Dir is another copy of /etc/csf.
	Dir string
	// Files are the files of Dir by name: "csf.conf" (required) and any of
	// Lists. A name that is missing: that file does not exist.
	Files map[string][]byte
	// ConfName is the name csf.conf was read under, when another (a copy
	// given by its path); "" for csf.conf.
	ConfName string
	// ReadInclude reads a file an Include line names. nil: Include lines
	// are not followed, and each is reported.
	ReadInclude func(path string) ([]byte, error)
	// Now is when the conversion is made, for the header (zero: now).
	Now time.Time
}

// Result is a conversion.
type Result struct {
	// YAML is the complete scanwarden configuration: a comment header,
	// then only the settings that differ from the defaults.
	YAML []byte `json:"-"`
	// Report holds every port-scan key of csf.conf, and every group of
	// list entries, in one of three sections (Mapped, Changed,
	// Unsupported), and Advice about the whole configuration.
	importutil.Report
	// OutOfScope are the keys of csf.conf that have nothing to do with port
	// scans (login failure tracking, process tracking, the UI, ...), by
	// name only: their values, some of them secrets, are never copied.
	OutOfScope []string `json:"out_of_scope"`
	// Entries are every entry of the lists (and of the files they include),
	// each with the section of the report it is in and what became of it.
	Entries []Entry `json:"entries"`
	// Bans are csf.deny's permanent blocks, to be made with `scanwarden
	// ban` (BansScript): scanwarden keeps its bans in its store, not in
	// the configuration.
	Bans []Ban `json:"bans"`
}

// Section names a section of the report, for Entry.
type Section string

// The sections of the report.
const (
	Mapped      Section = "mapped"
	Changed     Section = "changed"
	Unsupported Section = "unsupported"
)

// Entry is one entry of a list file and what became of it.
type Entry struct {
	File    string  `json:"file"` // "csf.allow", or the path an Include named
	Line    int     `json:"line"`
	Text    string  `json:"text"` // the entry as written, without its comment
	Section Section `json:"section"`
	As      string  `json:"as"`
}

// Ban is one permanent block of csf.deny, carried over as a `scanwarden ban`
// command.
type Ban struct {
	Target string `json:"target"` // an address or prefix
	Reason string `json:"reason"` // the file, line and the entry's comment
	File   string `json:"file"`
	Line   int    `json:"line"`
	// Held says why the command is written commented out (a prefix wider
	// than /16 in IPv4 or /32 in IPv6): run it only after checking. "" for
	// none.
	Held string `json:"held,omitempty"`
}

// ErrBinary is returned for input that holds NUL bytes: not a text file.
var ErrBinary = errors.New("binary data, not a CSF configuration")

// Convert converts a CSF directory's files into a scanwarden configuration
// and a report. The error is for input that is not a CSF configuration at
// all (no csf.conf, binary, too large); anything else is reported in the
// Result.
func Convert(in Input) (*Result, error) {
	if in.Dir == "" {
		in.Dir = "/etc/csf"
	}
	conf, ok := in.Files["csf.conf"]
	if !ok {
		return nil, fmt.Errorf("%s: no csf.conf", in.Dir)
	}
	if in.ConfName == "" {
		in.ConfName = "csf.conf"
	}
	if err := importutil.CheckText(conf, MaxConfSize, "CSF", ErrBinary); err != nil {
		return nil, fmt.Errorf("%s: %w", in.path(in.ConfName), err)
	}
	for _, name := range Lists {
		if data, ok := in.Files[name]; ok {
			if err := importutil.CheckText(data, MaxListSize, "CSF", ErrBinary); err != nil {
				return nil, fmt.Errorf("%s: %w", in.path(name), err)
			}
		}
	}
	if in.Now.IsZero() {
		in.Now = time.Now()
	}
	c := newConverter(in)
	c.convert()
	return c.result()
}

// path is a file of the input directory, for messages.
func (in Input) path(name string) string {
	if in.Dir == "" {
		return name
	}
	return in.Dir + "/" + name
}

// WriteReport writes the report for people: the three sections, the keys
// out of scope by name, then the advice.
func (r *Result) WriteReport(w io.Writer) error {
	var oos string
	if len(r.OutOfScope) > 0 {
		oos = fmt.Sprintf("%s of csf.conf, by name only (their values, some of them secrets, are not copied): %s.",
			importutil.Plural(len(r.OutOfScope), "key", "keys"), strings.Join(r.OutOfScope, ", "))
	}
	return r.Report.Write(w, "CSF import: "+r.Summary(), importutil.Section{Title: "Not about port scans (out of scope):", Text: oos})
}

// Summary counts the report, the keys out of scope too.
func (r *Result) Summary() string {
	return fmt.Sprintf("%s; %d out of scope", r.Report.Summary(), len(r.OutOfScope))
}
