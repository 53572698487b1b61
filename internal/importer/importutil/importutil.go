// Package importutil holds what the importers of other tools'
// configurations (internal/importer/...) share: the report of what mapped,
// what changed meaning and what has no equivalent, and the writing of the
// scanwarden YAML that holds only the settings differing from the defaults,
// each under a comment naming its source, checked with config.Parse.
package importutil

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
)

// Note is one line of a report: a key of the input (or "" for a line that is
// not a setting), where it was, and what became of it.
type Note struct {
	Key  string `json:"key"`
	Line int    `json:"line,omitempty"`
	Text string `json:"text"`
}

// Report is what an import says about its input, every key in exactly one
// of three sections.
type Report struct {
	// Mapped keys carry over with the same meaning.
	Mapped []Note `json:"mapped"`
	// Changed keys carry over, or were deliberately not, with a different
	// meaning: each says how scanwarden behaves and what to do.
	Changed []Note `json:"changed"`
	// Unsupported keys (and lines that are not settings) have no
	// equivalent: each says why.
	Unsupported []Note `json:"unsupported"`
	// Advice is about the whole configuration rather than one key.
	Advice []string `json:"advice,omitempty"`
}

// Section is an extra part of a written report, after the three sections
// and before the advice: a title and one paragraph.
type Section struct {
	Title string
	Text  string
}

// Summary counts the report: "9 mapped, 6 changed meaning, 1 without
// equivalent".
func (r *Report) Summary() string {
	return fmt.Sprintf("%d mapped, %d changed meaning, %d without equivalent", len(r.Mapped), len(r.Changed), len(r.Unsupported))
}

// Finish makes the report ready to hand out: each section sorted by line
// (notes without one last, in the order they were made), and empty sections
// empty rather than nil, so that JSON has [] and not null.
func (r *Report) Finish() {
	for _, sec := range []*[]Note{&r.Mapped, &r.Changed, &r.Unsupported} {
		if *sec == nil {
			*sec = []Note{}
		}
		slices.SortStableFunc(*sec, func(a, b Note) int { return lineOrder(a) - lineOrder(b) })
	}
}

// lineOrder sorts notes by line, those without one last.
func lineOrder(n Note) int {
	if n.Line == 0 {
		return 1 << 30
	}
	return n.Line
}

// Write writes the report for people: its first line, head (say "PortSentry
// import: " + r.Summary()), the three sections, the extra sections, then the
// advice.
func (r *Report) Write(w io.Writer, head string, extra ...Section) error {
	var b strings.Builder
	b.WriteString(head + ".\n")
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
			Wrap(&b, "  "+where+sep+n.Text, "      ")
		}
	}
	section("Mapped:", r.Mapped, true)
	section("Changed meaning (read these):", r.Changed, false)
	section("No equivalent:", r.Unsupported, false)
	for _, s := range extra {
		if s.Text == "" {
			continue
		}
		fmt.Fprintf(&b, "\n%s\n", s.Title)
		Wrap(&b, "  "+s.Text, "  ")
	}
	if len(r.Advice) > 0 {
		b.WriteString("\nAlso:\n")
		for _, a := range r.Advice {
			Wrap(&b, "  - "+a, "    ")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ReportWidth is where report lines are wrapped.
const ReportWidth = 100

// Wrap writes text as lines of at most ReportWidth bytes (a longer word
// gets a line of its own), continuation lines indented.
func Wrap(b *strings.Builder, text, indent string) {
	line := 0
	for i, w := range strings.Split(text, " ") {
		switch {
		case i == 0:
		case line+1+len(w) > ReportWidth && line > len(indent):
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

// Quote renders text from the input for a report or a YAML comment: quoted,
// anything unprintable escaped (so no input can forge report lines or break
// a comment), at most 100 bytes of it.
func Quote(s string) string {
	if len(s) > 100 {
		return strconv.QuoteToGraphic(s[:100]) + "..."
	}
	return strconv.QuoteToGraphic(s)
}

// Safe makes a name fit for a comment line: as it is when it is printable,
// else quoted with anything unprintable escaped.
func Safe(s string) string {
	q := Quote(s)
	if q == `"`+s+`"` {
		return s
	}
	return q
}

// Plural is "1 key" or "3 keys".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// Upper capitalises the first letter of an ASCII sentence.
func Upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// MaxKey bounds the keys Distance compares: no configuration key of the
// tools imported is longer.
const MaxKey = 64

// Distance is the Levenshtein distance between two short keys (MaxKey for
// longer ones), to suggest the key a misspelt one was meant to be.
func Distance(a, b string) int {
	if len(a) > MaxKey || len(b) > MaxKey {
		return MaxKey
	}
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// JoinNote adds text to the note already made on key, in whichever section
// it is, and reports whether there was one.
func (r *Report) JoinNote(key, text string) bool {
	for _, s := range []*[]Note{&r.Mapped, &r.Changed, &r.Unsupported} {
		for i := range *s {
			if (*s)[i].Key == key {
				(*s)[i].Text += " " + text
				return true
			}
		}
	}
	return false
}
