package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// csfish is a CSF-like ruleset for the target: established traffic and the
// open ports pass; every other new TCP attempt and UDP datagram is logged
// (with CSF's prefix) and dropped. logTarget is `log group 5` for NFLOG or
// `log` for the kernel log.
func csfish(logTarget string) string {
	return fmt.Sprintf(`table inet csfish {
	chain input {
		type filter hook input priority 0; policy accept;
		iifname "lo" accept
		ct state established,related accept
		tcp dport { 22, 80, 443 } accept
		tcp flags & (syn|ack) == syn %s prefix "Firewall: *TCP_IN Blocked* " drop
		meta l4proto udp %s prefix "Firewall: *UDP_IN Blocked* " drop
	}
}`, logTarget, logTarget)
}

// lfdLike is CSF's default port-scan tracking, as `scanwarden import csf`
// writes it: 10 attempts at 1 port or more within 300 s.
const lfdLike = "detect:\n  threshold:\n    attempts: 10\n    distinct_ports: 1\n    window: 300s\n"

func (l *lab) applyRuleset(rs string) {
	l.t.Helper()
	path := filepath.Join(l.t.TempDir(), "ruleset.nft")
	os.WriteFile(path, []byte(rs), 0o644)
	if out, err := l.in(l.target, 5*time.Second, "nft", "-f", path); err != nil {
		l.t.Fatalf("nft -f: %v\n%s", err, out)
	}
}

// mailClientRetries makes three connection attempts at port 587, each with
// the kernel's SYN retransmissions: more log lines than PS_LIMIT (10), three
// attempts.
func (l *lab) mailClientRetries() {
	for i := 0; i < 3; i++ {
		l.in(l.client, 12*time.Second, "ncat", "-w", "8", l.targetIP(), "587")
	}
}

// TestFirewallLogNFLOG: with the packet sensor off, an nmap SYN scan is
// detected and banned from the host ruleset's NFLOG drops alone, while a
// mail client retrying filtered 587 is not, though it logs more than
// PS_LIMIT lines.
func TestFirewallLogNFLOG(t *testing.T) {
	l := newLab(t, "sensor:\n  packet: false\n  nflog:\n    groups: [5]\n"+lfdLike)
	l.applyRuleset(csfish("log group 5"))
	l.startDaemon()
	l.mailClientThenScan("nflog")
}

// mailClientThenScan: the mail client retrying 587 is not banned, an nmap
// SYN scan is, from what the firewall-log part (named as in status) read
// alone.
func (l *lab) mailClientThenScan(part string) {
	l.t.Helper()
	l.mailClientRetries()
	time.Sleep(time.Second)
	if l.bannedInKernel(l.clientIP()) {
		l.t.Fatal("the mail client retrying 587 was banned")
	}
	r := l.nmap("-sS", "--host-timeout", "10s", "-p", "1-200", l.targetIP())
	if !l.waitBanned(l.scanIP(), 5*time.Second) {
		l.t.Fatalf("not banned from the %s part alone (nmap saw %v)", part, r.states())
	}
	if n := l.partCount(part, "probes"); n == 0 {
		l.t.Errorf("status counts no probes from the %s part", part)
	}
	if out, _ := l.cli("explain", l.scanIP()); !strings.Contains(out, "SYN scan") {
		l.t.Errorf("explain:\n%s", out)
	}
	if l.bannedInKernel(l.clientIP()) {
		l.t.Fatal("the mail client was banned")
	}
}

// withKernelLogging turns on LOG from network namespaces other than the
// first (off by default) for the test, and back.
func withKernelLogging(t *testing.T) {
	old, err := os.ReadFile("/proc/sys/net/netfilter/nf_log_all_netns")
	if err != nil {
		t.Skipf("cannot read nf_log_all_netns: %v", err)
	}
	if err := os.WriteFile("/proc/sys/net/netfilter/nf_log_all_netns", []byte("1"), 0o644); err != nil {
		t.Skipf("cannot turn on kernel logging in namespaces: %v", err)
	}
	t.Cleanup(func() { os.WriteFile("/proc/sys/net/netfilter/nf_log_all_netns", old, 0o644) })
}

// TestFirewallLogKmsg: the same from /dev/kmsg alone.
func TestFirewallLogKmsg(t *testing.T) {
	withKernelLogging(t)
	l := newLab(t, "sensor:\n  packet: false\n  kernel_log: kmsg\n"+lfdLike)
	l.applyRuleset(csfish("log"))
	l.startDaemon()
	l.mailClientThenScan("kernel log")
}

// TestForgedSyslogLinesDoNotBan: a user's logger lines that look like
// kernel LOG lines, in a followed syslog file, are checked against
// /dev/kmsg and refused; the copies of real kernel lines pass and ban.
func TestForgedSyslogLinesDoNotBan(t *testing.T) {
	withKernelLogging(t)
	logfile := filepath.Join(t.TempDir(), "syslog")
	os.WriteFile(logfile, nil, 0o644)
	l := newLab(t, fmt.Sprintf("sensor:\n  packet: false\n  kernel_log: %s\n", logfile))
	l.applyRuleset(csfish("log"))
	l.startDaemon()
	appendLines := func(text string) {
		t.Helper()
		f, err := os.OpenFile(logfile, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
	}
	// What rsyslog writes for `logger -t kernel '...'` by an unprivileged
	// user: a kernel-looking line the kernel never logged. 40 of them, a
	// scan of 40 ports by an address the attacker chose.
	victim := fmt.Sprintf("10.88.%d.77", l.n)
	var forged strings.Builder
	stamp := time.Now().Format(time.Stamp)
	for port := 1; port <= 40; port++ {
		fmt.Fprintf(&forged, "%s target kernel: Firewall: *TCP_IN Blocked* IN=eth0 OUT= MAC=00:00:00:00:00:00:00:00:00:00:00:00:08:00 SRC=%s DST=%s LEN=44 TOS=0x00 PREC=0x00 TTL=50 ID=1 PROTO=TCP SPT=40000 DPT=%d WINDOW=1024 RES=0x00 SYN URGP=0\n",
			stamp, victim, l.targetIP(), port)
	}
	appendLines(forged.String())
	time.Sleep(4 * time.Second) // past the verification's wait
	if l.bannedInKernel(victim) {
		t.Fatal("forged syslog lines got an address banned")
	}
	if n := l.partCount("kernel log", "unverified"); n != 40 {
		t.Fatalf("%d lines refused as not the kernel's, want 40", n)
	}
	// A real scan: the kernel logs its drops to /dev/kmsg, and we copy
	// them into the file the way rsyslog does.
	l.nmap("-sS", "-p", "1-100", l.targetIP())
	out, err := exec.Command("dmesg", "--notime").Output()
	if err != nil {
		t.Fatalf("dmesg: %v", err)
	}
	var real strings.Builder
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "SRC="+l.scanIP()+" ") && strings.Contains(line, "TCP_IN Blocked") {
			fmt.Fprintf(&real, "%s target kernel: %s\n", time.Now().Format(time.Stamp), line)
		}
	}
	if real.Len() == 0 {
		t.Fatal("the kernel logged none of the scan's drops")
	}
	appendLines(real.String())
	if !l.waitBanned(l.scanIP(), 5*time.Second) {
		st, _ := l.cli("status")
		t.Fatalf("copies of real kernel lines did not ban the scanner; status:\n%s", st)
	}
	if n := l.partCount("kernel log", "unverified"); n != 40 {
		t.Errorf("%d lines refused after the real ones, want still 40", n)
	}
}

// partCount reads one counter of a part from `status --json`.
func (l *lab) partCount(part, counter string) uint64 {
	l.t.Helper()
	out, err := l.cli("status", "--json")
	if err != nil {
		l.t.Fatalf("status: %v %s", err, out)
	}
	var st struct {
		Parts []struct {
			Name   string            `json:"name"`
			Counts map[string]uint64 `json:"counts"`
		} `json:"parts"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		l.t.Fatalf("status: %v", err)
	}
	for _, p := range st.Parts {
		if p.Name == part {
			return p.Counts[counter]
		}
	}
	l.t.Fatalf("no part %q in status: %s", part, out)
	return 0
}

// TestOwnLogGroup: firewall.logging: auto with the packet sensor off: the
// daemon's own NFLOG rule reports new connection attempts, without any
// rule of the host's, and a scan is banned from them.
func TestOwnLogGroup(t *testing.T) {
	l := newLab(t, "sensor:\n  packet: false\nfirewall:\n  logging: auto\n")
	l.startDaemon()
	// A client of the open ports is not a scanner.
	for i := 0; i < 5; i++ {
		l.in(l.client, 5*time.Second, "ncat", "-w", "2", "--recv-only", l.targetIP(), "443")
	}
	r := l.nmap("-sS", "--host-timeout", "10s", "-p", "1-200", l.targetIP())
	if !l.waitBanned(l.scanIP(), 5*time.Second) {
		t.Fatalf("not banned from our own log group (nmap saw %v)", r.states())
	}
	if l.bannedInKernel(l.clientIP()) {
		t.Fatal("the web client was banned")
	}
	if n := l.partCount("nflog", "probes"); n == 0 {
		t.Fatal("status counts no NFLOG probes")
	}
}

// TestBlocklistFeedSparesNeverBlocked: a feed file listing the whole lab
// network is loaded into its set less the target's own address, its
// gateway and the allow list; the scanner, listed, cannot connect, and the
// allowed client still can.
func TestBlocklistFeedSparesNeverBlocked(t *testing.T) {
	feed := filepath.Join(t.TempDir(), "feed.txt")
	l := newLab(t, "")
	os.WriteFile(feed, []byte(fmt.Sprintf("# a hostile list\n10.88.%d.0/24 ; SBL1\n", l.n)), 0o644)
	cfg := fmt.Sprintf("policy:\n  allow: [%s]\nlists:\n  feeds:\n    - name: drop\n      file: %s\n      interval: 1h\n", l.clientIP(), feed)
	f, _ := os.OpenFile(l.cfgPath, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(cfg)
	f.Close()
	l.startDaemon()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(l.nftSet("feed_drop_4"), l.scanIP()) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	set := l.nftSet("feed_drop_4")
	if !strings.Contains(set, l.scanIP()) {
		t.Fatalf("feed set without the scanner:\n%s", set)
	}
	for _, spared := range []string{l.targetIP(), l.clientIP(), l.gw()} {
		if strings.Contains(set, spared+" ") || strings.Contains(set, spared+",") || strings.Contains(set, spared+"\n") {
			t.Errorf("feed set holds never-blocked %s:\n%s", spared, set)
		}
	}
	if out, err := l.in(l.scan, 5*time.Second, "ncat", "-w", "2", "--recv-only", l.targetIP(), "443"); err == nil {
		t.Errorf("the listed scanner connected: %s", out)
	}
	if out, err := l.in(l.client, 5*time.Second, "ncat", "-w", "2", "--recv-only", l.targetIP(), "443"); err != nil || !strings.Contains(out, "hello") {
		t.Errorf("the allowed client could not connect: %v %s", err, out)
	}
	if st, _ := l.cli("status"); !strings.Contains(st, "feed drop") {
		t.Errorf("status does not show the feed:\n%s", st)
	}
}

// webhookSink records the body of every POST to a file, one per line.
const webhookSink = `
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[1], "ab") as f:
            f.write(self.headers.get("Authorization", "").encode() + b"\t" + body.replace(b"\n", b" ") + b"\n")
        self.send_response(204)
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", 8099), H).serve_forever()
`

// TestWebhookAlertOnBan: a ban is posted to the webhook, as JSON naming
// the scanner, within the digest interval, with the configured header.
func TestWebhookAlertOnBan(t *testing.T) {
	got := filepath.Join(t.TempDir(), "posts")
	l := newLab(t, "alerts:\n  on: [ban, watch]\n  digest: 1s\n  webhook:\n    enabled: true\n    url: http://127.0.0.1:8099/hook\n    headers: {Authorization: \"Bearer t0k\"}\n")
	l.bg(l.target, "python3", "-c", webhookSink, got)
	l.waitPort(l.target, "8099")
	l.startDaemon()
	l.nmap("-sS", "--host-timeout", "10s", "-p", "1-200", l.targetIP())
	if !l.waitBanned(l.scanIP(), 5*time.Second) {
		t.Fatal("not banned")
	}
	deadline := time.Now().Add(10 * time.Second)
	var body []byte
	for time.Now().Before(deadline) {
		body, _ = os.ReadFile(got)
		if len(body) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	line := string(body)
	if !strings.HasPrefix(line, "Bearer t0k\t") || !strings.Contains(line, `"kind":"ban"`) || !strings.Contains(line, l.scanIP()) {
		t.Fatalf("webhook got %q", line)
	}
	var events []map[string]any
	if err := json.Unmarshal([]byte(strings.SplitN(strings.SplitN(line, "\n", 2)[0], "\t", 2)[1]), &events); err != nil || len(events) == 0 {
		t.Fatalf("webhook body is not a JSON array of events: %v %q", err, line)
	}
}
