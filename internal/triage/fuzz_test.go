package triage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzRun runs whole reports through triage, with a log that answers, and
// checks that it never panics and that whatever it prints is clean. Seeds:
// the sample reports in testdata and testdata/fuzz/FuzzRun.
func FuzzRun(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.txt"))
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("\"2013-06-18 15:53:34\" x.x.x.x/52218->y.y.y.103/6881 6(0)\n"))
	f.Add([]byte("Nov 21 05:51:48 h kernel: IN=eth0 OUT= SRC=203.0.113.9 DST=198.51.100.7 PROTO=TCP SPT=1 DPT=22 SYN\n"))
	f.Add([]byte("time,src,dst\n2024-01-01T00:00:00Z,203.0.113.9:5,198.51.100.7:22\n"))
	f.Add([]byte("\x1f\x8b\x08\x00"))
	now := func() time.Time { return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) }
	f.Fuzz(func(t *testing.T, data []byte) {
		opts := Options{MaxBytes: 1 << 20, MaxLookups: 50, Now: now, Source: ours}
		res, err := Run(context.Background(), bytes.NewReader(data), "fuzz", cleanLog{}, opts)
		if err != nil {
			checkPrintable(t, "error", err.Error())
			return
		}
		if res.Clients == nil || res.Sources == nil || res.Notes == nil {
			t.Fatalf("nil lists: %+v", res)
		}
		if res.Lines.Parsed == 0 || res.Lines.Parsed+res.Lines.Ignored+res.Lines.Malformed != res.Lines.Read {
			t.Fatalf("lines %+v", res.Lines)
		}
		renderChecked(t, res)
	})
}
