package attribute

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/host/netnstest"
)

// The namespace tests give a fresh namespace 10.97.1.1/24 on a veth whose
// peer, in a second namespace, has no address. A permanent neighbour entry
// for 10.97.1.2 (there is none to answer ARP) sends SYNs to the peer, which
// drops them as addressed to another host: connections stay in SYN_SENT and
// no packet leaves the two namespaces.
var (
	localAddr  = netip.MustParseAddr("10.97.1.1")
	remoteAddr = netip.MustParseAddr("10.97.1.2")
)

const python = "/usr/bin/python3" // not a pyenv shim under /root, which nobody cannot run

func scanNS(t testing.TB) *netnstest.NS {
	t.Helper()
	netnstest.Require(t, python, "setpriv")
	ns, sink := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, ns, "sw0", []string{localAddr.String() + "/24"}, sink, "sw1", nil)
	ns.Run(t, "ip", "neigh", "add", remoteAddr.String(), "lladdr", "02:00:00:97:01:02", "dev", "sw0", "nud", "permanent")
	return ns
}

// startPython runs a python3 script in ns and waits (bounded) until it
// prints "ready". The process is killed when the test ends.
func startPython(t *testing.T, ns *netnstest.NS, prefix []string, script string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	args := append(append([]string(nil), prefix...), python, "-c", script)
	cmd := ns.Command(ctx, args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting python: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		cancel()
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- line
	}()
	select {
	case line := <-ready:
		if strings.TrimSpace(line) != "ready" {
			t.Fatalf("python did not get ready: %q", line)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("python did not get ready within 20s")
	}
	return cmd.Process.Pid
}

func marker() string {
	var b [6]byte
	rand.Read(b[:])
	return "swattr-" + hex.EncodeToString(b[:])
}

func outboundIn(t *testing.T, ns *netnstest.NS, a *Attributor, proto string, remotes []netip.AddrPort) Result {
	t.Helper()
	var r Result
	if err := ns.Do(func() (err error) {
		r, err = a.Outbound(proto, localAddr, remotes)
		return err
	}); err != nil {
		t.Fatalf("Outbound: %v", err)
	}
	return r
}

func findPID(actors []Actor, pid int) (Actor, bool) {
	for _, a := range actors {
		if a.PID == pid {
			return a, true
		}
	}
	return Actor{}, false
}

// A connect() scan by an unprivileged user: 50 non-blocking connects stuck
// in SYN_SENT, plus a connected UDP socket. Outbound must name the process
// exactly.
func TestOutboundConnectScan(t *testing.T) {
	ns := scanNS(t)
	mark := marker()
	script := "# " + mark + `
import socket, time
socks = []
for port in range(1, 51):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(("10.97.1.2", port))
    except BlockingIOError:
        pass
    socks.append(s)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect(("10.97.1.2", 5353))
socks.append(u)
print("ready", flush=True)
time.sleep(100)
`
	pid := startPython(t, ns, []string{"setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"}, script)

	var remotes []netip.AddrPort
	for port := uint16(1); port <= 50; port++ {
		remotes = append(remotes, netip.AddrPortFrom(remoteAddr, port))
	}
	a := New(Options{})
	r := outboundIn(t, ns, a, "tcp", remotes)
	t.Logf("tcp: %+v", r)
	act, ok := findPID(r.Exact, pid)
	if !ok {
		t.Fatalf("Exact %+v does not include the scanner, PID %d", r.Exact, pid)
	}
	if len(r.Exact) != 1 {
		t.Errorf("Exact has %d actors, want 1 (one process behind 50 sockets): %+v", len(r.Exact), r.Exact)
	}
	if act.User != "nobody" || act.UID != 65534 {
		t.Errorf("user %q uid %d, want nobody 65534", act.User, act.UID)
	}
	if !strings.Contains(act.Command, mark) {
		t.Errorf("command %q does not contain the marker %s", act.Command, mark)
	}
	if !strings.HasPrefix(act.Exe, "/usr/bin/python3") {
		t.Errorf("exe %q, want /usr/bin/python3…", act.Exe)
	}
	if r.How != howExact || len(r.Candidates) != 0 {
		t.Errorf("How %q, Candidates %+v; want an exact answer", r.How, r.Candidates)
	}

	u := outboundIn(t, ns, a, "udp", []netip.AddrPort{netip.AddrPortFrom(remoteAddr, 5353)})
	if _, ok := findPID(u.Exact, pid); !ok {
		t.Errorf("udp: Exact %+v does not include PID %d", u.Exact, pid)
	}
	// Port 0 matches any port of the address.
	any := outboundIn(t, ns, a, "tcp", []netip.AddrPort{netip.AddrPortFrom(remoteAddr, 0)})
	if _, ok := findPID(any.Exact, pid); !ok {
		t.Errorf("port 0: Exact %+v does not include PID %d", any.Exact, pid)
	}
}

// A SYN scanner writes through a raw socket, so no TCP socket matches:
// Outbound must fall back to the holders of raw and packet sockets, say so,
// and leave out the caller, which holds such sockets too.
func TestOutboundRawInferred(t *testing.T) {
	ns := scanNS(t)
	script := "# " + marker() + `
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
print("ready", flush=True)
time.sleep(100)
`
	pid := startPython(t, ns, nil, script)

	var own []int // the test's own raw and packet sockets, in ns
	if err := ns.Do(func() error {
		for _, st := range [][3]int{{unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_TCP}, {unix.AF_PACKET, unix.SOCK_RAW, 0x0300}} {
			fd, err := unix.Socket(st[0], st[1]|unix.SOCK_CLOEXEC, st[2])
			if err != nil {
				return err
			}
			own = append(own, fd)
		}
		return nil
	}); err != nil {
		t.Fatalf("opening the test's own raw sockets: %v", err)
	}
	t.Cleanup(func() {
		for _, fd := range own {
			unix.Close(fd)
		}
	})

	r := outboundIn(t, ns, New(Options{}), "tcp", []netip.AddrPort{netip.AddrPortFrom(remoteAddr, 80)})
	t.Logf("%+v", r)
	if len(r.Exact) != 0 {
		t.Errorf("Exact %+v, want none: no TCP socket goes to %v", r.Exact, remoteAddr)
	}
	act, ok := findPID(r.Candidates, pid)
	if !ok {
		t.Fatalf("Candidates %+v do not include the raw-socket holder, PID %d", r.Candidates, pid)
	}
	if act.User != "root" || act.UID != 0 {
		t.Errorf("candidate user %q uid %d, want root 0", act.User, act.UID)
	}
	if _, ok := findPID(r.Candidates, os.Getpid()); ok {
		t.Errorf("Candidates include the caller itself, PID %d", os.Getpid())
	}
	if !strings.HasPrefix(r.How, "inferred") {
		t.Errorf("How %q does not say the answer is inferred", r.How)
	}
}

func TestOutboundBadProto(t *testing.T) {
	if _, err := New(Options{}).Outbound("sctp", localAddr, nil); err == nil {
		t.Error("Outbound(sctp) succeeded, want an error")
	}
}

// BenchmarkOutbound times one lookup among 1000 SYN_SENT sockets held by
// this process, with the inode cache warm (the steady state while a scan
// runs).
func BenchmarkOutbound(b *testing.B) {
	ns := scanNS(b)
	const n = 1000
	var fds []int
	b.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	a := New(Options{})
	remote := []netip.AddrPort{netip.AddrPortFrom(remoteAddr, 500)}
	err := ns.Do(func() error {
		for port := 1; port <= n; port++ {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			fds = append(fds, fd)
			sa := &unix.SockaddrInet4{Port: port, Addr: remoteAddr.As4()}
			if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS {
				return err
			}
		}
		r, err := a.Outbound("tcp", localAddr, remote)
		if err != nil {
			return err
		}
		if _, ok := findPID(r.Exact, os.Getpid()); !ok {
			b.Fatalf("warm-up: Exact %+v does not include this process", r.Exact)
		}
		b.ResetTimer()
		for b.Loop() {
			if _, err := a.Outbound("tcp", localAddr, remote); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
