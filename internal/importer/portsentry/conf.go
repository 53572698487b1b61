package portsentry

import (
	"bytes"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// How PortSentry reads its file, which this parser follows and reports on:
//
//   - 1.2 (portsentry_io.c, ConfigTokenRetrieve) looks each key up by
//     itself: the first line not starting with '#' that contains the key
//     followed by '=' or ' ', then the text from the first '"' up to the
//     next '"' or unprintable byte. An unquoted value is skipped with an
//     "adminalert: Quotes missing" log line; unknown keys are never looked
//     at; the first of two settings of a key wins.
//   - 2.x (configfile.c, readConfigFile) reads every line: an upper-case
//     key, optional blanks, '=', optional blanks, '"', the value, '"'.
//     Anything else, or an unknown key, stops it from starting; the last
//     of two settings wins.
//
// Neither expands references between keys: the only "$...$" words are the
// placeholders $TARGET$, $PORT$ and $MODE$ of the KILL_* commands, replaced
// when a command runs.

// entry, junkLine and confFile are the shared parse of a KEY="value" file:
// one key of portsentry.conf, a line that is neither a comment nor
// KEY="value", and the parsed portsentry.conf.
type (
	entry    = importutil.Entry
	junkLine = importutil.JunkLine
	confFile = importutil.Conf
)

// maxKey bounds a key's length: PortSentry's longest is 20 bytes.
const maxKey = 64

// parseConf reads a portsentry.conf. It never fails: whatever it cannot
// read is a junkLine, reported by the caller with its line number.
func parseConf(data []byte) *confFile {
	cf := importutil.NewConf()
	n := 0
	for len(data) > 0 {
		n++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		confLine(cf, n, string(bytes.TrimSuffix(line, []byte("\r"))))
	}
	return cf
}

func confLine(cf *confFile, n int, line string) {
	text := strings.TrimLeft(line, " \t")
	if text == "" || text[0] == '#' {
		return
	}
	var remarks []string
	if len(text) < len(line) {
		remarks = append(remarks, "the line is indented, which PortSentry 1.2 does not read and 2.x refuses")
	}
	k := 0
	for k < len(text) && isKeyByte(text[k]) {
		k++
	}
	if k == 0 || k > maxKey {
		cf.Junk = append(cf.Junk, junkLine{Line: n, Text: line, Why: `not KEY="value"`})
		return
	}
	key, rest := text[:k], strings.TrimLeft(text[k:], " \t")
	if rest == "" || rest[0] != '=' {
		cf.Junk = append(cf.Junk, junkLine{Line: n, Text: line, Why: `no "=" after ` + key})
		return
	}
	value, more := readValue(strings.TrimLeft(rest[1:], " \t"))
	remarks = append(remarks, more...)
	cf.Set(key, value, n, remarks)
}

// readValue reads what follows "KEY =": a quoted value, or (which
// PortSentry does not accept, but whose meaning is plain) an unquoted one.
func readValue(s string) (string, []string) {
	if s == "" {
		return "", []string{"the value is missing (PortSentry needs KEY=\"value\")"}
	}
	if s[0] == '"' {
		body := s[1:]
		end := strings.IndexByte(body, '"')
		if end < 0 {
			return strings.TrimRight(body, " \t"), []string{"the closing quote is missing (PortSentry 2.x refuses the line); read up to the end of the line"}
		}
		after := strings.TrimSpace(body[end+1:])
		var remarks []string
		if after != "" && after[0] != '#' {
			remarks = append(remarks, afterQuote+quote(after))
		}
		return body[:end], remarks
	}
	// Unquoted: up to a comment, as a shell-style reader would.
	v := s
	if i := strings.Index(v, " #"); i >= 0 {
		v = v[:i]
	}
	if i := strings.Index(v, "\t#"); i >= 0 {
		v = v[:i]
	}
	return strings.TrimSpace(v), []string{"the value is not quoted: PortSentry 1.2 skips such a line and 2.x refuses it; read as " + quote(strings.TrimSpace(v))}
}

func isKeyByte(b byte) bool {
	return b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_'
}

// IgnoreFile returns the path IGNORE_FILE names in a portsentry.conf ("" if
// it names none), read as Convert reads it, so a caller can read that file
// and pass it to Convert.
func IgnoreFile(conf []byte) string {
	if len(conf) > MaxConfSize || bytes.IndexByte(conf, 0) >= 0 {
		return ""
	}
	if e := parseConf(conf).Entries["IGNORE_FILE"]; e != nil && cleanValue(e.Value) == "" {
		return strings.TrimSpace(e.Value)
	}
	return ""
}

// cleanValue says what is wrong with a value for use in scanwarden's
// configuration, or "" when nothing is: PortSentry itself cut values at the
// first unprintable byte, and no key takes a longer value than it could
// read (its lines are at most 1023 bytes, MAXBUF).
func cleanValue(v string) string {
	switch {
	case !utf8.ValidString(v):
		return "the value is not valid UTF-8"
	case len(v) > maxValue:
		return "the value is longer than PortSentry can read (1023 bytes)"
	case strings.ContainsFunc(v, func(r rune) bool {
		return unicode.IsControl(r) && r != '\t' || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029'
	}):
		return "the value holds control or formatting characters (line or paragraph separators, text direction marks)"
	}
	return ""
}

const maxValue = 1023

// afterQuote starts the remark on text after a closing quote.
const afterQuote = "the value ends at the second double quote, as PortSentry reads it, and the rest of the line is ignored: "
