package portsentry

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/tools/txtar"

	"github.com/scanwarden/scanwarden/internal/config"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/portsentry")

// testNow is the conversion time of every golden file.
var testNow = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

const fixtures = "../../../testdata/portsentry"

// TestRealConfigurations converts the real files (testdata/portsentry/README.md
// says where each comes from) and compares with the golden output.
func TestRealConfigurations(t *testing.T) {
	for _, tc := range []struct {
		name, dir, ignore string
		modes             []string
		golden            string
	}{
		{"debian", "debian-1.2", "portsentry.ignore", nil, "converted"},
		{"debian-static-atcp", "debian-1.2", "portsentry.ignore.static", []string{"atcp", "udp"}, "converted-static-atcp"},
		{"v2-example", "v2", "portsentry.ignore", nil, "converted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(fixtures, tc.dir)
			conf := read(t, filepath.Join(dir, "portsentry.conf"))
			ign := read(t, filepath.Join(dir, tc.ignore))
			res, err := ConvertInput(Input{Conf: conf, ConfName: "/etc/portsentry/portsentry.conf",
				Ignore: ign, IgnoreName: "/etc/portsentry/" + tc.ignore, Modes: tc.modes, Now: testNow})
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, conf, res)
			golden(t, filepath.Join(dir, tc.golden+".yaml"), res.YAML)
			var rep bytes.Buffer
			res.WriteReport(&rep)
			golden(t, filepath.Join(dir, tc.golden+".report"), rep.Bytes())
		})
	}
}

// TestCases runs the synthetic cases of testdata/portsentry/cases: each
// file holds portsentry.conf, optionally portsentry.ignore and modes, and
// the expected converted.yaml and report. Adding a case is adding a file;
// go test -update writes the expectations, to be read before committing.
func TestCases(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(fixtures, "cases", "*.txtar"))
	if len(files) == 0 {
		t.Fatal("no cases")
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			ar, err := txtar.ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			in := Input{ConfName: "portsentry.conf", Now: testNow}
			for _, f := range ar.Files {
				switch f.Name {
				case "portsentry.conf":
					in.Conf = f.Data
				case "portsentry.ignore":
					in.Ignore, in.IgnoreName = f.Data, "portsentry.ignore"
				case "modes":
					in.Modes = strings.Fields(string(f.Data))
				}
			}
			res, err := ConvertInput(in)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, in.Conf, res)
			var rep bytes.Buffer
			res.WriteReport(&rep)
			want := map[string][]byte{"converted.yaml": res.YAML, "report": rep.Bytes()}
			if *update {
				ar.Files = slices.DeleteFunc(ar.Files, func(f txtar.File) bool { return want[f.Name] != nil })
				ar.Files = append(ar.Files, txtar.File{Name: "converted.yaml", Data: res.YAML}, txtar.File{Name: "report", Data: rep.Bytes()})
				if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			for _, f := range ar.Files {
				if w, ok := want[f.Name]; ok {
					if !bytes.Equal(w, f.Data) {
						t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", f.Name, w, f.Data)
					}
					delete(want, f.Name)
				}
			}
			for name := range want {
				t.Errorf("%s lacks %s (go test -update writes it)", file, name)
			}
		})
	}
}

// inputKey finds the settings of a portsentry.conf independently of the
// parser under test: a key, blanks, "=".
var inputKey = regexp.MustCompile(`(?m)^[ \t]*([A-Za-z0-9_]+)[ \t]*=`)

// checkResult checks what holds for every conversion: the YAML passes the
// strict check (as `scanwarden config check` runs it, from a file), and
// every key of the input is in exactly one section of the report.
func checkResult(t *testing.T, conf []byte, res *Result) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "scanwarden.yaml")
	if err := os.WriteFile(path, res.YAML, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err != nil {
		t.Fatalf("the converted configuration fails the check: %v\n%s", err, res.YAML)
	}
	checkAccounted(t, conf, res)
}

// checkAccounted checks the header, and that every key of the input is in
// exactly one section of the report.
func checkAccounted(t *testing.T, conf []byte, res *Result) {
	t.Helper()
	if !bytes.HasPrefix(res.YAML, []byte("# scanwarden configuration, converted from PortSentry's")) {
		t.Errorf("no header:\n%s", res.YAML)
	}
	count := map[string]int{}
	for _, sec := range [][]Note{res.Mapped, res.Changed, res.Unsupported} {
		for _, n := range sec {
			if n.Key != "" {
				count[n.Key]++
			}
			if n.Text == "" {
				t.Errorf("note for %q has no text", n.Key)
			}
		}
	}
	keys := map[string]bool{}
	for _, m := range inputKey.FindAllSubmatch(conf, -1) {
		if len(m[1]) <= maxKey {
			keys[string(m[1])] = true
		}
	}
	for k := range keys {
		if count[k] != 1 {
			t.Errorf("key %s is in %d sections of the report, want exactly 1", k, count[k])
		}
	}
	for k, n := range count {
		if !keys[k] && k != "IGNORE_FILE" {
			t.Errorf("the report names %s (%d times), which the input does not set", k, n)
		}
	}
}

func read(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(name, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func init() { strict = true }
