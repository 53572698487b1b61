package importutil

import (
	"fmt"
	"strconv"
	"strings"
)

// Entry is one key of a KEY="value" file (portsentry.conf, csf.conf), as
// its last setting left it.
type Entry struct {
	Key   string
	Value string
	Line  int   // the line of the setting used (the last)
	Lines []int // every line that set the key, in order
	// Remarks say how the setting used departs from what the tool reads
	// (an unquoted value, text after the closing quote, ...).
	Remarks []string
}

// JunkLine is a line that is neither a comment nor a setting.
type JunkLine struct {
	Line int
	Text string // as written (not yet made safe for a terminal)
	Why  string
}

// Conf is a parsed KEY="value" file.
type Conf struct {
	Entries map[string]*Entry
	Order   []string // keys in the order of their first setting
	Junk    []JunkLine
}

// NewConf returns an empty Conf.
func NewConf() *Conf { return &Conf{Entries: make(map[string]*Entry)} }

// Set records a setting of key at line n: the last setting's value and
// remarks stand, and every line is kept.
func (cf *Conf) Set(key, value string, n int, remarks []string) {
	e := cf.Entries[key]
	if e == nil {
		e = &Entry{Key: key}
		cf.Entries[key] = e
		cf.Order = append(cf.Order, key)
	}
	e.Value, e.Line, e.Remarks = value, n, remarks
	e.Lines = append(e.Lines, n)
}

// From names where a setting came from, for the comment above it:
// "from PS_LIMIT (line 3) and PS_INTERVAL (line 2)". Nil entries are
// skipped.
func From(es ...*Entry) string {
	var parts []string
	for _, e := range es {
		if e != nil {
			parts = append(parts, fmt.Sprintf("%s (line %d)", e.Key, e.Line))
		}
	}
	return "from " + strings.Join(parts, " and ")
}

// FromValue is From with the value, quoted.
func FromValue(e *Entry) string {
	return fmt.Sprintf("from %s (line %d): %s", e.Key, e.Line, Quote(e.Value))
}

// LineList lists the lines a key was set on, the first ten then "...":
// "3, 7, 12".
func LineList(lines []int) string {
	out := make([]string, 0, 10)
	for i, l := range lines {
		if i == 10 {
			out = append(out, "...")
			break
		}
		out = append(out, strconv.Itoa(l))
	}
	return strings.Join(out, ", ")
}
