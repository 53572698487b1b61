package csf

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// How CSF reads csf.conf (ConfigServer::Config, loadconfig), which this
// parser follows and reports on:
//
//   - lines are split at CR LF, CR, LF, VT and FF (ConfigServer::Slurp),
//     and blanks at either end are dropped;
//   - a line that is empty or starts with '#' is a comment, and a line
//     without '=' is skipped without a word;
//   - the name is what comes before the first '=', all blanks removed; the
//     value is what lies between the first and the last '"' after it (the
//     greedy /"(.*)"/), so `KEY = "1" # comment` is 1;
//   - a value without its quotes, and a key set twice, make csf and lfd
//     refuse to start ("*Error* Invalid configuration line", "*Error*
//     Setting KEY is repeated").
//
// There are no references between keys, and no Include in csf.conf.

// entry, junkLine and confFile are the shared parse of a KEY="value" file:
// one key of csf.conf, a line that is neither a comment nor KEY = "value",
// and the parsed csf.conf.
type (
	entry    = importutil.Entry
	junkLine = importutil.JunkLine
	confFile = importutil.Conf
)

// splitLines splits text into lines as CSF's slurp does: at CR LF, CR, LF,
// VT and FF.
func splitLines(data []byte) []string {
	var lines []string
	start := 0
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '\r':
			lines = append(lines, string(data[start:i]))
			if i+1 < len(data) && data[i+1] == '\n' {
				i++
			}
			start = i + 1
		case '\n', '\v', '\f':
			lines = append(lines, string(data[start:i]))
			start = i + 1
		}
	}
	if start < len(data) {
		lines = append(lines, string(data[start:]))
	}
	return lines
}

// clean drops the blanks at either end of a line, as CSF's cleanreg.
func clean(s string) string { return strings.Trim(s, " \t\r\n\v\f") }

// parseConf reads a csf.conf. It never fails: whatever it cannot read is a
// junkLine, reported by the caller with its line number.
func parseConf(data []byte) *confFile {
	cf := importutil.NewConf()
	for i, raw := range splitLines(data) {
		confLine(cf, i+1, raw)
	}
	return cf
}

func confLine(cf *confFile, n int, raw string) {
	text := clean(raw)
	if text == "" || text[0] == '#' {
		return
	}
	eq := strings.IndexByte(text, '=')
	if eq < 0 {
		cf.Junk = append(cf.Junk, junkLine{Line: n, Text: raw, Why: `no "=": CSF skips the line`})
		return
	}
	key := strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' {
			return -1
		}
		return r
	}, text[:eq])
	if key == "" || len(key) > importutil.MaxKey || strings.IndexFunc(key, func(r rune) bool { return !isKeyRune(r) }) >= 0 {
		cf.Junk = append(cf.Junk, junkLine{Line: n, Text: raw, Why: "not a key: CSF's are letters, digits and _"})
		return
	}
	value, remarks := readValue(text[eq+1:])
	cf.Set(key, value, n, remarks)
}

func isKeyRune(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_'
}

// readValue reads what follows "KEY =": from the first to the last double
// quote, as CSF does, or (which CSF refuses, but whose meaning is plain) the
// unquoted text.
func readValue(s string) (string, []string) {
	first, last := strings.IndexByte(s, '"'), strings.LastIndexByte(s, '"')
	if first < 0 || first == last {
		v := strings.Trim(clean(s), `"`)
		return v, []string{"the value is not between double quotes, so csf and lfd refuse to start (\"*Error* Invalid configuration line\"); read as " + importutil.Quote(v)}
	}
	var remarks []string
	if before := clean(s[:first]); before != "" {
		remarks = append(remarks, "CSF ignores the text before the opening quote: "+importutil.Quote(before))
	}
	if after := clean(s[last+1:]); after != "" && after[0] != '#' {
		remarks = append(remarks, "CSF ignores the text after the closing quote: "+importutil.Quote(after))
	}
	return s[first+1 : last], remarks
}

// cleanValue says what is wrong with a value for use in scanwarden's
// configuration, or "" when nothing is.
func cleanValue(v string) string {
	switch {
	case !utf8.ValidString(v):
		return "the value is not valid UTF-8"
	case len(v) > maxValue:
		return "the value is longer than " + strconv.Itoa(maxValue) + " bytes, which no setting CSF reads is"
	case strings.ContainsFunc(v, func(r rune) bool {
		return unicode.IsControl(r) && r != '\t' || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' || r == '\u0085'
	}):
		return "the value holds control or formatting characters (line or paragraph separators, text direction marks)"
	}
	return ""
}

// maxValue bounds the values converted: CSF's longest real ones (port
// lists, CC_DENY with many countries) are a few hundred bytes.
const maxValue = 8192

// truthy is Perl's truth of a setting, which is how lfd reads its switches
// (if ($config{PS_PERMANENT}) ...): "" and "0" are false, anything else
// true, "00" and "no" included.
func truthy(v string) bool { return v != "" && v != "0" }

// perlNum reads a number as Perl does in numeric context: leading blanks, a
// sign, the leading digits; "10s" is 10 and "abc" is 0. exact says the value
// was a plain integer within ±maxNum; a larger one is read as ±maxNum, not
// exact, so that no count or number of seconds overflows what is computed
// from it (a time.Duration holds 292 years).
func perlNum(v string) (n int, exact bool) {
	s := strings.TrimLeft(v, " \t")
	t := strings.TrimSpace(v)
	if i, err := strconv.Atoi(t); err == nil && !strings.HasPrefix(t, "+") && i >= -maxNum && i <= maxNum {
		return i, true
	}
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = min(n*10+int(s[i]-'0'), maxNum)
	}
	if neg {
		n = -n
	}
	return n, false
}

// maxNum bounds the numbers read from csf.conf: 100 years in seconds. No
// interval, block time or count CSF has means anything beyond it.
const maxNum = 100 * 365 * 86400
