package connwatch

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/host/netnstest"
)

// childEnv, when set, turns the test binary into a connecting child: it
// connect()s to each address:port listed (comma-separated), prints its
// pid and exits. The real-kernel tests run it, copied under a name of
// their choosing, so that its comm is known.
const childEnv = "SWCW_CONNECT_TO"

func TestMain(m *testing.M) {
	if targets := os.Getenv(childEnv); targets != "" {
		os.Exit(connectChild(targets))
	}
	os.Exit(m.Run())
}

func connectChild(targets string) int {
	fmt.Printf("pid=%d\n", os.Getpid())
	for _, t := range strings.Split(targets, ",") {
		c, err := net.DialTimeout("tcp", t, 2*time.Second)
		if err == nil {
			c.Close()
			fmt.Fprintf(os.Stderr, "%s: connected, expected a closed port\n", t)
			return 1
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			fmt.Fprintf(os.Stderr, "%s: %v\n", t, err)
			return 1
		}
	}
	return 0
}

// Addresses the real-kernel tests give their namespace.
var (
	nsAddr4 = netip.MustParseAddr("10.77.0.1")
	nsAddr6 = netip.MustParseAddr("fd00:77::1")
)

// seq counts namespaces made by this test process.
var seq atomic.Int32

// newNetns makes a namespace named swcw-<pid>-<n>-<random>, with nsAddr4
// and nsAddr6 on its loopback (the dummy link type is not in every
// kernel); connects to a closed port on them are answered by a RST without
// leaving the namespace.
func newNetns(t testing.TB) *netnstest.NS {
	t.Helper()
	ns := netnstest.NewPrefixed(t, fmt.Sprintf("swcw-%d-%d-", os.Getpid(), seq.Add(1)))
	ns.Run(t, "ip", "addr", "add", nsAddr4.String()+"/32", "dev", "lo")
	ns.Run(t, "ip", "addr", "add", nsAddr6.String()+"/128", "dev", "lo", "nodad")
	return ns
}

// startWatcher opens a Watcher and runs it until the test ends. It skips
// the test when not root or when the kernel cannot trace connects.
func startWatcher(t testing.TB, opts Options, tools ...string) *Watcher {
	t.Helper()
	netnstest.Require(t, tools...)
	w, err := Open(opts)
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("kernel cannot trace connects here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Run did not return within 5s of its context ending")
		}
		if err := w.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

// childBinary copies the test binary to a directory anyone may read, as
// name (which becomes the child's comm).
func childBinary(t *testing.T, name string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "swcw-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	path := filepath.Join(dir, name)
	dst, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// child is a started connecting child.
type child struct {
	cmd  *exec.Cmd
	pid  int // as the child reports it
	comm string
	err  chan error
}

// startChild runs bin in ns, through prefix (setpriv...), connecting to
// targets.
func startChild(t *testing.T, ctx context.Context, ns *netnstest.NS, bin string, prefix []string, targets []netip.AddrPort) *child {
	t.Helper()
	var list []string
	for _, a := range targets {
		list = append(list, a.String())
	}
	args := append(append(append([]string{}, prefix...), bin), "-test.run=^$")
	cmd := ns.Command(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(list, ","))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, comm: filepath.Base(bin), err: make(chan error, 1)}
	line, err := bufio.NewReader(out).ReadString('\n')
	if _, perr := fmt.Sscanf(line, "pid=%d", &c.pid); perr != nil {
		cmd.Wait()
		t.Fatalf("%s: no pid line (%q, %v): %s", bin, line, err, stderr.String())
	}
	go func() {
		io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil {
			c.err <- fmt.Errorf("%s: %v: %s", c.comm, err, stderr.String())
		}
		close(c.err)
	}()
	return c
}

func targets(addr netip.Addr, from, n int) []netip.AddrPort {
	var a []netip.AddrPort
	for p := from; p < from+n; p++ {
		a = append(a, netip.AddrPortFrom(addr, uint16(p)))
	}
	return a
}

// TestAttributesClosedPortScan runs an unprivileged connect() scan of 50
// closed ports over IPv4 and 50 over IPv6, every socket refused and closed
// within microseconds, alongside a root process connecting to some of the
// same ports; each connect must be attributed to the process that made it,
// by the raw tracepoint program and by the classic one alike.
func TestAttributesClosedPortScan(t *testing.T) {
	t.Run("raw", func(t *testing.T) {
		w := startWatcher(t, Options{}, "setpriv")
		how, why := w.Attach()
		t.Logf("attached to %s (raw: %v)", how, why)
		if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err == nil && !strings.HasPrefix(how, "raw_tracepoint/") {
			t.Errorf("kernel has BTF, yet attached to %s: %v", how, why)
		}
		testAttribution(t, w)
	})
	t.Run("classic", func(t *testing.T) {
		w := startWatcher(t, Options{classic: true}, "setpriv")
		if how, _ := w.Attach(); !strings.HasPrefix(how, "tracepoint/") {
			t.Errorf("classic Watcher attached to %s", how)
		}
		testAttribution(t, w)
	})
}

func testAttribution(t *testing.T, w *Watcher) {
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("needs user nobody: %v", err)
	}
	nobodyUID, _ := strconv.Atoi(nobody.Uid)
	nobodyGID, _ := strconv.Atoi(nobody.Gid)
	ns := newNetns(t)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	scanTargets := append(targets(nsAddr4, 20000, 50), targets(nsAddr6, 20000, 50)...)
	otherTargets := append(targets(nsAddr4, 20000, 10), targets(nsAddr6, 30000, 10)...)
	scan := startChild(t, ctx, ns, childBinary(t, "swcw-scan"),
		[]string{"setpriv", "--reuid=" + nobody.Uid, "--regid=" + nobody.Gid, "--clear-groups"}, scanTargets)
	other := startChild(t, ctx, ns, childBinary(t, "swcw-other"), nil, otherTargets)
	for _, c := range []*child{scan, other} {
		if err := <-c.err; err != nil {
			t.Fatal(err)
		}
		// ip netns exec and setpriv exec in place: the process started is
		// the one that connects.
		if c.cmd.Process.Pid != c.pid {
			t.Errorf("%s: started as pid %d, reports pid %d", c.comm, c.cmd.Process.Pid, c.pid)
		}
	}
	end := time.Now()

	dsts := []netip.Addr{nsAddr4, nsAddr6}
	var got []Conn
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if got = w.Lookup(netip.Addr{}, dsts, start); len(got) >= len(scanTargets)+len(otherTargets) {
			break
		}
	}
	t.Logf("%d connects seen; %+v", len(got), w.Stats())

	cgroup, haveCgroup := ownCgroupID(t)
	byComm := map[string]map[netip.AddrPort]Conn{}
	for _, c := range got {
		if byComm[c.Comm] == nil {
			byComm[c.Comm] = map[netip.AddrPort]Conn{}
		}
		if prev, dup := byComm[c.Comm][c.Dst]; dup {
			t.Errorf("%s connected to %v twice: %+v and %+v", c.Comm, c.Dst, prev, c)
		}
		byComm[c.Comm][c.Dst] = c
	}
	for _, tc := range []struct {
		c        *child
		uid, gid int
		targets  []netip.AddrPort
	}{
		{scan, nobodyUID, nobodyGID, scanTargets},
		{other, 0, 0, otherTargets},
	} {
		seen := byComm[tc.c.comm]
		if c, ok := seen[tc.targets[len(tc.targets)-1]]; ok {
			t.Logf("%s: e.g. %+v", tc.c.comm, c)
		}
		if len(seen) != len(tc.targets) {
			t.Errorf("%s: %d connects seen, made %d", tc.c.comm, len(seen), len(tc.targets))
		}
		for _, dst := range tc.targets {
			c, ok := seen[dst]
			switch {
			case !ok:
				t.Errorf("%s: connect to %v not recorded", tc.c.comm, dst)
			case c.PID != tc.c.pid || c.TID == 0 || int(c.UID) != tc.uid || int(c.GID) != tc.gid:
				t.Errorf("%s: connect to %v attributed to pid %d tid %d uid %d gid %d, want pid %d uid %d gid %d",
					tc.c.comm, dst, c.PID, c.TID, c.UID, c.GID, tc.c.pid, tc.uid, tc.gid)
			case c.Src != dst.Addr():
				// The source is chosen (by route lookup) before the state
				// changes to SYN_SENT, for IPv4 and IPv6 alike.
				t.Errorf("%s: connect to %v recorded from %v, want %v", tc.c.comm, dst, c.Src, dst.Addr())
			case c.Time.Before(start.Add(-time.Second)) || c.Time.After(end.Add(time.Second)):
				t.Errorf("%s: connect to %v at %v, outside the run %v..%v", tc.c.comm, dst, c.Time, start, end)
			case haveCgroup && c.CgroupID != cgroup:
				t.Errorf("%s: cgroup id %d, want the test's %d", tc.c.comm, c.CgroupID, cgroup)
			}
		}
	}

	// Lookup by source: the scanner's v6 connects, from the v6 address only.
	v6 := w.Lookup(nsAddr6, []netip.Addr{nsAddr6}, start)
	if len(v6) != 60 {
		t.Errorf("Lookup from %v to itself: %d connects, want 60", nsAddr6, len(v6))
	}
	if n := len(w.Lookup(nsAddr4, []netip.Addr{nsAddr6}, start)); n != 0 {
		t.Errorf("Lookup from %v to %v: %d connects, want none", nsAddr4, nsAddr6, n)
	}
	if s := w.Stats(); s.Malformed != 0 || s.Lost != 0 {
		t.Errorf("stats: %+v", s)
	}
}

// ownCgroupID is the cgroup v2 id of the test process (and so of the
// children it starts): the inode of its cgroup's directory.
func ownCgroupID(t *testing.T) (uint64, bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0, false
	}
	var path string
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path = p
		}
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if path == "" || err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 5 || !strings.HasPrefix(post, "cgroup2 ") || f[3] != "/" {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(f[4], path), &st); err == nil {
			return st.Ino, true
		}
	}
	return 0, false
}

func TestOpenOptions(t *testing.T) {
	if _, err := Open(Options{MaxConns: -1}); err == nil {
		t.Error("Open accepted MaxConns -1")
	}
}

// TestRunEndsOnClose: Close stops a running Run, and Run refuses to run
// twice at once.
func TestRunEndsOnClose(t *testing.T) {
	netnstest.Require(t)
	w, err := Open(Options{MaxConns: 10})
	if errors.Is(err, ErrUnsupported) {
		t.Skipf("kernel cannot trace connects here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	for deadline := time.Now().Add(5 * time.Second); !w.running.Load() && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("a second Run ran")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return within 5s of Close")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	_ = w.Stats()
}
