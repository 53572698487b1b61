package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// reporterSensor captures, in the scan namespace (the reporter's host),
// every SYN arriving from the router, as an abuse desk's sensor logs them;
// lines returns them in the CERT.br notice form.
type reporterSensor struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	l    *lab
	done chan struct{}
}

func (l *lab) startReporterSensor() *reporterSensor {
	l.t.Helper()
	s := &reporterSensor{out: &syncBuffer{}, l: l, done: make(chan struct{})}
	s.cmd = exec.Command("ip", "netns", "exec", l.scan, "tcpdump", "-i", "eth0", "-nn", "-tttt", "-l", "-U",
		"tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn and src host "+l.targetIP())
	s.cmd.Env = append(os.Environ(), "TZ=UTC")
	s.cmd.Stdout = s.out
	s.cmd.Stderr = &syncBuffer{}
	if err := s.cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	go func() { s.cmd.Wait(); close(s.done) }()
	l.t.Cleanup(s.stop)
	time.Sleep(time.Second) // tcpdump attaches
	return s
}

func (s *reporterSensor) stop() {
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
		<-s.done
	}
}

// tcpdump -tttt: "2026-11-21 12:00:00.123456 IP 10.88.101.2.52218 > 10.88.101.1.6881: Flags [S], ..."
var tcpdumpSYN = regexp.MustCompile(`^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\.\d+ IP (\d+\.\d+\.\d+\.\d+)\.(\d+) > (\d+\.\d+\.\d+\.\d+)\.(\d+): Flags \[S\]`)

// report returns the SYNs seen so far to dport (0: all) as notice lines,
// with the reporter's masking of our address, and the first and last times.
func (s *reporterSensor) report(dport string) (lines []string, first, last time.Time) {
	sc := bufio.NewScanner(strings.NewReader(s.out.String()))
	for sc.Scan() {
		m := tcpdumpSYN.FindStringSubmatch(sc.Text())
		if m == nil || (dport != "" && m[5] != dport) {
			continue
		}
		t, err := time.Parse("2006-01-02 15:04:05", m[1])
		if err != nil {
			continue
		}
		if first.IsZero() {
			first = t
		}
		last = t
		lines = append(lines, fmt.Sprintf("%q %s/%s->%s/%s 6(0)", m[1], m[2], m[3], m[4], m[5]))
	}
	return lines, first, last
}

// triageJSON is what the test reads of `triage --json`.
type triageJSON struct {
	Verdict  string `json:"verdict"`
	Attempts int    `json:"attempts"`
	Packets  int    `json:"packets"`
	Ports    int    `json:"ports"`
	Window   struct {
		Start time.Time `json:"start"`
		End   time.Time `json:"end"`
	} `json:"window"`
	Clients []struct {
		IP string `json:"ip"`
	} `json:"clients"`
	Reason string `json:"reason"`
}

// waitFlows polls `scanwarden flows` until it lists at least n connections
// to dst:port.
func (l *lab) waitFlows(dir, dst, port string, n int, within time.Duration) []map[string]any {
	l.t.Helper()
	var flows []map[string]any
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		out, err := exec.Command(l.bin, "flows", "--flows-dir", dir, "--dst", dst, "--port", port, "--json", "--limit", "100000").CombinedOutput()
		if err != nil {
			l.t.Fatalf("flows: %v\n%s", err, out)
		}
		flows = flows[:0]
		for line := range strings.Lines(string(out)) {
			var f map[string]any
			if json.Unmarshal([]byte(line), &f) == nil {
				flows = append(flows, f)
			}
		}
		if len(flows) >= n {
			return flows
		}
		time.Sleep(500 * time.Millisecond)
	}
	l.t.Fatalf("%d connections to %s:%s in the log after %v, want %d\nlog:\n%s", len(flows), dst, port, within, n, tail(l.logBuf.String(), 30))
	return nil
}

func (l *lab) triage(dir string, lines []string) triageJSON {
	l.t.Helper()
	path := filepath.Join(l.t.TempDir(), "notice.txt")
	body := "Dear abuse team,\n\nour sensors logged the following connections from your network:\n\n" +
		strings.Join(lines, "\n") + "\n\nTimes are UTC.\n"
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		l.t.Fatal(err)
	}
	out, err := exec.Command(l.bin, "triage", "--flows-dir", dir, "--json", path).Output()
	if err != nil {
		l.t.Fatalf("triage: %v\n%s", err, out)
	}
	var r triageJSON
	if err := json.Unmarshal(out, &r); err != nil {
		l.t.Fatalf("triage --json: %v\n%s", err, out)
	}
	text, _ := exec.Command(l.bin, "triage", "--flows-dir", dir, path).CombinedOutput()
	l.t.Logf("triage of %d lines:\n%s", len(lines), text)
	return r
}

// TestTriageRegistryCase is the abuse report ISPs get for a BitTorrent
// client behind their NAT: a client namespace behind the router makes 4
// connection attempts to port 6881 of the reporter, which drops them, so
// each attempt is its SYN and the kernel's retransmissions. The connection
// log records them with the NAT mapping; the reporter's lines, fed to
// triage, give 4 attempts, 1 port, SYN retransmissions, not a scan, and the
// client's internal address. A genuine scan from the same client, recorded
// the same way, is called a scan.
func TestTriageRegistryCase(t *testing.T) {
	l := newLab(t, "flows:\n  enabled: on\n")
	requireTools(t, "tcpdump")
	inner, ip4, _, _ := l.natRouter()
	// The reporter drops 6881 silently: the client retransmits.
	if out, err := l.in(l.scan, 5*time.Second, "nft", "add table inet rep; add chain inet rep in { type filter hook input priority 0; policy accept; }; add rule inet rep in tcp dport 6881 drop"); err != nil {
		t.Fatalf("nft in the reporter: %v\n%s", err, out)
	}
	// Unanswered attempts end in conntrack after SYN_SENT's timeout: 5 s
	// here instead of 120, so the test need not wait minutes.
	if out, err := l.in(l.target, 5*time.Second, "sysctl", "-qw", "net.netfilter.nf_conntrack_tcp_timeout_syn_sent=5"); err != nil {
		t.Fatalf("sysctl: %v\n%s", err, out)
	}
	dir := filepath.Join(l.stateDir, "flows")
	l.startDaemon()
	sensor := l.startReporterSensor()

	// 4 attempts of 3, 3, 2 and 2 SYNs: each socket's TCP_SYNCNT sets
	// how many times the kernel retransmits its SYN before connect gives
	// up.
	// Kernels with net.ipv4.tcp_syn_linear_timeouts (6.x) add that many
	// linear retransmissions to TCP_SYNCNT; 0 gives the classic count.
	if _, err := os.Stat("/proc/sys/net/ipv4/tcp_syn_linear_timeouts"); err == nil {
		if out, err := l.in(inner, 5*time.Second, "sysctl", "-qw", "net.ipv4.tcp_syn_linear_timeouts=0"); err != nil {
			t.Fatalf("sysctl: %v\n%s", err, out)
		}
	}
	script := fmt.Sprintf(`
import socket, time
for retries in (2, 2, 1, 1):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_SYNCNT, retries)
    s.settimeout(20)
    try:
        s.connect((%q, 6881))
    except OSError:
        pass
    s.close()
    time.sleep(0.3)
`, l.scanIP())
	if out, err := l.in(inner, 90*time.Second, "python3", "-c", script); err != nil {
		t.Fatalf("client: %v\n%s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	lines, first, last := sensor.report("6881")
	if len(lines) != 10 {
		t.Fatalf("the reporter saw %d SYNs, want 10:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	// The kernel reaps expired entries (and only then reports their end)
	// in its conntrack garbage collector, whose interval grows to 60 s
	// when the table holds long-lived entries, as it does while the other
	// tests run.
	flows := l.waitFlows(dir, l.scanIP(), "6881", 4, 90*time.Second)
	for _, f := range flows {
		if f["src"] == nil || !strings.HasPrefix(f["src"].(string), ip4+":") || f["outcome"] != "unanswered" ||
			f["nat_src"] == nil || !strings.HasPrefix(f["nat_src"].(string), l.targetIP()+":") {
			t.Errorf("logged flow: %v", f)
		}
	}

	r := l.triage(dir, lines)
	if r.Verdict != "benign" || r.Attempts != 4 || r.Ports != 1 || r.Packets != 10 {
		t.Errorf("triage: verdict %s attempts %d ports %d packets %d; reason %q", r.Verdict, r.Attempts, r.Ports, r.Packets, r.Reason)
	}
	if !strings.Contains(r.Reason, "retransmi") || !strings.Contains(strings.ToLower(r.Reason), "not a") {
		t.Errorf("reason %q does not say SYN retransmissions, not a scan", r.Reason)
	}
	if len(r.Clients) != 1 || r.Clients[0].IP != ip4 {
		t.Errorf("clients %+v, want only %s", r.Clients, ip4)
	}
	if r.Window.Start.Sub(first).Abs() > time.Second || r.Window.End.Sub(last).Abs() > time.Second {
		t.Errorf("window %v – %v, want %v – %v", r.Window.Start, r.Window.End, first, last)
	}

	t.Run("a genuine scan is a scan", func(t *testing.T) {
		if out, err := l.in(inner, 60*time.Second, "nmap", "-n", "-Pn", "-sS", "-T4", "--max-retries", "0", "-p", "2000-2099", l.scanIP()); err != nil {
			t.Fatalf("nmap: %v\n%s", err, out)
		}
		time.Sleep(500 * time.Millisecond)
		all, _, _ := sensor.report("")
		var lines []string
		for _, line := range all {
			if !strings.HasSuffix(line, "/6881 6(0)") {
				lines = append(lines, line)
			}
		}
		if len(lines) < 100 {
			t.Fatalf("the reporter saw %d scan SYNs, want 100", len(lines))
		}
		// Answered by RSTs: conntrack ends them after CLOSE's 10 s, and
		// reaps them within its collector's interval.
		l.waitFlows(dir, l.scanIP(), "2099", 1, 90*time.Second)
		r := l.triage(dir, lines)
		if r.Verdict != "scan" || r.Ports < 100 {
			t.Errorf("triage of an nmap scan: verdict %s ports %d: %s", r.Verdict, r.Ports, r.Reason)
		}
		if len(r.Clients) != 1 || r.Clients[0].IP != ip4 {
			t.Errorf("clients %+v, want only %s", r.Clients, ip4)
		}
	})
}
