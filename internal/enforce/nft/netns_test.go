package nft

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
)

// Real-kernel test helpers: every test works in network namespaces of its
// own, made with `ip netns add` (so that `ip netns exec` can run nft,
// conntrack and iptables in them for checking) and opened by fd for the
// Enforcer.

type netns struct {
	name string
	fd   int
}

// requireRoot skips the test unless it can create namespaces and nftables
// tables.
func requireRoot(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: the test creates network namespaces and nftables tables (run with sudo go test)")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		tb.Skip("needs the ip command (iproute2) to create network namespaces")
	}
}

// newNetns creates a network namespace with loopback up, and deletes it
// when the test ends. It skips the test if nf_tables is missing.
func newNetns(tb testing.TB) *netns {
	tb.Helper()
	requireRoot(tb)
	b := make([]byte, 4)
	rand.Read(b)
	n := &netns{name: "swnft-" + hex.EncodeToString(b)}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", n.name, err, out)
	}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", n.name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", n.name, err, out)
		}
	})
	fd, err := unix.Open("/run/netns/"+n.name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		tb.Fatalf("opening namespace %s: %v", n.name, err)
	}
	n.fd = fd
	tb.Cleanup(func() { unix.Close(fd) })
	n.ip(tb, "link", "set", "lo", "up")
	// No duplicate address detection: addresses, link-local ones
	// included, are usable at once, so neighbour discovery and routing
	// work from the first packet.
	n.exec(tb, "sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")

	c, err := nftables.New(nftables.WithNetNSFd(fd))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := c.ListTablesOfFamily(nftables.TableFamilyINet); err != nil {
		if errors.Is(err, unix.EPROTONOSUPPORT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EAFNOSUPPORT) {
			tb.Skipf("nf_tables is not available: %v", err)
		}
		tb.Fatalf("listing nftables tables: %v", err)
	}
	return n
}

// exec runs a command in the namespace and returns its output.
func (n *netns) exec(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	out, err := n.tryExec(name, args...)
	if err != nil {
		tb.Fatalf("ip netns exec %s %s %s: %v\n%s", n.name, name, strings.Join(args, " "), err, out)
	}
	return out
}

func (n *netns) tryExec(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *netns) ip(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", n.name}, args...)...).CombinedOutput(); err != nil {
		tb.Fatalf("ip -n %s %s: %v: %s", n.name, strings.Join(args, " "), err, out)
	}
}

// nft runs the nft command in the namespace (tests only: the package
// itself never runs it). It skips the test when nft is not installed.
func (n *netns) nft(tb testing.TB, args ...string) string {
	tb.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		tb.Skip("needs the nft command to check the ruleset")
	}
	return n.exec(tb, "nft", args...)
}

// nftScript loads a ruleset file into the namespace.
func (n *netns) nftScript(tb testing.TB, script string) {
	tb.Helper()
	f := tb.TempDir() + "/ruleset.nft"
	if err := os.WriteFile(f, []byte(script), 0o600); err != nil {
		tb.Fatal(err)
	}
	n.nft(tb, "-f", f)
}

// do runs f on a locked OS thread switched into the namespace, so sockets f
// creates live there.
func (n *netns) do(tb testing.TB, f func()) {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(n.fd, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("entering namespace %s: %v", n.name, err)
	}
	defer func() {
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime discards it when
			// the goroutine ends, rather than reuse it in the wrong
			// namespace.
			tb.Errorf("leaving namespace %s: %v", n.name, err)
			return
		}
		runtime.UnlockOSThread()
	}()
	f()
}

// veth links namespaces a and b with a veth pair named va (in a) and vb
// (in b), up.
func veth(tb testing.TB, a *netns, va string, b *netns, vb string) {
	tb.Helper()
	a.ip(tb, "link", "add", va, "type", "veth", "peer", "name", vb, "netns", b.name)
	a.ip(tb, "link", "set", va, "up")
	b.ip(tb, "link", "set", vb, "up")
}

// setElements returns the elements of one of our sets as `nft -j` shows
// them, keyed by "addr" or "addr/len" (or "a-b" for ranges).
type nftElem struct {
	Timeout int // seconds; 0 none
	Expires int // seconds left
	Comment string
}

func (n *netns) setElements(tb testing.TB, table, set string) map[string]nftElem {
	tb.Helper()
	out := n.nft(tb, "-j", "list", "set", "inet", table, set)
	var doc struct {
		Nftables []struct {
			Set *struct {
				Elem []json.RawMessage `json:"elem"`
			} `json:"set"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		tb.Fatalf("nft -j list set: %v\n%s", err, out)
	}
	got := map[string]nftElem{}
	for _, o := range doc.Nftables {
		if o.Set == nil {
			continue
		}
		for _, raw := range o.Set.Elem {
			key, el := parseNftElem(tb, raw)
			got[key] = el
		}
	}
	return got
}

// parseNftElem reads one element of nft's JSON: a bare value, a prefix or
// range object, or either wrapped in {"elem": {"val": ..., "timeout": ...}}.
func parseNftElem(tb testing.TB, raw json.RawMessage) (string, nftElem) {
	tb.Helper()
	var wrapped struct {
		Elem *struct {
			Val     json.RawMessage `json:"val"`
			Timeout int             `json:"timeout"`
			Expires int             `json:"expires"`
			Comment string          `json:"comment"`
		} `json:"elem"`
	}
	var el nftElem
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Elem != nil {
		el = nftElem{Timeout: wrapped.Elem.Timeout, Expires: wrapped.Elem.Expires, Comment: wrapped.Elem.Comment}
		raw = wrapped.Elem.Val
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, el
	}
	var obj struct {
		Prefix *struct {
			Addr string `json:"addr"`
			Len  int    `json:"len"`
		} `json:"prefix"`
		Range []string `json:"range"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		tb.Fatalf("element %s: %v", raw, err)
	}
	switch {
	case obj.Prefix != nil:
		return fmt.Sprintf("%s/%d", obj.Prefix.Addr, obj.Prefix.Len), el
	case len(obj.Range) == 2:
		return obj.Range[0] + "-" + obj.Range[1], el
	}
	tb.Fatalf("element %s: unknown form", raw)
	return "", el
}
