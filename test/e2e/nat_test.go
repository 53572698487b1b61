package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/report"
)

// natRouter turns the lab's target into a router: a client namespace
// (swd-<id>-inner, 10.87.N.2, fd00:87:N::2) sits behind it on its own veth,
// and the target masquerades the client's traffic out of eth0, so the scan
// namespace sees the target's address only. It returns the client's MAC.
func (l *lab) natRouter() (inner, ip4, ip6, mac string) {
	l.t.Helper()
	inner = "swd-" + l.id + "-inner"
	run(l.t, "ip", "netns", "add", inner)
	l.t.Cleanup(func() { exec.Command("ip", "netns", "del", inner).Run() })
	ip4, ip6 = fmt.Sprintf("10.87.%d.2", l.n), fmt.Sprintf("fd00:87:%d::2", l.n)
	veth := "swd" + l.id + "in"
	run(l.t, "ip", "-n", l.target, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", inner)
	run(l.t, "ip", "-n", l.target, "addr", "add", fmt.Sprintf("10.87.%d.1/24", l.n), "dev", veth)
	run(l.t, "ip", "-n", l.target, "addr", "add", fmt.Sprintf("fd00:87:%d::1/64", l.n), "dev", veth, "nodad")
	run(l.t, "ip", "-n", l.target, "link", "set", veth, "up")
	run(l.t, "ip", "-n", inner, "link", "set", "lo", "up")
	run(l.t, "ip", "-n", inner, "addr", "add", ip4+"/24", "dev", "eth0")
	run(l.t, "ip", "-n", inner, "addr", "add", ip6+"/64", "dev", "eth0", "nodad")
	run(l.t, "ip", "-n", inner, "link", "set", "eth0", "up")
	run(l.t, "ip", "-n", inner, "route", "add", "default", "via", fmt.Sprintf("10.87.%d.1", l.n))
	run(l.t, "ip", "-n", inner, "-6", "route", "add", "default", "via", fmt.Sprintf("fd00:87:%d::1", l.n))
	run(l.t, "ip", "netns", "exec", l.target, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1")
	l.applyRuleset(fmt.Sprintf(`table inet swnat {
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr 10.87.%d.0/24 oifname "eth0" masquerade
		ip6 saddr fd00:87:%d::/64 oifname "eth0" masquerade
	}
}`, l.n, l.n))
	out := run(l.t, "ip", "-n", inner, "-j", "link", "show", "dev", "eth0")
	var links []struct {
		Address string `json:"address"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		l.t.Fatalf("reading the client's MAC: %v %s", err, out)
	}
	return inner, ip4, ip6, links[0].Address
}

// findingsJSON is every finding the daemon lists for the last ten minutes.
func (l *lab) findingsJSON() []report.JSONFinding {
	l.t.Helper()
	out, err := l.cli("findings", "--json", "--since", "10m")
	if err != nil {
		l.t.Fatalf("findings: %v %s", err, out)
	}
	var fs []report.JSONFinding
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var f report.JSONFinding
		if json.Unmarshal(sc.Bytes(), &f) == nil {
			fs = append(fs, f)
		}
	}
	return fs
}

// TestNATRouterNamesTheInternalClient: a client behind the router's
// masquerade scans a third namespace; the router's daemon names the
// client's internal address and MAC, does not ban it (outbound.response
// alert), and never reports the router itself as the scanner.
func TestNATRouterNamesTheInternalClient(t *testing.T) {
	l := newLab(t, "")
	inner, ip4, ip6, mac := l.natRouter()
	l.startDaemon()
	for _, c := range []struct {
		name, src string
		args      []string
	}{
		{"nmap -sS IPv4", ip4, []string{"nmap", "-n", "-Pn", "-sS", "-T4", "--max-retries", "1", "-p", "1-300", l.scanIP()}},
		// A connect scan, as a script or malware on the client makes one.
		{"nmap -sT IPv6", ip6, []string{"nmap", "-6", "-n", "-Pn", "-sT", "-T4", "--max-retries", "1", "-p", "1-300", l.addr6(1)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if out, err := l.in(inner, 60*time.Second, c.args[0], c.args[1:]...); err != nil {
				t.Fatalf("%v: %v\n%s", c.args, err, out)
			}
			// The stored finding catches up with the whole scan within a
			// few seconds of its end (saved at detection, updated after).
			var got *report.JSONFinding
			deadline := time.Now().Add(20 * time.Second)
			for (got == nil || got.Failed < 300) && time.Now().Before(deadline) {
				for _, f := range l.findingsJSON() {
					if f.Src == c.src && f.Verdict == "scan" {
						got = &f
						break
					}
				}
				time.Sleep(250 * time.Millisecond)
			}
			if got == nil {
				out, _ := l.cli("findings", "--since", "10m")
				t.Fatalf("no scan finding for the client %s; findings:\n%s\nlog:\n%s", c.src, out, tail(l.logBuf.String(), 30))
			}
			if got.Direction != "forwarded" || got.ClientIP != c.src || got.ClientMAC != mac || !got.ClientNAT {
				t.Errorf("finding: direction %s client_ip %q client_mac %q (want %s) nat %v; reason %q",
					got.Direction, got.ClientIP, got.ClientMAC, mac, got.ClientNAT, got.Reason)
			}
			// Every port failed (closed: the resets came back through the
			// NAT and were matched to the client's attempts).
			if got.Ports < 300 || got.Failed < 290 || got.Evidence.Outcomes["closed"] < 270 {
				t.Errorf("ports %d failed %d outcomes %v: the scan or its answers were not all matched to the client", got.Ports, got.Failed, got.Evidence.Outcomes)
			}
			if l.bannedInKernel(c.src) {
				t.Errorf("internal client %s banned with outbound.response: alert", c.src)
			}
		})
	}
	for _, f := range l.findingsJSON() {
		if (f.Src == l.targetIP() || f.Src == l.addr6(2)) && f.Verdict != "benign" {
			t.Errorf("the router reported as a scanner: %s %s %s: %s", f.Src, f.Direction, f.Verdict, f.Reason)
		}
	}
	if out, err := l.cli("list", "--outbound"); err != nil || !strings.Contains(out, ip4) || !strings.Contains(out, mac) {
		t.Errorf("list --outbound does not name the client: %v\n%s", err, out)
	}
	if st, err := l.cli("status"); err != nil || !strings.Contains(st, "conntrack") {
		t.Errorf("status does not show the conntrack part: %v\n%s", err, st)
	}
}
