package portsentry

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/scanwarden/scanwarden/internal/config"
)

// FuzzConvert feeds Convert hostile configurations and ignore files. The
// seed corpus is every fixture of testdata/portsentry (the real files and
// the synthetic cases) and testdata/fuzz/FuzzConvert (shell metacharacters,
// quotes, junk). Run it with
//
//	go test -run='^$' -fuzz=FuzzConvert -fuzztime=2m ./internal/importer/portsentry
func FuzzConvert(f *testing.F) {
	confs, _ := filepath.Glob(filepath.Join(fixtures, "*", "portsentry.conf"))
	for _, name := range confs {
		conf, _ := os.ReadFile(name)
		ign, _ := os.ReadFile(filepath.Join(filepath.Dir(name), "portsentry.ignore"))
		f.Add(conf, ign)
	}
	f.Fuzz(func(t *testing.T, conf, ign []byte) {
		var ignore []byte
		if len(ign) > 0 {
			ignore = ign
		}
		res, err := ConvertInput(Input{Conf: conf, Ignore: ignore, IgnoreName: "portsentry.ignore", Now: testNow})
		binary := bytes.IndexByte(conf, 0) >= 0 || bytes.IndexByte(ignore, 0) >= 0
		if err != nil {
			if !binary {
				t.Fatalf("error for text input: %v", err)
			}
			return
		}
		if binary {
			t.Fatal("binary input accepted")
		}
		if _, err := config.Parse(res.YAML, "converted"); err != nil {
			t.Fatalf("the converted configuration fails the check: %v\n%s", err, res.YAML)
		}
		checkAccounted(t, conf, res)
		var rep bytes.Buffer
		res.WriteReport(&rep)
		for _, r := range rep.String() {
			if r < 0x20 && r != '\n' || r == 0x7f || r == '\u2028' || r == '\u2029' || r == '\u202e' {
				t.Fatalf("the report carries %U", r)
			}
		}
	})
}
