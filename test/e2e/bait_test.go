package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBaitPorts: connect-mode bait. nmap -sT against a bait port, a plain
// ncat connect, and one UDP datagram each get the source banned at once;
// the finding says it touched bait.
func TestBaitPorts(t *testing.T) {
	l := newLab(t, "bait:\n  tcp: [1524, 31337]\n  udp: [31338]\n  banner: \"*** UNAUTHORIZED ACCESS PROHIBITED ***\"\n")
	l.startDaemon()
	// nmap connect scan of one bait port from the scanner.
	if out, err := l.in(l.scan, 30*time.Second, "nmap", "-n", "-Pn", "-sT", "-p", "31337", l.targetIP()); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	if !l.waitBanned(l.scanIP(), 3*time.Second) {
		t.Fatal("nmap -sT against a bait port: not banned")
	}
	out, _ := l.cli("explain", l.scanIP())
	if !strings.Contains(out, "Touched bait") || !strings.Contains(out, "31337") {
		t.Errorf("explain:\n%s", out)
	}
	// A plain connect from the client: the banner, then the ban.
	banner, _ := l.in(l.client, 10*time.Second, "ncat", "-w", "2", "--recv-only", l.targetIP(), "1524")
	if !strings.Contains(banner, "UNAUTHORIZED") {
		t.Errorf("banner %q", banner)
	}
	if !l.waitBanned(l.clientIP(), 3*time.Second) {
		t.Fatal("ncat connect to a bait port: not banned")
	}
	l.cli("unban", l.clientIP())
	// One UDP datagram from the client's IPv6 address.
	l.in(l.client, 5*time.Second, "sh", "-c", fmt.Sprintf("echo probe | ncat -u -w 1 %s 31338", l.addr6(2)))
	if !l.waitBanned(l.addr6(3), 3*time.Second) {
		t.Fatal("a UDP datagram to a bait port: not banned")
	}
}

// TestBaitPortHeldByServiceIsSkipped: a bait port a service already holds is
// skipped, and the log says so.
func TestBaitPortHeldByServiceIsSkipped(t *testing.T) {
	l := newLab(t, "bait:\n  tcp: [22, 31337]\n")
	l.startDaemon()
	log := l.logBuf.String()
	if !strings.Contains(log, "bait port skipped") || !strings.Contains(log, `"port":22`) {
		t.Fatalf("no word of the skipped port in the log:\n%s", tail(log, 20))
	}
	// 22 still serves, and its clients are not bait.
	if out, err := l.in(l.client, 5*time.Second, "ncat", "-z", "-w", "2", l.targetIP(), "22"); err != nil {
		t.Fatalf("22: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	if l.bannedInKernel(l.clientIP()) {
		t.Fatal("a client of the real service on a configured bait port was banned")
	}
}

// TestAdvancedMode: every port below 1024 with no listener is bait; a SYN
// scan of them is banned at its first contact; a service started later on
// a monitored port takes the port out of the bait set without a restart.
func TestAdvancedMode(t *testing.T) {
	l := newLab(t, "sensor:\n  listener_refresh: 500ms\nbait:\n  advanced:\n    enabled: true\n")
	l.startDaemon()
	r := l.nmap("-sS", "-p", "1-300", l.targetIP())
	if !l.waitBanned(l.scanIP(), 3*time.Second) {
		t.Fatalf("advanced mode: a SYN scan below 1024 was not banned (%v)", r.states())
	}
	out, _ := l.cli("explain", l.scanIP())
	if !strings.Contains(out, "Touched bait") {
		t.Errorf("explain:\n%s", out)
	}
	// Port 555 has no listener: bait. Start a service there; once the
	// listener table has it (refresh 500 ms), a client is not bait.
	l.bg(l.target, "ncat", "-lk", "-p", "555")
	l.waitPort(l.target, "555")
	time.Sleep(time.Second)
	if out, err := l.in(l.client, 5*time.Second, "ncat", "-z", "-w", "2", l.targetIP(), "555"); err != nil {
		t.Fatalf("555: %v %s", err, out)
	}
	time.Sleep(500 * time.Millisecond)
	if l.bannedInKernel(l.clientIP()) {
		t.Fatal("a client of a service started after the daemon was banned as bait")
	}
	// 556 is still bait.
	l.in(l.client, 5*time.Second, "ncat", "-z", "-w", "1", l.targetIP(), "556")
	if !l.waitBanned(l.clientIP(), 3*time.Second) {
		t.Fatal("a contact with a listener-less monitored port was not banned")
	}
}

// TestResponses: a hook runs with the ban's values as single arguments, a
// hung hook does not hold detection up, and the hosts.deny and blackhole
// route enforcers carry the ban and drop it on unban.
func TestResponses(t *testing.T) {
	dir := t.TempDir()
	record := filepath.Join(dir, "hook.log")
	script := filepath.Join(dir, "hook.sh")
	os.WriteFile(script, []byte("#!/bin/sh\nfor a in \"$@\"; do printf '[%s]' \"$a\"; done >> "+record+"\necho >> "+record+"\n"), 0o755)
	deny := filepath.Join(dir, "hosts.deny")
	os.WriteFile(deny, []byte("# the admin's own line\nsshd: 192.0.2.66\n"), 0o644)
	cfg := fmt.Sprintf(`hooks:
  - command: [%s, "$ACTION$", "$TARGET$", "port=$PORT$", "$MODE$", "$DURATION$"]
    on: [ban, unban]
  - command: [/bin/sleep, "600"]
    order: before
    timeout: 1s
enforcers:
  hosts_deny:
    enabled: true
    path: %s
  blackhole_route:
    enabled: true
`, script, deny)
	l := newLab(t, cfg)
	l.startDaemon()
	l.nmap("-sS", "-p", "1-50", l.targetIP())
	if !l.waitBanned(l.scanIP(), 5*time.Second) {
		t.Fatal("not banned (a hung before-hook must delay its ban by its timeout at most)")
	}
	waitFile := func(path, want string) string {
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), want) {
				return string(b)
			}
		}
		b, _ := os.ReadFile(path)
		t.Fatalf("%s lacks %q:\n%s", path, want, b)
		return ""
	}
	waitFile(record, fmt.Sprintf("[ban][%s][port=", l.scanIP()))
	d := waitFile(deny, "ALL: "+l.scanIP())
	if !strings.Contains(d, "sshd: 192.0.2.66") {
		t.Fatalf("hosts.deny lost the admin's line:\n%s", d)
	}
	routes, _ := l.in(l.target, 5*time.Second, "ip", "route", "show", "proto", "251")
	if !strings.Contains(routes, "blackhole "+l.scanIP()) {
		t.Fatalf("no blackhole route: %q", routes)
	}
	if out, err := l.cli("unban", l.scanIP()); err != nil {
		t.Fatal(err, out)
	}
	waitFile(record, fmt.Sprintf("[unban][%s]", l.scanIP()))
	if b, _ := os.ReadFile(deny); strings.Contains(string(b), l.scanIP()) {
		t.Fatalf("hosts.deny still holds the unbanned address:\n%s", b)
	}
	if routes, _ := l.in(l.target, 5*time.Second, "ip", "route", "show", "proto", "251"); strings.Contains(routes, l.scanIP()) {
		t.Fatalf("route left after unban: %q", routes)
	}
}
