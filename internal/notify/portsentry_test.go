package notify

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/probe"
)

func TestPortSentryLines(t *testing.T) {
	var buf bytes.Buffer
	hist := filepath.Join(t.TempDir(), "portsentry.history")
	p := newPortSentryTo(PortSentryConfig{HistoryFile: hist, Via: "nftables set inet scanwarden banned4"}, &buf)
	p.now = func() time.Time { return time.Date(2026, 11, 21, 9, 5, 3, 0, time.UTC) }
	f := &detect.Finding{Src: netip.MustParseAddr("203.0.113.9"), Verdict: detect.Scan, ScanType: detect.TypeSYN,
		Evidence: detect.Evidence{FailedPorts: []detect.PortProto{{Port: 23, Proto: probe.TCP}}}}
	p.Finding(f)
	d := &decision.Decision{Kind: decision.Ban, Target: netip.MustParsePrefix("203.0.113.9/32")}
	p.Ban(d, f)
	bait := &detect.Finding{Src: netip.MustParseAddr("2001:db8::7"), Verdict: detect.Scan,
		Evidence: detect.Evidence{BaitModes: []string{"connect"}, BaitPorts: []detect.PortProto{{Port: 31337, Proto: probe.TCP}}}}
	p.Finding(bait)

	want := "attackalert: TCP SYN/Normal scan from host: 203.0.113.9/203.0.113.9 to TCP port: 23" +
		"attackalert: Host 203.0.113.9 has been blocked via nftables set inet scanwarden banned4" +
		"attackalert: Connect from host: 2001:db8::7/2001:db8::7 to TCP port: 31337"
	if buf.String() != want {
		t.Errorf("syslog:\n%q\nwant\n%q", buf.String(), want)
	}
	h, _ := os.ReadFile(hist)
	// fail2ban's filter.d/portsentry.conf: failregex = \/<HOST> Port\: [0-9]+ (TCP|UDP) Blocked$, date at line start (epoch)
	re := regexp.MustCompile(`^(\d+) - \d\d/\d\d/\d{4} \d\d:\d\d:\d\d Host: \S+/(\S+) Port: [0-9]+ (TCP|UDP) Blocked$`)
	m := re.FindStringSubmatch(strings.TrimSpace(string(h)))
	if m == nil || m[1] != strconv.FormatInt(p.now().Unix(), 10) || m[2] != "203.0.113.9" {
		t.Fatalf("history line %q does not match fail2ban's portsentry filter", h)
	}
}

func TestHostileNamesAreCleaned(t *testing.T) {
	for in, want := range map[string]string{
		"mail.example.com":                    "mail.example.com",
		"evil\nattackalert: Host 1.2.3.4 has": "evilattackalertHost1.2.3.4has",
		"$(reboot)":                           "reboot",
		"":                                    "unknown",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}
