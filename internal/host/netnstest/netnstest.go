// Package netnstest gives tests a real kernel to work against: throwaway
// network namespaces (named swpkt-…, deleted when the test ends), veth pairs
// between them, and a way to run code or commands inside one.
//
// Code runs inside a namespace on a locked OS thread that has entered it
// (setns); a socket created there belongs to that namespace for life, so a
// sensor or host view started inside Do keeps working after Do returns.
// Commands run through `ip netns exec`.
//
// It knows nothing of scanwarden; it is only imported by tests.
package netnstest

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

// Prefix starts the name of every namespace this package makes, so that
// leftovers of a killed test run are easy to find and remove.
const Prefix = "swpkt-"

// Require skips the test unless it runs as root with the ip tool, and the
// given tools, installed.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespaces, veths, sockets and rules inside them")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s", tool)
		}
	}
}

// NS is a network namespace made for one test.
type NS struct {
	Name string
	fd   int
}

// New makes a namespace with its loopback up, deleted when t ends.
func New(t testing.TB) *NS {
	t.Helper()
	return NewPrefixed(t, Prefix)
}

// NewPrefixed is New with a package's own name prefix (swnfl-, swct-...),
// so a leftover says which tests left it.
func NewPrefixed(t testing.TB, prefix string) *NS {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	n := &NS{Name: prefix + hex.EncodeToString(b[:])}
	IP(t, "netns", "add", n.Name)
	fd, err := unix.Open("/run/netns/"+n.Name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		exec.Command("ip", "netns", "del", n.Name).Run()
		t.Fatalf("opening namespace %s: %v", n.Name, err)
	}
	n.fd = fd
	t.Cleanup(func() {
		unix.Close(n.fd)
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Errorf("deleting namespace %s: %v: %s", n.Name, err, out)
		}
	})
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Do runs f on an OS thread inside the namespace.
func (n *NS) Do(f func() error) error {
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
			errc <- fmt.Errorf("entering %s: %w", n.Name, err)
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

// FD is the namespace's file descriptor, for code that opens sockets in it
// itself (netlink.Config.NetNS); it stays open until the test ends.
func (n *NS) FD() int { return n.fd }

// NFT loads an nftables ruleset into the namespace.
func (n *NS) NFT(t testing.TB, ruleset string) {
	t.Helper()
	cmd := n.Command(context.Background(), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("in %s: nft: %v: %s\n%s", n.Name, err, out, ruleset)
	}
}

// Command returns a command that runs inside the namespace.
func (n *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and returns its output; it fails
// the test if the command fails.
func (n *NS) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.Command(context.Background(), name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s %s: %v: %s", n.Name, name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// IP runs the ip tool in the test's own namespace.
func IP(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// Veth connects two namespaces with a veth pair, names each end, gives each
// the addresses listed (CIDR notation, IPv4 or IPv6) and brings both up.
// IPv6 addresses are added without duplicate address detection, so they are
// usable at once.
func Veth(t testing.TB, a *NS, aName string, aAddrs []string, b *NS, bName string, bAddrs []string) {
	t.Helper()
	IP(t, "link", "add", aName, "netns", a.Name, "type", "veth", "peer", "name", bName, "netns", b.Name)
	for _, side := range []struct {
		ns    *NS
		name  string
		addrs []string
	}{{a, aName, aAddrs}, {b, bName, bAddrs}} {
		for _, addr := range side.addrs {
			args := []string{"addr", "add", addr, "dev", side.name}
			if strings.Contains(addr, ":") {
				args = append(args, "nodad")
			}
			side.ns.Run(t, "ip", args...)
		}
		side.ns.Run(t, "ip", "link", "set", side.name, "up")
	}
}
