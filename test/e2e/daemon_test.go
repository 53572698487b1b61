package e2e

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// nmapRun is the part of nmap's XML output the tests read.
type nmapRun struct {
	Hosts []struct {
		Ports struct {
			Extra []struct {
				State string `xml:"state,attr"`
				Count int    `xml:"count,attr"`
			} `xml:"extraports"`
			Ports []struct {
				ID    int `xml:"portid,attr"`
				State struct {
					State string `xml:"state,attr"`
				} `xml:"state"`
			} `xml:"port"`
		} `xml:"ports"`
	} `xml:"host"`
}

// states counts ports by the state nmap reported.
func (r *nmapRun) states() map[string]int {
	out := map[string]int{}
	for _, h := range r.Hosts {
		for _, e := range h.Ports.Extra {
			out[e.State] += e.Count
		}
		for _, p := range h.Ports.Ports {
			out[p.State.State]++
		}
	}
	return out
}

// nmap runs a scan from the scanner namespace and returns nmap's view.
func (l *lab) nmap(args ...string) *nmapRun {
	l.t.Helper()
	args = append([]string{"-n", "-Pn", "-T4", "--max-retries", "1", "--host-timeout", "90s", "-oX", "-"}, args...)
	out, err := l.in(l.scan, 120*time.Second, "nmap", args...)
	if err != nil {
		l.t.Fatalf("nmap %v: %v\n%s", args, err, out)
	}
	var r nmapRun
	if err := xml.Unmarshal([]byte(out[strings.Index(out, "<nmaprun"):]), &r); err != nil {
		l.t.Fatalf("nmap XML: %v", err)
	}
	return &r
}

// TestDaemonBansEveryScanType: each nmap scan type is detected and the
// scanner banned; nmap itself then sees the rest of its probes filtered.
// The number of ports nmap got an answer from is how many attempts got
// through before the ban.
func TestDaemonBansEveryScanType(t *testing.T) {
	l := newLab(t, "policy:\n  ban_time: 10m\n")
	l.startDaemon()
	for _, tc := range []struct {
		name    string
		args    []string
		addr    string
		through []string // nmap states that mean an answer got back
		blocked []string // states that mean the probe met the ban
		maxGot  int
	}{
		{"syn", []string{"-sS", "-p", "1-100"}, l.scanIP(), []string{"open", "closed"}, []string{"filtered"}, 10},
		{"connect", []string{"-sT", "-p", "1-100"}, l.scanIP(), []string{"open", "closed"}, []string{"filtered"}, 10},
		{"fin", []string{"-sF", "-p", "1-100"}, l.scanIP(), []string{"closed"}, []string{"open|filtered"}, 10},
		{"null", []string{"-sN", "-p", "1-100"}, l.scanIP(), []string{"closed"}, []string{"open|filtered"}, 10},
		{"xmas", []string{"-sX", "-p", "1-100"}, l.scanIP(), []string{"closed"}, []string{"open|filtered"}, 10},
		{"ack", []string{"-sA", "-p", "1-100"}, l.scanIP(), []string{"unfiltered"}, []string{"filtered"}, 10},
		{"udp", []string{"-sU", "-p", "1-60"}, l.scanIP(), []string{"closed", "open"}, []string{"open|filtered"}, 10},
		{"syn-ipv6", []string{"-6", "-sS", "-p", "1-100"}, l.addr6(1), []string{"open", "closed"}, []string{"filtered"}, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := l.targetIP()
			if strings.Contains(tc.addr, ":") {
				target = l.addr6(2)
			}
			r := l.nmap(append(tc.args, target)...)
			if !l.waitBanned(tc.addr, 5*time.Second) {
				t.Fatalf("%s not in the kernel set after the scan; nmap saw %v", tc.addr, r.states())
			}
			st := r.states()
			got, blocked := 0, 0
			for _, s := range tc.through {
				got += st[s]
			}
			for _, s := range tc.blocked {
				blocked += st[s]
			}
			t.Logf("nmap %s: %d ports answered before the ban, %d met it (%v)", tc.name, got, blocked, st)
			if got > tc.maxGot {
				t.Errorf("%d attempts got through before the ban, want at most %d", got, tc.maxGot)
			}
			if total := got + blocked; blocked < total*3/4 {
				t.Errorf("only %d of %d probes met the ban", blocked, total)
			}
			out, err := l.cli("unban", tc.addr)
			if err != nil {
				t.Fatalf("unban: %v\n%s", err, out)
			}
			if l.bannedInKernel(tc.addr) {
				t.Fatal("unban left the address in the kernel")
			}
		})
	}
}

// TestDaemonLeavesBenignTrafficAlone: clients of open services, a mail
// client retrying a port the host's own firewall drops, and a monitor
// polling three ports are never banned.
func TestDaemonLeavesBenignTrafficAlone(t *testing.T) {
	l := newLab(t, "")
	// The host's own firewall drops 587 (not ours: a user table).
	nft := "table inet userfw { chain in { type filter hook input priority 0; tcp dport 587 drop; }; }"
	if out, err := l.in(l.target, 5*time.Second, "nft", nft); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	l.startDaemon()
	url := fmt.Sprintf("http://%s/", l.targetIP())
	var urls []string
	for i := 0; i < 300; i++ {
		urls = append(urls, url)
	}
	done := make(chan string, 3)
	go func() { // web clients hammering open ports, parallel connections
		out, err := l.in(l.client, 90*time.Second, "curl", append([]string{"-s", "-o", "/dev/null", "-Z", "--parallel-max", "20"}, urls...)...)
		done <- fmt.Sprintf("curl: %v %s", err, tail(out, 3))
	}()
	go func() { // a mail client retrying a filtered port, three times
		for i := 0; i < 3; i++ {
			l.in(l.client, 10*time.Second, "ncat", "-w", "7", l.targetIP(), "587")
		}
		done <- "mail client done"
	}()
	go func() { // a monitoring checker: three open ports every second
		for i := 0; i < 10; i++ {
			for _, port := range []string{"22", "80", "443"} {
				l.in(l.client, 3*time.Second, "ncat", "-z", "-w", "2", l.targetIP(), port)
			}
			time.Sleep(time.Second)
		}
		done <- "monitor done"
	}()
	for i := 0; i < 3; i++ {
		t.Log(<-done)
	}
	time.Sleep(4 * time.Second) // let every pending attempt time out
	if bans := l.bans(); len(bans) != 0 {
		t.Fatalf("benign traffic was banned: %v", bans)
	}
	out, _ := l.cli("explain", l.clientIP())
	t.Logf("explain client:\n%s", out)
	if strings.Contains(out, "BANNED") {
		t.Fatal("client banned")
	}
	// The daemon does detect: a scan from the same lab is banned.
	l.nmap("-sS", "-p", "1-100", l.targetIP())
	if !l.waitBanned(l.scanIP(), 5*time.Second) {
		t.Fatal("the daemon did not ban a real scan")
	}
}

// TestDaemonCannotBeTurnedAgainstItsFriends: spoofed scans from the default
// gateway and from an allow-listed address do not get them banned, nor does
// a scan from the peer of a live SSH session; a flood of 100 000 spoofed
// sources keeps memory under the cap and bans under the rate cap while
// status still answers within a second.
func TestDaemonCannotBeTurnedAgainstItsFriends(t *testing.T) {
	requireTools(t, "hping3")
	l := newLab(t, "")
	allowed := fmt.Sprintf("10.88.%d.200", l.n)
	cfg := fmt.Sprintf("policy:\n  allow: [%s]\n  max_bans_per_minute: 20\ndetect:\n  max_sources: 20000\n", allowed)
	if err := os.WriteFile(l.cfgPath, append(mustRead(t, l.cfgPath), cfg...), 0o644); err != nil {
		t.Fatal(err)
	}
	l.startDaemon()
	for _, spoofed := range []string{l.gw(), allowed} {
		// A SYN scan of 100 ports, every packet claiming to come from spoofed.
		out, err := l.in(l.scan, 30*time.Second, "hping3", "-q", "-S", "-a", spoofed, "-p", "++1", "-c", "100", "-i", "u2000", l.targetIP())
		if err != nil && !strings.Contains(out, "packets transmitted") {
			t.Fatalf("hping3: %v %s", err, out)
		}
	}
	time.Sleep(time.Second)
	for _, a := range []string{l.gw(), allowed} {
		if l.bannedInKernel(a) {
			t.Fatalf("spoofed source %s was banned", a)
		}
		out, _ := l.cli("grep", a)
		t.Logf("grep %s:\n%s", a, out)
		if !strings.Contains(out, "not acted upon") {
			t.Errorf("no record of the refused ban of %s", a)
		}
	}

	// A live SSH session from the client: its peer is never banned, even
	// when it scans.
	ssh := exec.Command("ip", "netns", "exec", l.client, "ncat", l.targetIP(), "22")
	stdin, _ := ssh.StdinPipe()
	if err := ssh.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); ssh.Process.Kill(); ssh.Wait() }()
	time.Sleep(500 * time.Millisecond)
	if out, err := l.in(l.client, 60*time.Second, "nmap", "-n", "-Pn", "-sS", "-T4", "-p", "1-100", "--max-retries", "0", l.targetIP()); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	time.Sleep(time.Second)
	if l.bannedInKernel(l.clientIP()) {
		t.Fatal("the peer of a live SSH session was banned")
	}

	// The flood.
	flood := make(chan string, 1)
	go func() {
		out, _ := l.in(l.scan, 60*time.Second, "hping3", "-q", "-S", "--rand-source", "-p", "80", "-i", "u10", "-c", "100000", l.targetIP())
		flood <- tail(out, 3)
	}()
	worst := time.Duration(0)
	polls := 0
	for {
		select {
		case out := <-flood:
			t.Logf("flood: %s; slowest status answer %v over %d polls", out, worst, polls)
			var st map[string]any
			o, err := l.cli("status", "--json")
			if err != nil {
				t.Fatal(err)
			}
			json.Unmarshal([]byte(o), &st)
			sources := int(st["sources"].(float64))
			heap := st["heap_bytes"].(float64)
			det := st["detector"].(map[string]any)
			sensor := st["sensor"].(map[string]any)
			t.Logf("after the flood: %d sources tracked (cap 20000), %.0f MiB heap, detector %v, sensor %v, active bans %v",
				sources, heap/(1<<20), det, sensor, st["active_bans"])
			if sources > 20000 {
				t.Errorf("%d sources tracked, cap 20000", sources)
			}
			if bans := int(st["active_bans"].(float64)); bans > 20 {
				t.Errorf("%d bans, rate cap 20 a minute", bans)
			}
			if heap > 512<<20 {
				t.Errorf("heap %.0f MiB", heap/(1<<20))
			}
			if worst > time.Second {
				t.Errorf("status took %v during the flood", worst)
			}
			return
		default:
		}
		t0 := time.Now()
		if out, err := l.cli("status"); err != nil {
			t.Fatalf("status during the flood: %v %s", err, out)
		}
		worst = max(worst, time.Since(t0))
		polls++
		time.Sleep(200 * time.Millisecond)
	}
}

func mustRead(t *testing.T, path string) []byte {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDaemonBansSurviveKill9: a ban survives kill -9 and a restart — still in
// the kernel, still listed, adopted without duplicates — and ends on time.
func TestDaemonBansSurviveKill9(t *testing.T) {
	l := newLab(t, "policy:\n  ban_time: 30s\n")
	l.startDaemon()
	l.nmap("-sS", "-p", "1-50", l.targetIP())
	if !l.waitBanned(l.scanIP(), 5*time.Second) {
		t.Fatal("not banned")
	}
	bannedAt := time.Now()
	rules := func() int {
		out, _ := l.in(l.target, 5*time.Second, "nft", "-a", "list", "table", "inet", "scanwarden")
		return strings.Count(out, "# handle") - strings.Count(out, "set ") - strings.Count(out, "chain ") - 1
	}
	before := rules()
	l.killDaemon(syscall.SIGKILL)
	if !l.bannedInKernel(l.scanIP()) {
		t.Fatal("the ban left the kernel with the daemon")
	}
	l.startDaemon()
	bans := l.bans()
	if len(bans) != 1 || bans[0]["target"] != l.scanIP() {
		t.Fatalf("after restart: %v", bans)
	}
	if after := rules(); after != before {
		t.Fatalf("adopting the table changed the rule count from %d to %d", before, after)
	}
	if strings.Count(l.nftSet("banned4"), l.scanIP()) != 1 {
		t.Fatalf("duplicate elements:\n%s", l.nftSet("banned4"))
	}
	// It ends on time: 30 s after the ban, give or take.
	for time.Since(bannedAt) < 40*time.Second && l.bannedInKernel(l.scanIP()) {
		time.Sleep(500 * time.Millisecond)
	}
	if l.bannedInKernel(l.scanIP()) {
		t.Fatal("the ban did not expire in the kernel")
	}
	if el := time.Since(bannedAt); el < 25*time.Second {
		t.Fatalf("the ban ended after %v, want about 30s", el)
	}
	time.Sleep(11 * time.Second) // the daemon drops expired bans every 10 s
	if bans := l.bans(); len(bans) != 0 {
		t.Fatalf("expired ban still listed: %v", bans)
	}
}

// TestDaemonRefusesBadStart: a broken configuration and an unusable state
// directory are clear errors with a non-zero exit, and the firewall is left
// untouched.
func TestDaemonRefusesBadStart(t *testing.T) {
	l := newLab(t, "")
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("policy:\n  ban_tme: 1h\n"), 0o644)
	file := filepath.Join(t.TempDir(), "a-file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--config", bad}, "bad.yaml:2: unknown key \"ban_tme\""},
		{[]string{"run", "--config", l.cfgPath, "--state-dir", filepath.Join(file, "sub")}, "state"},
		{[]string{"run", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, "missing.yaml"},
	} {
		out, err := l.in(l.target, 20*time.Second, l.bin, tc.args...)
		code := -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		if err == nil || code == 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: exit %d, output %q, want an error containing %q", tc.args, code, out, tc.want)
		}
		if tables, _ := l.in(l.target, 5*time.Second, "nft", "list", "tables"); strings.Contains(tables, "scanwarden") {
			t.Fatalf("%v touched the firewall: %s", tc.args, tables)
		}
	}
}
