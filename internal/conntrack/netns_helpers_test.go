package conntrack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Real-kernel test helpers, as internal/host/netnstest but with this
// package's own prefix: throwaway network namespaces named swct-…,
// deleted when the test ends, veth pairs between them, and a way to run
// code or commands inside one. The Listener is opened in a
// namespace by its fd (Config.NetNS).

const nsPrefix = "swct-"

// requireRoot skips the test unless it runs as root with ip, nft and the
// given tools installed.
func requireRoot(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, nftables rules and conntrack event groups (sudo go test)")
	}
	for _, tool := range append([]string{"ip", "nft"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

type netns struct {
	name string
	fd   int
}

// newNetns makes a namespace with its loopback up, deleted when t ends.
func newNetns(t testing.TB) *netns {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	n := &netns{name: nsPrefix + hex.EncodeToString(b[:])}
	ipCmd(t, "netns", "add", n.name)
	fd, err := unix.Open("/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		exec.Command("ip", "netns", "del", n.name).Run()
		t.Fatalf("opening namespace %s: %v", n.name, err)
	}
	n.fd = fd
	t.Cleanup(func() {
		unix.Close(n.fd)
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			t.Errorf("deleting namespace %s: %v: %s", n.name, err, out)
		}
	})
	n.run(t, "ip", "link", "set", "lo", "up")
	return n
}

// do runs f on an OS thread inside the namespace.
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
			errc <- err // the thread stays locked and dies with this goroutine
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

func (n *netns) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
}

// run runs a command inside the namespace; the test fails if it does.
func (n *netns) run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.command(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s %s: %v: %s", n.name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// nft loads a ruleset into the namespace.
func (n *netns) nft(t testing.TB, ruleset string) {
	t.Helper()
	cmd := n.command(context.Background(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in %s: nft: %v: %s\n%s", n.name, err, out, ruleset)
	}
}

func ipCmd(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// veth connects two namespaces, gives each end its addresses (IPv6 ones
// without duplicate address detection, usable at once) and brings both up.
func veth(t testing.TB, a *netns, aName string, aAddrs []string, b *netns, bName string, bAddrs []string) {
	t.Helper()
	ipCmd(t, "link", "add", aName, "netns", a.name, "type", "veth", "peer", "name", bName, "netns", b.name)
	for _, side := range []struct {
		ns    *netns
		name  string
		addrs []string
	}{{a, aName, aAddrs}, {b, bName, bAddrs}} {
		for _, addr := range side.addrs {
			args := []string{"addr", "add", addr, "dev", side.name}
			if strings.Contains(addr, ":") {
				args = append(args, "nodad")
			}
			side.ns.run(t, "ip", args...)
		}
		side.ns.run(t, "ip", "link", "set", side.name, "up")
	}
}
