package csf

import (
	"bytes"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// fixtures holds CSF's shipped files (shipped) and a customised server's
// (server, made from shipped by its regenerate.sh).
const fixtures = "../../../testdata/csf"

var testNow = time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)

// The tests make a key noted twice a panic: a bug in the conversion that
// would otherwise only join the two notes.
func init() { strict = true }

// readFixture reads a directory of testdata/csf as `scanwarden import csf`
// does.
func readFixture(t *testing.T, name string) Input {
	t.Helper()
	in, err := ReadDir(filepath.Join(fixtures, name))
	if err != nil {
		t.Fatal(err)
	}
	in.Now = testNow
	return in
}

// mustConvert converts and checks what every conversion must satisfy: the
// YAML passes config.Parse, every key is accounted for exactly once, the
// report and the bans script are safe to print and to run.
func mustConvert(t *testing.T, in Input) (*Result, *config.Config) {
	t.Helper()
	res, err := Convert(in)
	if err != nil {
		t.Fatalf("Convert: %v", err)
	}
	return res, checkResult(t, in, res)
}

// checkResult runs mustConvert's checks on a conversion.
func checkResult(t *testing.T, in Input, res *Result) *config.Config {
	t.Helper()
	cfg, err := config.Parse(res.YAML, "converted")
	if err != nil {
		t.Fatalf("the converted configuration fails config.Parse: %v\n%s", err, res.YAML)
	}
	checkAccounted(t, in.Files["csf.conf"], res)
	checkPrintable(t, res)
	checkBansScript(t, res)
	return cfg
}

// files is an Input of csf.conf and lists given as text.
func files(conf string, lists ...string) Input {
	in := Input{Dir: "/etc/csf", Files: map[string][]byte{"csf.conf": []byte(conf)}, Now: testNow}
	for i := 0; i+1 < len(lists); i += 2 {
		in.Files[lists[i]] = []byte(lists[i+1])
	}
	return in
}

// noteOf finds the note of a key of csf.conf: its section and text.
func noteOf(res *Result, key string) (Section, string) {
	for sec, notes := range map[Section][]Note{Mapped: res.Mapped, Changed: res.Changed, Unsupported: res.Unsupported} {
		for _, n := range notes {
			if n.Key == key {
				return sec, n.Text
			}
		}
	}
	return "", ""
}

// entryOf finds what became of a list entry, by file and text.
func entryOf(t *testing.T, res *Result, file, text string) Entry {
	t.Helper()
	for _, e := range res.Entries {
		if e.File == file && e.Text == text {
			return e
		}
	}
	t.Fatalf("no entry %q in %s; entries: %+v", text, file, res.Entries)
	return Entry{}
}

// wantNote checks a key's section and that its note says want.
func wantNote(t *testing.T, res *Result, key string, sec Section, want string) {
	t.Helper()
	got, text := noteOf(res, key)
	if got != sec || !strings.Contains(text, want) {
		t.Errorf("%s: in %q, want %q with %q; the note: %s", key, got, sec, want, text)
	}
}

// wantEntry checks an entry's section and that what became of it says want.
func wantEntry(t *testing.T, res *Result, file, text string, sec Section, want string) {
	t.Helper()
	e := entryOf(t, res, file, text)
	if e.Section != sec || !strings.Contains(e.As, want) {
		t.Errorf("%s %q: in %q, want %q with %q; it says: %s", file, text, e.Section, sec, want, e.As)
	}
}

// checkAccounted checks that every key of csf.conf is in exactly one place:
// a note of one of the three sections, or the list of keys out of scope.
func checkAccounted(t *testing.T, conf []byte, res *Result) {
	t.Helper()
	count := map[string]int{}
	for _, sec := range [][]Note{res.Mapped, res.Changed, res.Unsupported} {
		for _, n := range sec {
			count[n.Key]++
		}
	}
	for _, k := range res.OutOfScope {
		count[k]++
	}
	cf := parseConf(conf)
	for _, k := range cf.Order {
		if count[k] != 1 {
			t.Errorf("key %s (line %d) is accounted for %d times, want once", k, cf.Entries[k].Line, count[k])
		}
	}
	// Entries go into notes named after their file; nothing else may name
	// a key that csf.conf does not have.
	listFiles := map[string]bool{}
	for _, e := range res.Entries {
		listFiles[importutil.Safe(e.File)] = true
		if e.Section != Mapped && e.Section != Changed && e.Section != Unsupported {
			t.Errorf("entry %+v has no section", e)
		}
	}
	for k := range count {
		if k != "" && cf.Entries[k] == nil && !listFiles[k] {
			t.Errorf("a note names %q, which is neither a key of csf.conf nor a list", k)
		}
	}
}

// checkPrintable checks that nothing from the input can forge a line of
// the report or of the YAML: no control or direction characters but
// newlines (and tabs, in the YAML).
func checkPrintable(t *testing.T, res *Result) {
	t.Helper()
	var rep bytes.Buffer
	if err := res.WriteReport(&rep); err != nil {
		t.Fatal(err)
	}
	for what, text := range map[string]string{"report": rep.String(), "YAML": string(res.YAML), "bans script": string(res.BansScript("now"))} {
		for _, r := range text {
			if r < 0x20 && r != '\n' || r == 0x7f || r == '\u2028' || r == '\u2029' || r == '\u202e' || r == '\u0085' {
				t.Fatalf("the %s carries %U", what, r)
			}
		}
	}
}

// banLine is a command of the bans script: the target a parsed prefix, the
// reason single-quoted (each ' inside closed, escaped and reopened).
var banLine = regexp.MustCompile(`^(# )?scanwarden ban [0-9a-f.:]+/[0-9]+ --for permanent --reason '([^']|'\\'')*'$`)

// checkBansScript checks that every line of the bans script is a comment or
// one well-formed command, so nothing in csf.deny can run as shell.
func checkBansScript(t *testing.T, res *Result) {
	t.Helper()
	script := string(res.BansScript("now"))
	commands, held := 0, 0
	for _, line := range strings.Split(script, "\n") {
		switch {
		case banLine.MatchString(line):
			if strings.HasPrefix(line, "# ") {
				held++
			} else {
				commands++
			}
		case line == "" || strings.HasPrefix(line, "#"):
		default:
			t.Fatalf("the bans script has a line that is neither a comment nor a ban: %q", line)
		}
	}
	want := 0
	for _, b := range res.Bans {
		if b.Held == "" {
			want++
		}
	}
	if commands != want || held != len(res.Bans)-want {
		t.Errorf("the bans script has %d commands and %d held back, want %d and %d:\n%s", commands, held, want, len(res.Bans)-want, script)
	}
}
