package csf

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzConvert feeds Convert a hostile csf.conf and one hostile list, which
// stands for all five (csf.allow, csf.ignore, csf.deny, csf.dyndns and
// csf.blocklists) and for the first files Include lines name (a name
// ending in .bin reads as binary data). The conversion must never panic (nor note
// a key twice: strict), must refuse only binary input, and must always
// yield YAML that config.Parse accepts, with every key accounted for. The
// seed corpus is the fixtures of testdata/csf, each list with the keys of
// csf.conf about port scans (comments left out), and
// testdata/fuzz/FuzzConvert. Run it with
//
//	go test -run='^$' -fuzz=FuzzConvert -fuzztime=2m ./internal/importer/csf
func FuzzConvert(f *testing.F) {
	for _, dir := range []string{"shipped", "server"} {
		conf, err := os.ReadFile(filepath.Join(fixtures, dir, "csf.conf"))
		if err != nil {
			f.Fatal(err)
		}
		conf = seed(conf, func(line []byte) bool {
			k, _, _ := bytes.Cut(line, []byte(" ="))
			return slices.Contains(relatedKeys, string(k)) || slices.Contains(seedKeys, string(k))
		})
		for _, name := range Lists {
			list, _ := os.ReadFile(filepath.Join(fixtures, dir, name))
			list = seed(list, func(line []byte) bool { return line[0] != '#' || bytes.IndexByte(line, '|') > 0 })
			f.Add(conf, list)
		}
	}
	f.Add([]byte("PS_INTERVAL = \"300\"\nPS_LIMIT = \"10\"\nPS_PORTS = \"22,80\"\nDYNDNS = \"1\"\nLF_GLOBAL = \"1\"\n"),
		[]byte("Include /etc/csf/csf.allow\nInclude /etc/csf/a\nInclude /x.bin\ntcp|in|d=22|s=1.2.3.4\nX|1|1|HTTP://e.org/x\nhost.example.org\n10.0.0.0/8 # c\n"))
	f.Fuzz(func(t *testing.T, conf, list []byte) {
		in := Input{Dir: "/etc/csf", Files: map[string][]byte{"csf.conf": conf}, Now: testNow}
		for _, name := range Lists {
			in.Files[name] = list
		}
		reads := 0
		in.ReadInclude = func(p string) ([]byte, error) {
			// A few reads: TestIncludes checks the bounds, and 64 copies
			// of the list would only slow the fuzzer down.
			switch reads++; {
			case strings.HasSuffix(p, ".bin"):
				return []byte{0x7f, 'E', 'L', 'F', 0}, nil
			case reads > 4:
				return nil, fs.ErrNotExist
			}
			return list, nil
		}
		binary := bytes.IndexByte(conf, 0) >= 0 || bytes.IndexByte(list, 0) >= 0
		res, err := Convert(in)
		if err != nil {
			if !binary {
				t.Fatalf("error for text input: %v", err)
			}
			return
		}
		if binary {
			t.Fatal("binary input accepted")
		}
		checkResult(t, in, res)
	})
}

// seedKeys are keys out of scope the seeds keep: a secret, lfd's switch and
// a port list.
var seedKeys = []string{"UI_PASS", "LF_DAEMON", "TCP_IN"}

// seed keeps the lines of a fixture that keep does, and no blank ones: the
// fixtures are nine tenths comments, and the fuzzer does better with small
// seeds (it minimizes every new input it finds, for up to a minute).
func seed(data []byte, keep func(line []byte) bool) []byte {
	var out []byte
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if t := bytes.TrimSpace(line); len(t) > 0 && keep(t) {
			out = append(out, line...)
		}
	}
	return out
}
