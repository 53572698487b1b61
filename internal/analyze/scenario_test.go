package analyze

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/tools/txtar"

	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/report"
)

// TestScenarios runs every testdata/scenarios/*.txtar: the archive's comment
// holds directives, its files hold inline inputs.
//
//	input FILE                 an input: a file of the archive, or a path
//	                           relative to testdata/scenarios (../captures/x.pcap)
//	sensitivity low|medium|high
//	expect SRC key=value ...   the finding for SRC, as `analyze --format json`
//	                           prints it; ops: = != <= >= and ~ (contains;
//	                           quote values with spaces)
//	absent SRC                 no finding for SRC
//	count N                    exactly N findings
//
// Adding a case is adding a file.
func TestScenarios(t *testing.T) {
	files, err := filepath.Glob("../../testdata/scenarios/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scenarios: %v", err)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txtar")
		t.Run(name, func(t *testing.T) { runScenario(t, file) })
	}
}

func runScenario(t *testing.T, file string) {
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
	opts := DefaultOptions()
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
			if _, err := os.Stat(p); err != nil {
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
	res, err := Run(inputs, opts)
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
