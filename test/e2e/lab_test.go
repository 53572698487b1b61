package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// lab is a small network of namespaces on one bridge:
//
//	swd-<id>-target  10.88.N.2  fd00:88:N::2   runs scanwarden, listeners on 22, 80, 443
//	swd-<id>-scan    10.88.N.1  fd00:88:N::1   the scanner
//	swd-<id>-client  10.88.N.3  fd00:88:N::3   benign clients
//
// The target's default route points at 10.88.N.254 (a gateway that needs
// not exist: it is there to be guarded). Everything is removed on cleanup.
type lab struct {
	t        *testing.T
	id       string
	n        int // third octet
	target   string
	scan     string
	client   string
	bridge   string
	bin      string
	stateDir string
	sock     string
	cfgPath  string
	daemon   *exec.Cmd
	logBuf   *syncBuffer
	daemonMu sync.Mutex
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
	labSeq    int
	labSeqMu  sync.Mutex
)

// binary builds scanwarden once per test run.
func binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "swd-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "scanwarden")
		out, err := exec.Command("go", "build", "-o", builtBin, "../../cmd/scanwarden").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// newLab builds the namespaces. config is YAML appended to the lab's base
// configuration.
func newLab(t *testing.T, config string) *lab {
	t.Helper()
	requireRoot(t)
	requireTools(t, "ip", "nft", "nmap", "hping3", "ncat", "curl", "python3")
	labSeqMu.Lock()
	labSeq++
	n := 100 + labSeq
	labSeqMu.Unlock()
	id := fmt.Sprintf("%d%d", os.Getpid()%1000, labSeq)
	l := &lab{t: t, id: id, n: n, bin: binary(t), logBuf: &syncBuffer{}}
	l.target, l.scan, l.client = "swd-"+id+"-target", "swd-"+id+"-scan", "swd-"+id+"-client"
	l.bridge = "swdbr" + id
	t.Cleanup(l.destroy)
	for _, ns := range []string{l.target, l.scan, l.client} {
		run(t, "ip", "netns", "add", ns)
		run(t, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	run(t, "ip", "link", "add", l.bridge, "type", "bridge")
	run(t, "ip", "link", "set", l.bridge, "up")
	for i, ns := range []string{l.scan, l.target, l.client} {
		host := fmt.Sprintf("swd%sh%d", id, i)
		peer := fmt.Sprintf("swd%sp%d", id, i)
		run(t, "ip", "link", "add", host, "type", "veth", "peer", "name", peer)
		run(t, "ip", "link", "set", host, "master", l.bridge, "up")
		run(t, "ip", "link", "set", peer, "netns", ns)
		run(t, "ip", "-n", ns, "link", "set", peer, "name", "eth0")
		run(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("10.88.%d.%d/24", n, i+1), "dev", "eth0")
		run(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("fd00:88:%d::%d/64", n, i+1), "dev", "eth0", "nodad")
		run(t, "ip", "-n", ns, "link", "set", "eth0", "up")
	}
	run(t, "ip", "-n", l.target, "route", "add", "default", "via", l.gw(), "dev", "eth0", "onlink")
	// Listeners on the target: 22 (ssh-like), 80 and 443 (web).
	// 22 keeps connections open, like an SSH server; 443 greets and closes.
	l.bg(l.target, "python3", "-c", sshLike)
	l.bg(l.target, "ncat", "-lk", "--send-only", "-c", "echo hello", "-p", "443")
	l.bg(l.target, "python3", "-m", "http.server", "80", "--bind", "::")
	l.stateDir = t.TempDir()
	l.sock = filepath.Join(t.TempDir(), "sw.sock")
	l.cfgPath = filepath.Join(t.TempDir(), "scanwarden.yaml")
	base := fmt.Sprintf("state_dir: %s\nsocket: %s\nsocket_group: \"\"\nlog:\n  format: json\n  level: debug\n", l.stateDir, l.sock)
	if err := os.WriteFile(l.cfgPath, []byte(base+config), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, port := range []string{"22", "80", "443"} {
		l.waitPort(l.target, port)
	}
	return l
}

func (l *lab) addr(host int) string { return fmt.Sprintf("10.88.%d.%d", l.n, host) }
func (l *lab) addr6(host int) string {
	return fmt.Sprintf("fd00:88:%d::%d", l.n, host)
}
func (l *lab) gw() string { return fmt.Sprintf("10.88.%d.254", l.n) }

// ScannerIP and friends.
func (l *lab) scanIP() string   { return l.addr(1) }
func (l *lab) targetIP() string { return l.addr(2) }
func (l *lab) clientIP() string { return l.addr(3) }

// sshLike holds every connection open in both directions, as an SSH server
// does (ncat closes its side and leaves the session in FIN-WAIT).
const sshLike = `
import socket
s = socket.socket(socket.AF_INET6)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
s.bind(("::", 22))
s.listen(64)
held = []
while True:
    held.append(s.accept())
`

// bg starts a long-running process in a namespace, killed on cleanup.
func (l *lab) bg(ns string, name string, args ...string) *exec.Cmd {
	l.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stdout, cmd.Stderr = nil, nil
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

// in runs a command in a namespace with a time bound and returns its output.
func (l *lab) in(ns string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...).CombinedOutput()
	return string(out), err
}

func (l *lab) waitPort(ns, port string) {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if out, _ := l.in(ns, 2*time.Second, "ss", "-Hltn", "sport", "= :"+port); strings.TrimSpace(out) != "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("nothing listens on %s in %s", port, ns)
}

// startDaemon runs scanwarden in the target namespace and waits until its
// control socket answers.
func (l *lab) startDaemon(extra ...string) {
	l.t.Helper()
	l.daemonMu.Lock()
	defer l.daemonMu.Unlock()
	args := append([]string{"netns", "exec", l.target, l.bin, "run", "--config", l.cfgPath}, extra...)
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = l.logBuf, l.logBuf
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.daemon = cmd
	start := time.Now()
	deadline := start.Add(10 * time.Second)
	for {
		if _, err := l.cli("status"); err == nil {
			l.t.Logf("daemon answering %v after start", time.Since(start).Round(time.Millisecond))
			return
		}
		if cmd.ProcessState != nil || time.Now().After(deadline) {
			l.t.Fatalf("daemon did not come up:\n%s", l.logBuf.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// killDaemon kills the daemon with sig and waits for it.
func (l *lab) killDaemon(sig os.Signal) {
	l.daemonMu.Lock()
	defer l.daemonMu.Unlock()
	if l.daemon == nil {
		return
	}
	// ip netns exec runs the binary as its own process (exec), so the PID is
	// the daemon's.
	stopProcess(l.daemon, sig)
	l.daemon = nil
}

// stopProcess sends sig to cmd's process and waits for it to end, killing
// it after 10 s.
func stopProcess(cmd *exec.Cmd, sig os.Signal) {
	cmd.Process.Signal(sig)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// cli runs a scanwarden client command against the lab's daemon.
func (l *lab) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, l.bin, append(args, "--socket", l.sock)...).CombinedOutput()
	return string(out), err
}

// listJSON returns the active bans.
func (l *lab) bans() []map[string]any {
	l.t.Helper()
	out, err := l.cli("list", "--json")
	if err != nil {
		l.t.Fatalf("list: %v\n%s", err, out)
	}
	var bans []map[string]any
	if err := json.Unmarshal([]byte(out), &bans); err != nil {
		l.t.Fatalf("list --json: %v\n%s", err, out)
	}
	return bans
}

// nftSet returns the elements line of one of our sets in the target.
func (l *lab) nftSet(set string) string {
	out, _ := l.in(l.target, 5*time.Second, "nft", "list", "set", "inet", "scanwarden", set)
	return out
}

func (l *lab) bannedInKernel(addr string) bool {
	set := "banned4"
	if strings.Contains(addr, ":") {
		set = "banned6"
	}
	return strings.Contains(l.nftSet(set), addr)
}

// waitBanned waits until addr is in the kernel set.
func (l *lab) waitBanned(addr string, within time.Duration) bool {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if l.bannedInKernel(addr) {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return false
}

func (l *lab) destroy() {
	l.killDaemon(os.Interrupt)
	for _, ns := range []string{l.target, l.scan, l.client} {
		exec.Command("ip", "netns", "del", ns).Run()
	}
	exec.Command("ip", "link", "del", l.bridge).Run()
	if l.t.Failed() {
		l.t.Logf("daemon log:\n%s", tail(l.logBuf.String(), 60))
	}
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// syncBuffer is a bytes.Buffer safe for a process's output and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
