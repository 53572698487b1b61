package csf

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestSecrets gives every key of the server's csf.conf that is out of
// scope, or whose name says it is a secret, a unique value, adds lines a
// careless edit leaves behind (a lost "=", a lost quote, a misspelt key
// holding a password), and checks that none of those values appears in
// the YAML, the report (text or JSON) or the bans script.
func TestSecrets(t *testing.T) {
	in := readFixture(t, "server")
	first, err := Convert(in)
	if err != nil {
		t.Fatal(err)
	}
	setting := regexp.MustCompile(`^([A-Za-z0-9_]+) = "(.*)"$`)
	var secrets []string
	lines := strings.Split(string(in.Files["csf.conf"]), "\n")
	for i, line := range lines {
		m := setting.FindStringSubmatch(line)
		if m == nil || !slices.Contains(first.OutOfScope, m[1]) && !secretKey(m[1]) {
			continue
		}
		s := fmt.Sprintf("s3cr3t%dx", i)
		secrets = append(secrets, s)
		lines[i] = fmt.Sprintf("%s = %q", m[1], s)
	}
	if len(secrets) < 317 {
		t.Fatalf("only %d keys given a secret", len(secrets))
	}
	for i, line := range []string{
		`UI_PASS "junk1secret"`,
		`UI-PASS = "junk2secret"`,
		`MM_LICENSE_KEY = "junk3secret" # "junk4secret"`,
		`MM_LICENSE_KEY = junk5secret`,
		`CC_PASSWORD = junk6secret`,
		`PS_SECRET = "junk7secret`,
		`junk8secret`,
		`ST_MYSQL_PASS = "abc`,
		`junk9secret"`,
	} {
		lines = append(lines, line)
		secrets = append(secrets, fmt.Sprintf("junk%dsecret", i+1))
	}
	in.Files["csf.conf"] = []byte(strings.Join(lines, "\n"))
	res, _ := mustConvert(t, in)

	var rep bytes.Buffer
	res.WriteReport(&rep)
	js, _ := json.Marshal(res)
	outputs := map[string]string{"YAML": string(res.YAML), "report": rep.String(), "JSON": string(js), "bans script": string(res.BansScript("now"))}
	for what, text := range outputs {
		for _, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("the %s shows %s", what, s)
			}
		}
	}
	// The lines are reported all the same, by number.
	wantNote(t, res, "MM_LICENSE_KEY", Changed, "how is not shown")
	wantNote(t, res, "CC_PASSWORD", Unsupported, "not a key CSF has")
	if _, text := noteAt(res, len(lines)-8); !strings.Contains(text, "it starts UI_PASS (the rest is not shown") {
		t.Errorf("the line that lost its '=': %q", text)
	}
}

// TestAlertAddresses checks that LF_ALERT_TO, LF_ALERT_FROM and
// LF_ALERT_SMTP are copied only into alerts.email, and only when lfd sent
// port-scan alerts (PS_EMAIL_ALERT): otherwise their values appear nowhere.
func TestAlertAddresses(t *testing.T) {
	in := readFixture(t, "server")
	conf := strings.Replace(string(in.Files["csf.conf"]), `PS_EMAIL_ALERT = "1"`, `PS_EMAIL_ALERT = "0"`, 1)
	in.Files["csf.conf"] = []byte(conf)
	res, cfg := mustConvert(t, in)
	var rep bytes.Buffer
	res.WriteReport(&rep)
	for _, s := range []string{"security@example.org", "lfd@server.example.org"} {
		if bytes.Contains(res.YAML, []byte(s)) || strings.Contains(rep.String(), s) {
			t.Errorf("%s copied while PS_EMAIL_ALERT=0", s)
		}
	}
	if cfg.Alerts.Email.Enabled {
		t.Error("alerts.email enabled while PS_EMAIL_ALERT=0")
	}
	wantNote(t, res, "LF_ALERT_TO", Changed, "PS_EMAIL_ALERT is off")
}

// TestReadDir reads directories and files as `scanwarden import csf` does.
func TestReadDir(t *testing.T) {
	// A directory: csf.conf and the lists there.
	in := readFixture(t, "server")
	if len(in.Files) != 6 || in.ConfName != "" || in.ReadInclude == nil {
		t.Errorf("read %d files, conf %q", len(in.Files), in.ConfName)
	}
	// A csf.conf under another name: the lists from its directory.
	dir := t.TempDir()
	conf, _ := os.ReadFile(filepath.Join(fixtures, "server", "csf.conf"))
	os.WriteFile(filepath.Join(dir, "csf.conf.bak"), conf, 0o644)
	os.WriteFile(filepath.Join(dir, "csf.deny"), []byte("5.6.7.8\n"), 0o644)
	in, err := ReadDir(filepath.Join(dir, "csf.conf.bak"))
	if err != nil {
		t.Fatal(err)
	}
	res, _ := mustConvert(t, in)
	if in.ConfName != "csf.conf.bak" || len(res.Bans) != 1 || !bytes.Contains(res.YAML, []byte("/csf.conf.bak (413 keys")) {
		t.Errorf("conf %q, bans %v:\n%s", in.ConfName, res.Bans, res.YAML)
	}

	for _, tc := range []struct {
		name string
		prep func(dir string) string
		want string
	}{
		{"missing", func(dir string) string { return filepath.Join(dir, "none") }, "none: no such file or directory"},
		{"no csf.conf", func(dir string) string { return dir }, "csf.conf: no such file or directory"},
		{"csf.conf a directory", func(dir string) string {
			os.Mkdir(filepath.Join(dir, "csf.conf"), 0o755)
			return dir
		}, "not a regular file"},
		{"oversized", func(dir string) string {
			os.WriteFile(filepath.Join(dir, "csf.conf"), make([]byte, MaxConfSize+1), 0o644)
			return dir
		}, "larger than 1048576 bytes, which no CSF file is"},
		{"a list not a file", func(dir string) string {
			os.WriteFile(filepath.Join(dir, "csf.conf"), nil, 0o644)
			os.Mkdir(filepath.Join(dir, "csf.allow"), 0o755)
			return dir
		}, "csf.allow: not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadDir(tc.prep(t.TempDir()))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
	// Binary data is read, and refused by Convert.
	dir = t.TempDir()
	os.WriteFile(filepath.Join(dir, "csf.conf"), []byte{0x7f, 'E', 'L', 'F', 0, 1}, 0o644)
	in, err = ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Convert(in); err == nil || !strings.Contains(err.Error(), "binary data, not a CSF configuration") {
		t.Errorf("binary csf.conf: %v", err)
	}
}
