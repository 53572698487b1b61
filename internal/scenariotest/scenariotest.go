// Package scenariotest runs scenario files: small txtar archives that name
// inputs (captures or inline logs and reports) and the findings `scanwarden
// analyze --format json` must print for them. The unit tests run them over
// the committed captures; the end-to-end tests run the same files over
// captures made afresh with the real tools.
//
// A scenario's comment holds directives, its files inline inputs:
//
//	input FILE                 an input: a file of the archive, a capture
//	                           (../captures/NAME, looked up in the capture
//	                           directory given to Run), or a path relative
//	                           to the scenario
//	sensitivity low|medium|high
//	expect SRC key=value ...   the finding for SRC, as JSON output has it;
//	                           ops: = != <= >= and ~ (contains; quote values
//	                           with spaces)
//	absent SRC                 no finding for SRC
//	count N                    exactly N findings
//
// Adding a case is adding a file.
package scenariotest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"

	"github.com/scanwarden/scanwarden/internal/analyze"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/report"
)

// Captures lists the capture files a scenario reads (names under
// ../captures/).
func Captures(file string) ([]string, error) {
	ar, err := txtar.ParseFile(file)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(ar.Comment), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "input" && strings.HasPrefix(f[1], "../captures/") {
			out = append(out, strings.TrimPrefix(f[1], "../captures/"))
		}
	}
	return out, nil
}

// Run checks one scenario file. Captures named ../captures/NAME are read
// from captureDir.
func Run(t *testing.T, file, captureDir string) {
	t.Helper()

	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range ar.Files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := analyze.DefaultOptions()
	var inputs []string
	type check struct {
		line int
		cmd  string
		args []string
	}
	var checks []check
	for i, line := range strings.Split(string(ar.Comment), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields, err := splitQuoted(line)
		if err != nil {
			t.Fatalf("%s:%d: %v", file, i+1, err)
		}
		switch fields[0] {
		case "input":
			p := filepath.Join(dir, fields[1])
			if name, ok := strings.CutPrefix(fields[1], "../captures/"); ok {
				p = filepath.Join(captureDir, name)
			} else if _, err := os.Stat(p); err != nil {
				p = filepath.Join(filepath.Dir(file), fields[1])
			}
			inputs = append(inputs, p)
		case "sensitivity":
			s, err := detect.ParseSensitivity(fields[1])
			if err != nil {
				t.Fatal(err)
			}
			opts.Detect.Sensitivity = s
		case "expect", "absent", "count":
			checks = append(checks, check{i + 1, fields[0], fields[1:]})
		default:
			t.Fatalf("%s:%d: unknown directive %q", file, i+1, fields[0])
		}
	}
	res, err := analyze.Run(inputs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := res.Err(); err != nil {
		t.Fatal(err)
	}
	bySrc := map[string]map[string]any{}
	for i := range res.Findings {
		j := report.ToJSON(&res.Findings[i])
		b, _ := json.Marshal(j)
		var m map[string]any
		json.Unmarshal(b, &m)
		bySrc[j.Src] = m
	}
	for _, c := range checks {
		where := fmt.Sprintf("%s:%d", filepath.Base(file), c.line)
		switch c.cmd {
		case "count":
			if n, _ := strconv.Atoi(c.args[0]); n != len(res.Findings) {
				t.Errorf("%s: %d findings, want %s", where, len(res.Findings), c.args[0])
			}
		case "absent":
			if _, ok := bySrc[c.args[0]]; ok {
				t.Errorf("%s: unexpected finding for %s: %v", where, c.args[0], bySrc[c.args[0]]["reason"])
			}
		case "expect":
			m, ok := bySrc[c.args[0]]
			if !ok {
				t.Errorf("%s: no finding for %s (have %d findings)", where, c.args[0], len(bySrc))
				continue
			}
			for _, cond := range c.args[1:] {
				if err := evalCond(m, cond); err != nil {
					t.Errorf("%s: %s: %v\n\treason: %v", where, c.args[0], err, m["reason"])
				}
			}
		}
	}
}

// evalCond checks one key-op-value condition against a JSON finding.
func evalCond(m map[string]any, cond string) error {
	for _, op := range []string{"<=", ">=", "!=", "~", "="} {
		i := strings.Index(cond, op)
		if i < 0 {
			continue
		}
		key, want := cond[:i], cond[i+len(op):]
		got, ok := m[key]
		if !ok {
			return fmt.Errorf("no field %q", key)
		}
		gs := fmt.Sprint(got)
		switch op {
		case "=":
			if gs != want {
				return fmt.Errorf("%s = %s, want %s", key, gs, want)
			}
		case "!=":
			if gs == want {
				return fmt.Errorf("%s = %s, want anything else", key, gs)
			}
		case "~":
			if !strings.Contains(gs, want) {
				return fmt.Errorf("%s lacks %q", key, want)
			}
		default:
			g, err1 := strconv.ParseFloat(gs, 64)
			w, err2 := strconv.ParseFloat(want, 64)
			if err1 != nil || err2 != nil {
				return fmt.Errorf("%s: not numbers: %s %s %s", key, gs, op, want)
			}
			if op == "<=" && g > w || op == ">=" && g < w {
				return fmt.Errorf("%s = %v, want %s %v", key, g, op, w)
			}
		}
		return nil
	}
	return fmt.Errorf("bad condition %q", cond)
}

// splitQuoted splits on spaces, keeping "quoted strings" (after key~ or
// key=) together.
func splitQuoted(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	inQ := false
	for _, r := range s {
		switch {
		case r == '"':
			inQ = !inQ
		case r == ' ' && !inQ:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if inQ {
		return nil, fmt.Errorf("unclosed quote")
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out, nil
}
