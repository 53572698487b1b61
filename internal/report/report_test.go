package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/detect"
)

func TestSafeEscapesTerminalControl(t *testing.T) {
	for in, want := range map[string]string{
		"plain reason":         "plain reason",
		"evil\x1b[2Jclear":     `evil\x1b[2Jclear`,
		"line\nbreak\r":        `line\nbreak\r`,
		"bidi \u202e reversed": `bidi \u202e reversed`,
		"nul\x00":              `nul\x00`,
	} {
		if got := Safe(in); got != want {
			t.Errorf("Safe(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTextRowsAreOneLineEach(t *testing.T) {
	fs := []detect.Finding{{Verdict: detect.Scan, ScanType: detect.TypeSYN, Class: detect.ClassVertical, Reason: "a\nb", FirstSeen: time.Unix(0, 0)}}
	var b bytes.Buffer
	if err := WriteText(&b, fs); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(b.String(), "\n"); n != 2 {
		t.Fatalf("%d lines:\n%s", n, b.String())
	}
}
