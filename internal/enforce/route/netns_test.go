package route

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Real-kernel test helpers: throwaway network namespaces named swhk-…,
// deleted when the test ends, made with `ip netns add` so that `ip netns
// exec` can inspect them, and opened by fd for the Enforcer.

type netns struct {
	name string
	fd   int
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: the test creates network namespaces and routes (run with sudo go test)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command (iproute2)")
	}
}

func newNetns(t testing.TB) *netns {
	t.Helper()
	requireRoot(t)
	var b [4]byte
	rand.Read(b[:])
	n := &netns{name: "swhk-" + hex.EncodeToString(b[:])}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", n.name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", n.name, err, out)
		}
	})
	fd, err := unix.Open("/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("opening namespace %s: %v", n.name, err)
	}
	n.fd = fd
	t.Cleanup(func() { unix.Close(fd) })
	n.run(t, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	n.run(t, "ip", "link", "set", "lo", "up")
	return n
}

// run runs a command inside the namespace; the test fails if it does.
func (n *netns) run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", n.name, name}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s %s: %v: %s", n.name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// do runs f on an OS thread inside the namespace: sockets f creates belong
// to it for life.
func (n *netns) do(f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering %s: %w", n.name, err)
			return
		}
		ferr := f()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- err // the thread stays locked and dies with the goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// pair is two namespaces joined by a veth: the server side (where the
// enforcer works) 10.231.0.1 and fd00:231::1, the peer 10.231.0.2 and
// fd00:231::2.
type pair struct {
	server, peer *netns
}

func newPair(t *testing.T) *pair {
	p := &pair{server: newNetns(t), peer: newNetns(t)}
	if out, err := exec.Command("ip", "link", "add", "swhk0", "netns", p.server.name, "type", "veth",
		"peer", "name", "swhk1", "netns", p.peer.name).CombinedOutput(); err != nil {
		t.Fatalf("creating the veth: %v: %s", err, out)
	}
	for _, side := range []struct {
		ns   *netns
		dev  string
		host string
	}{{p.server, "swhk0", "1"}, {p.peer, "swhk1", "2"}} {
		side.ns.run(t, "ip", "addr", "add", "10.231.0."+side.host+"/24", "dev", side.dev)
		side.ns.run(t, "ip", "addr", "add", "fd00:231::"+side.host+"/64", "dev", side.dev, "nodad")
		side.ns.run(t, "ip", "link", "set", side.dev, "up")
	}
	return p
}

// listen starts a TCP server in the server namespace that accepts and
// closes connections, and returns its port.
func (p *pair) listen(t *testing.T, network, addr string) string {
	t.Helper()
	var l net.Listener
	if err := p.server.do(func() (err error) {
		l, err = net.Listen(network, addr)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// connect tries a TCP connection from the peer namespace.
func (p *pair) connect(network, addr string, timeout time.Duration) error {
	return p.peer.do(func() error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			c.Close()
		}
		return err
	})
}
