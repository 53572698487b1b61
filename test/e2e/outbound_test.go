package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/report"
)

// connectScan is a connect() scan, as a script or malware makes one: a
// non-blocking connect to each port of the target, then the sockets held.
const connectScan = `# sw-e2e-connect-scan
import socket, sys, time
socks = []
for port in range(1, 201):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect((sys.argv[1], port))
    except BlockingIOError:
        pass
    socks.append(s)
time.sleep(60)
`

// outboundFinding waits for an outbound finding from src and returns it.
func (l *lab) outboundFinding(src string, within time.Duration) *report.JSONFinding {
	l.t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		out, err := l.cli("findings", "--json", "--since", "10m")
		if err == nil {
			sc := bufio.NewScanner(strings.NewReader(out))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var f report.JSONFinding
				if json.Unmarshal(sc.Bytes(), &f) == nil && f.Src == src && f.Direction == "outbound" && f.Verdict == "scan" {
					return &f
				}
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	out, _ := l.cli("findings", "--since", "10m")
	l.t.Fatalf("no outbound scan finding from %s within %v; findings:\n%s\ndaemon log:\n%s", src, within, out, tail(l.logBuf.String(), 30))
	return nil
}

// filterSYNs makes the scan namespace drop SYNs, as most of the Internet
// does: the scan's sockets wait in SYN_SENT.
func (l *lab) filterSYNs() {
	l.t.Helper()
	if out, err := l.in(l.scan, 5*time.Second, "nft", "add table inet f; add chain inet f in { type filter hook input priority 0; policy accept; }; add rule inet f in tcp flags syn drop"); err != nil {
		l.t.Fatalf("nft: %v %s", err, out)
	}
}

// TestOutboundConnectScanIsAttributed: an unprivileged user's connect scan
// from the monitored host is an outbound scan, named by PID, user and
// command; the host is not banned.
func TestOutboundConnectScanIsAttributed(t *testing.T) {
	l := newLab(t, "")
	l.filterSYNs()
	l.startDaemon()
	scan := l.bg(l.target, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"/usr/bin/python3", "-c", connectScan, l.scanIP())
	f := l.outboundFinding(l.targetIP(), 30*time.Second)
	a := f.Actor
	if a == nil || !a.Exact {
		t.Fatalf("no exact actor: %+v (reason %q)", a, f.Reason)
	}
	pid := pythonPID(t, scan)
	if a.PID != pid || a.User != "nobody" || !strings.Contains(a.Command, "sw-e2e-connect-scan") {
		t.Errorf("actor %+v, want PID %d, user nobody, the scan's command line", a, pid)
	}
	if !strings.Contains(f.Reason, "Made by") || !strings.Contains(f.Reason, "user nobody") {
		t.Errorf("reason does not name the process: %q", f.Reason)
	}
	if l.bannedInKernel(l.targetIP()) {
		t.Fatal("the host's own address was banned")
	}
}

// pythonPID is the PID of the python3 that setpriv became (setpriv execs,
// so it is the ip-netns-exec child's PID or its child's).
func pythonPID(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := exec.Command("pgrep", "-f", "sw-e2e-connect-scan").Output()
		for _, s := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(s); err == nil {
				if comm, _ := exec.Command("ps", "-o", "comm=", "-p", s).Output(); strings.HasPrefix(strings.TrimSpace(string(comm)), "python3") {
					return pid
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("the scan's python3 process (started as %d) was not found", cmd.Process.Pid)
	return 0
}

// TestOutboundRawScanNamesCandidates: nmap -sS from the monitored host
// sends its probes from a raw socket, which no TCP socket owns: the finding
// names nmap among the candidates and says it is an inference.
func TestOutboundRawScanNamesCandidates(t *testing.T) {
	l := newLab(t, "")
	l.filterSYNs()
	l.startDaemon()
	l.bg(l.target, "nmap", "-n", "-Pn", "-sS", "--max-rate", "50", "--max-retries", "0", "-p", "1-1000", l.scanIP())
	f := l.outboundFinding(l.targetIP(), 40*time.Second)
	a := f.Actor
	if a == nil || a.Exact || !strings.HasPrefix(a.How, "inferred") {
		t.Fatalf("actor %+v, want an inference", a)
	}
	found := false
	for _, c := range a.Candidates {
		found = found || strings.Contains(c.Command, "nmap")
	}
	if !found {
		t.Fatalf("nmap is not among the candidates %+v", a.Candidates)
	}
}

// closedScan is a connect scan as most scripts make one: connect, and
// close at once on refusal. Against closed ports on a fast link each
// socket lives for microseconds.
const closedScan = `# sw-e2e-connect-scan (closed ports)
import socket, sys, time
for port in range(1, 201):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(1)
    try:
        s.connect((sys.argv[1], port))
    except OSError:
        pass
    s.close()
time.sleep(30)
`

// TestOutboundClosedPortScanIsAttributed: the scan's sockets are gone long
// before any lookup; the connect() calls eBPF recorded still name the
// process, its user and command.
func TestOutboundClosedPortScanIsAttributed(t *testing.T) {
	l := newLab(t, "")
	l.startDaemon()
	if st, _ := l.cli("status"); !strings.Contains(st, "ebpf connects") {
		t.Skipf("eBPF connect tracing is not available here (status shows no ebpf part):\n%s", st)
	}
	scan := l.bg(l.target, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"/usr/bin/python3", "-c", closedScan, l.scanIP())
	pid := pythonPID(t, scan)
	f := l.outboundFinding(l.targetIP(), 30*time.Second)
	a := f.Actor
	if a == nil || !a.Exact || !strings.HasPrefix(a.How, "eBPF") {
		t.Fatalf("actor %+v, want exact from eBPF (reason %q)", a, f.Reason)
	}
	if a.PID != pid || a.User != "nobody" || !strings.Contains(a.Command, "sw-e2e-connect-scan") {
		t.Errorf("actor %+v, want PID %d, user nobody, the scan's command line", a, pid)
	}
	if f.Evidence.Outcomes["closed"] == 0 {
		t.Errorf("outcomes %v: the ports were meant to be closed", f.Evidence.Outcomes)
	}
}

// TestOutboundResponseBlocksTheUser: with outbound.response block, the
// user whose process scanned loses new outbound connections (nftables
// meta skuid), while root's keep working and the host is never banned.
func TestOutboundResponseBlocksTheUser(t *testing.T) {
	l := newLab(t, "outbound:\n  response: block\n  for: 10m\n")
	l.bg(l.scan, "ncat", "-lk", "-p", "8080", "--send-only", "-c", "echo hi")
	l.waitPort(l.scan, "8080")
	l.startDaemon()
	connect := func(asNobody bool) error {
		args := []string{"/usr/bin/python3", "-c", "import socket,sys; socket.create_connection((sys.argv[1], 8080), timeout=2).close()", l.scanIP()}
		if asNobody {
			args = append([]string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"}, args...)
		}
		out, err := l.in(l.target, 10*time.Second, args[0], args[1:]...)
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	}
	if err := connect(true); err != nil {
		t.Fatalf("nobody cannot connect before any scan: %v", err)
	}
	l.bg(l.target, "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
		"/usr/bin/python3", "-c", closedScan, l.scanIP())
	f := l.outboundFinding(l.targetIP(), 30*time.Second)
	if f.Actor == nil || f.Actor.User != "nobody" {
		t.Fatalf("actor %+v", f.Actor)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.nftSet("out_uid_block"), "65534") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if set := l.nftSet("out_uid_block"); !strings.Contains(set, "65534") {
		t.Fatalf("nobody's uid not in the block set:\n%s\nlog:\n%s", set, tail(l.logBuf.String(), 20))
	}
	if err := connect(true); err == nil {
		t.Error("nobody still makes new connections after the block")
	}
	if err := connect(false); err != nil {
		t.Errorf("root's connections were cut too: %v", err)
	}
	if out, err := l.cli("list", "--outbound"); err != nil || !strings.Contains(out, "uid 65534: new connections blocked") {
		t.Errorf("list --outbound does not say what was done: %v\n%s", err, out)
	}
	if l.bannedInKernel(l.targetIP()) {
		t.Error("the host's own address was banned")
	}
}
