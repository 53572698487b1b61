package input

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scanwarden/scanwarden/internal/probe"
)

const logLine = "Nov 20 14:02:11 host kernel: Firewall: *TCP_IN Blocked* IN=eth0 OUT= MAC=00:16:3e:5a:11:22:00:1c:73:00:00:99:08:00 SRC=203.0.113.45 DST=198.51.100.10 LEN=60 TOS=0x00 PREC=0x00 TTL=51 ID=1 DF PROTO=TCP SPT=50122 DPT=587 WINDOW=64240 RES=0x00 SYN URGP=0\n"
const reportLine = "\"2013-06-18 15:53:34\" 192.0.2.77/52218->198.51.100.103/6881 6(0)\n"

func write(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func gz(t *testing.T, data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

func readAll(t *testing.T, path string) (Format, []probe.Probe) {
	t.Helper()
	src, format, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var out []probe.Probe
	for {
		var p probe.Probe
		err := src.Next(&p)
		if err == io.EOF {
			return format, out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
}

func TestSniffsByContentNotName(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want Format
		src  string
	}{
		{"capture.txt", []byte(logLine), FormatKernLog, "203.0.113.45"},
		{"kern.log.gz", gz(t, []byte(logLine)), FormatKernLog, "203.0.113.45"},
		{"notice.pcap", []byte("Dear abuse team,\n\n" + reportLine), FormatReport, "192.0.2.77"},
		{"r.gz", gz(t, gz(t, []byte(reportLine))), FormatReport, "192.0.2.77"},
	} {
		format, ps := readAll(t, write(t, tc.name, tc.data))
		if format != tc.want || len(ps) != 1 || ps[0].Src.Addr().String() != tc.src {
			t.Errorf("%s: format %q, %d probes", tc.name, format, len(ps))
		}
	}
}

func TestCaptureAndGzippedCapture(t *testing.T) {
	data, err := os.ReadFile("../../../testdata/captures/variant-sll2.pcap")
	if err != nil {
		t.Fatal(err)
	}
	f1, p1 := readAll(t, write(t, "a", data))
	f2, p2 := readAll(t, write(t, "b", gz(t, data)))
	if f1 != FormatCapture || f2 != FormatCapture || len(p1) == 0 || len(p1) != len(p2) {
		t.Fatalf("%q %d, %q %d", f1, len(p1), f2, len(p2))
	}
}

func TestUnreadableInputs(t *testing.T) {
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(t.TempDir(), "nope"), "no such file"},
		{"directory", t.TempDir(), "is a directory"},
		{"binary", write(t, "bin", []byte{0x7f, 'E', 'L', 'F', 0, 0, 1}), "binary data"},
		{"prose", write(t, "prose", []byte("hello\nworld\n")), "not a pcap"},
		{"bad gzip", write(t, "x.gz", []byte{0x1f, 0x8b, 0, 0}), "gzip"},
		{"broken capture", write(t, "x.pcap", []byte{0xd4, 0xc3, 0xb2, 0xa1, 2, 0}), "capture"},
	} {
		_, _, err := Open(tc.path, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	_, _, err := Open(write(t, "prose2", []byte("hello\n")), Options{})
	if !errors.Is(err, ErrUnknownFormat) {
		t.Errorf("unknown text: %v", err)
	}
}

func TestEmptyInputIsReadable(t *testing.T) {
	_, ps := readAll(t, write(t, "empty", nil))
	if len(ps) != 0 {
		t.Fatal("probes from nothing")
	}
}

func TestStdin(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdin
	os.Stdin = r
	defer func() { os.Stdin = old }()
	go func() { w.Write([]byte(logLine + logLine)); w.Close() }()
	format, ps := readAll(t, "-")
	if format != FormatKernLog || len(ps) != 2 {
		t.Fatalf("%q %d", format, len(ps))
	}
}
