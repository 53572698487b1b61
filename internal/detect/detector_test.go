package detect

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor/probetext"
)

var epoch = time.Date(2026, 11, 21, 5, 0, 0, 0, time.UTC)

// run feeds probe lines to a fresh detector and returns findings by source.
func run(t *testing.T, cfg Config, lines string) map[string]Finding {
	t.Helper()
	d, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	r := probetext.NewReader(strings.NewReader(lines), t.Name(), epoch)
	var p probe.Probe
	for {
		err := r.Next(&p)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		d.Observe(&p)
	}
	d.Flush()
	out := map[string]Finding{}
	for _, f := range d.Snapshot() {
		out[f.Src.String()] = f
	}
	return out
}

func must(t *testing.T, fs map[string]Finding, src string) Finding {
	t.Helper()
	f, ok := fs[src]
	if !ok {
		t.Fatalf("no finding for %s; have %v", src, keys(fs))
	}
	return f
}

func keys(fs map[string]Finding) []string {
	var k []string
	for s := range fs {
		k = append(k, s)
	}
	return k
}

func TestRetriedBlockedPortIsOneAttempt(t *testing.T) {
	fs := run(t, DefaultConfig(), `
0 203.0.113.9:51000 > 198.51.100.7:587 tcp S outcome=dropped
1 203.0.113.9:51000 > 198.51.100.7:587 tcp S outcome=dropped
`)
	f := must(t, fs, "203.0.113.9")
	if f.Verdict != Benign || f.Attempts != 1 || f.Packets != 2 || f.Retransmits != 1 {
		t.Fatalf("got %+v", f)
	}
	for _, want := range []string{"one connection attempt, retried", "587/submission", "not a port scan"} {
		if !strings.Contains(f.Reason, want) {
			t.Errorf("reason %q lacks %q", f.Reason, want)
		}
	}
}

func TestSameTupleNewISNIsNewAttempt(t *testing.T) {
	fs := run(t, DefaultConfig(), `
0 10.0.0.1:40000 > 10.0.0.2:80 tcp S seq=100
1 10.0.0.1:40000 > 10.0.0.2:80 tcp S seq=100
2 10.0.0.1:40000 > 10.0.0.2:80 tcp S seq=900
`)
	if f := must(t, fs, "10.0.0.1"); f.Attempts != 2 || f.Packets != 3 {
		t.Fatalf("attempts %d packets %d, want 2 and 3", f.Attempts, f.Packets)
	}
}

func TestRetransmissionWindowEnds(t *testing.T) {
	cfg := DefaultConfig()
	fs := run(t, cfg, fmt.Sprintf(`
0 10.0.0.1:40000 > 10.0.0.2:80 tcp S
%d 10.0.0.1:40000 > 10.0.0.2:80 tcp S
`, int(cfg.RetransmitWindow.Seconds())+1))
	if f := must(t, fs, "10.0.0.1"); f.Attempts != 2 {
		t.Fatalf("attempts %d, want 2: a SYN after the window is a new attempt", f.Attempts)
	}
}

func TestAbuseReportRetries(t *testing.T) {
	var b strings.Builder
	n := 0
	for i, sport := range []int{52218, 52219, 52231, 52240} {
		for j, dt := range []int{0, 3, 9} {
			if i >= 2 && j == 2 {
				break // 10 lines, as in the report
			}
			fmt.Fprintf(&b, "%d 203.0.113.9:%d > 198.51.100.103:6881 tcp S\n", i*20+dt, sport)
			n++
		}
	}
	fs := run(t, DefaultConfig(), b.String())
	f := must(t, fs, "203.0.113.9")
	if f.Verdict != Benign || f.Attempts != 4 || f.Packets != 10 || f.Ports != 1 {
		t.Fatalf("got verdict %v attempts %d packets %d ports %d", f.Verdict, f.Attempts, f.Packets, f.Ports)
	}
	for _, want := range []string{"4 connection attempts", "SYN retransmissions", "6881", "not a port scan"} {
		if !strings.Contains(f.Reason, want) {
			t.Errorf("reason %q lacks %q", f.Reason, want)
		}
	}
}

// synScan writes a raw SYN scan of ports with RST answers except open ones.
func synScan(ports []int, open map[int]bool, step float64) string {
	var b strings.Builder
	for i, port := range ports {
		ts := float64(i) * step
		fmt.Fprintf(&b, "%.4f 10.9.0.1:50000 > 10.9.0.2:%d tcp S seq=%d win=1024 opts=mss ttl=44 id=%d\n", ts, port, 1000+i, 7000+i)
		if open[port] {
			fmt.Fprintf(&b, "%.4f 10.9.0.2:%d > 10.9.0.1:50000 tcp S. seq=5 ack=%d\n", ts+0.0001, port, 1001+i)
			fmt.Fprintf(&b, "%.4f 10.9.0.1:50000 > 10.9.0.2:%d tcp R seq=%d\n", ts+0.0002, port, 1001+i)
		} else {
			fmt.Fprintf(&b, "%.4f 10.9.0.2:%d > 10.9.0.1:50000 tcp R. ack=%d\n", ts+0.0001, port, 1001+i)
		}
	}
	return b.String()
}

func TestVerticalSYNScan(t *testing.T) {
	ports := []int{80, 23, 443, 21, 22, 25, 3389, 110, 445, 139, 143, 53, 135, 3306, 8080}
	fs := run(t, DefaultConfig(), synScan(ports, map[int]bool{22: true, 443: true}, 0.001))
	f := must(t, fs, "10.9.0.1")
	if f.Verdict != Scan || f.ScanType != TypeSYN || f.Class != ClassVertical || f.Tool != "nmap" {
		t.Fatalf("got %v %v %v tool %q: %s", f.Verdict, f.ScanType, f.Class, f.Tool, f.Reason)
	}
	if f.DetectedAtAttempt == 0 || f.DetectedAtAttempt > 10 {
		t.Errorf("detected at attempt %d, want within 10", f.DetectedAtAttempt)
	}
	if f.Ports != len(ports) || f.Open != 2 || f.Failed != len(ports)-2 {
		t.Errorf("ports %d open %d failed %d", f.Ports, f.Open, f.Failed)
	}
	if _, ok := fs["10.9.0.2"]; ok {
		t.Errorf("the target, which only answered, got a finding")
	}
}

func TestFilteredTargetSYNScan(t *testing.T) {
	// No answers at all: every first contact times out.
	var ports []int
	for p := 1; p <= 30; p++ {
		ports = append(ports, p)
	}
	var b strings.Builder
	for i, port := range ports {
		fmt.Fprintf(&b, "%.3f 10.9.0.1:50000 > 10.9.0.2:%d tcp S seq=%d\n", float64(i)*0.01, port, i)
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Scan || f.Evidence.Outcomes["unanswered"] != 30 {
		t.Fatalf("got %v, outcomes %v: %s", f.Verdict, f.Evidence.Outcomes, f.Reason)
	}
}

func TestStealthScans(t *testing.T) {
	for _, tc := range []struct {
		flags string
		want  ScanType
	}{{"F", TypeFIN}, {"none", TypeNULL}, {"FPU", TypeXmas}} {
		var b strings.Builder
		for i := 0; i < 5; i++ {
			fmt.Fprintf(&b, "%d 10.9.0.1:50000 > 10.9.0.2:%d tcp %s win=1024 opts=none\n", i, 20+i, tc.flags)
		}
		f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
		if f.Verdict != Scan || f.ScanType != tc.want || f.Stealth != 5 {
			t.Errorf("%s: got %v %v stealth %d: %s", tc.flags, f.Verdict, f.ScanType, f.Stealth, f.Reason)
		}
	}
}

func TestOneStealthProbeIsSuspicious(t *testing.T) {
	f := must(t, run(t, DefaultConfig(), "0 10.9.0.1:50000 > 10.9.0.2:80 tcp FPU\n"), "10.9.0.1")
	if f.Verdict != Suspicious {
		t.Fatalf("got %v: %s", f.Verdict, f.Reason)
	}
}

func TestACKAndMaimonProbesNeedTheRST(t *testing.T) {
	for _, tc := range []struct {
		flags string
		want  ScanType
	}{{".", TypeACK}, {"F.", TypeMaimon}} {
		var b strings.Builder
		for i := 0; i < 8; i++ {
			fmt.Fprintf(&b, "%d.0 10.9.0.1:50000 > 10.9.0.2:%d tcp %s ack=777 win=1024 opts=none\n", i, 20+i, tc.flags)
			fmt.Fprintf(&b, "%d.001 10.9.0.2:%d > 10.9.0.1:50000 tcp R seq=777\n", i, 20+i)
		}
		f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
		if f.Verdict != Scan || f.ScanType != tc.want {
			t.Errorf("%s: got %v %v: %s", tc.flags, f.Verdict, f.ScanType, f.Reason)
		}
	}
	// The same bare ACKs answered by data: a connection seen mid-stream.
	var b strings.Builder
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&b, "%d.0 10.9.0.1:%d > 10.9.0.2:443 tcp . ack=777\n", i, 50000+i)
		fmt.Fprintf(&b, "%d.001 10.9.0.2:443 > 10.9.0.1:%d tcp P. len=1200\n", i, 50000+i)
	}
	if fs := run(t, DefaultConfig(), b.String()); len(fs) != 0 {
		t.Fatalf("mid-stream ACKs gave findings: %+v", fs)
	}
}

func TestInferredACKProbeFromRSTAlone(t *testing.T) {
	// A live sensor that filters ACKs out sees only the host's RSTs.
	var b strings.Builder
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&b, "%d 10.9.0.2:%d > 10.9.0.1:50000 tcp R seq=%d\n", i, 20+i, 5000+i)
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Scan || f.ScanType != TypeACK {
		t.Fatalf("got %v %v: %s", f.Verdict, f.ScanType, f.Reason)
	}
}

func TestConnectScanByOptions(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 20; i++ {
		fmt.Fprintf(&b, "%.3f 10.9.0.1:%d > 10.9.0.2:%d tcp S seq=%d win=64240 opts=mss,sack,ts,nop,ws\n", float64(i)*0.01, 40000+i, 1+i, i)
		fmt.Fprintf(&b, "%.3f 10.9.0.2:%d > 10.9.0.1:%d tcp R. ack=%d\n", float64(i)*0.01+0.001, 1+i, 40000+i, i+1)
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Scan || f.ScanType != TypeConnect || f.Tool != "" {
		t.Fatalf("got %v %v tool %q", f.Verdict, f.ScanType, f.Tool)
	}
}

func TestUDPScanWithRateLimitedUnreachables(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 20; i++ {
		ts := float64(i) * 0.05
		fmt.Fprintf(&b, "%.3f 10.9.0.1:60000 > 10.9.0.2:%d udp\n", ts, 100+i)
		if i%10 == 0 { // Linux answers about one per second
			fmt.Fprintf(&b, "%.3f 10.9.0.2 > 10.9.0.1 icmp unreach/3 quote=10.9.0.1:60000>10.9.0.2:%d/udp\n", ts+0.001, 100+i)
		}
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Scan || f.ScanType != TypeUDP || f.Evidence.Outcomes["closed"] != 2 {
		t.Fatalf("got %v %v outcomes %v: %s", f.Verdict, f.ScanType, f.Evidence.Outcomes, f.Reason)
	}
}

func TestAnsweredUDPIsBenign(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, "%d 10.9.0.1:%d > 10.9.0.53:53 udp\n%d.01 10.9.0.53:53 > 10.9.0.1:%d udp\n", i, 30000+i, i, 30000+i)
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Benign || f.Attempts != 50 || f.Open != 1 {
		t.Fatalf("got %v attempts %d open %d: %s", f.Verdict, f.Attempts, f.Open, f.Reason)
	}
}

func TestTracerouteIsNotAScan(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 12; i++ {
		port := 33434 + 9 + i
		fmt.Fprintf(&b, "%.2f 10.9.0.1:40000 > 10.9.0.2:%d udp\n%.2f 10.9.0.2 > 10.9.0.1 icmp unreach/3 quote=10.9.0.1:40000>10.9.0.2:%d/udp\n", float64(i)*0.01, port, float64(i)*0.01+0.001, port)
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Benign || !strings.Contains(f.Reason, "traceroute") {
		t.Fatalf("got %v: %s", f.Verdict, f.Reason)
	}
}

func TestWebClientIsBenign(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 300; i++ {
		ts := float64(i) * 0.01
		port := []int{80, 443}[i%2]
		fmt.Fprintf(&b, "%.3f 10.9.0.1:%d > 10.9.0.2:%d tcp S seq=%d opts=mss,sack,ts,ws\n", ts, 30000+i, port, i)
		fmt.Fprintf(&b, "%.3f 10.9.0.2:%d > 10.9.0.1:%d tcp S. ack=%d\n", ts+0.0005, port, 30000+i, i+1)
		fmt.Fprintf(&b, "%.3f 10.9.0.1:%d > 10.9.0.2:%d tcp . \n", ts+0.001, 30000+i, port)
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Benign || f.Attempts != 300 || f.Open != 2 || f.Failed != 0 {
		t.Fatalf("got %v attempts %d open %d failed %d: %s", f.Verdict, f.Attempts, f.Open, f.Failed, f.Reason)
	}
	if !strings.Contains(f.Reason, "all answered") {
		t.Errorf("reason: %s", f.Reason)
	}
}

func TestLateAnswerUndoesTimeout(t *testing.T) {
	fs := run(t, DefaultConfig(), `
0 10.9.0.1:40000 > 10.9.0.2:443 tcp S seq=1
5 10.9.0.2:443 > 10.9.0.1:40000 tcp S. ack=2
`)
	f := must(t, fs, "10.9.0.1")
	if f.Open != 1 || f.Failed != 0 {
		t.Fatalf("open %d failed %d: a late SYN/ACK must turn unanswered into open", f.Open, f.Failed)
	}
}

func TestHorizontalSweep(t *testing.T) {
	var b strings.Builder
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "%.2f 10.9.0.1:40000 > 10.9.1.%d:22 tcp S win=65535 id=54321 ttl=250 opts=none\n", float64(i)*0.01, i)
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Scan || f.Class != ClassHorizontal || f.Hosts != 40 || f.Ports != 1 || f.Tool != "zmap" {
		t.Fatalf("got %v %v hosts %d ports %d tool %q: %s", f.Verdict, f.Class, f.Hosts, f.Ports, f.Tool, f.Reason)
	}
	if !strings.Contains(f.Reason, "22/ssh") {
		t.Errorf("reason: %s", f.Reason)
	}
}

func TestBlockScan(t *testing.T) {
	var b strings.Builder
	ts := 0.0
	for h := 1; h <= 6; h++ {
		for port := 20; port < 30; port++ {
			ts += 0.001
			fmt.Fprintf(&b, "%.3f 10.9.0.1:40000 > 10.9.1.%d:%d tcp S\n", ts, h, port)
		}
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Scan || f.Class != ClassBlock {
		t.Fatalf("got %v %v", f.Verdict, f.Class)
	}
}

func TestDecoysAreNamed(t *testing.T) {
	var b strings.Builder
	srcs := []string{"10.9.0.50", "10.9.0.1", "10.9.0.51"}
	for i := 0; i < 20; i++ {
		for j, s := range srcs {
			ts := float64(i)*0.01 + float64(j)*0.00001
			fmt.Fprintf(&b, "%.5f %s:50000 > 10.9.0.2:%d tcp S\n", ts, s, 100+i)
		}
	}
	fs := run(t, DefaultConfig(), b.String())
	for _, s := range srcs {
		f := must(t, fs, s)
		if f.Verdict != Scan || len(f.Evidence.Decoys) != 2 || !strings.Contains(f.Reason, "decoys") {
			t.Errorf("%s: %v decoys %v: %s", s, f.Verdict, f.Evidence.Decoys, f.Reason)
		}
	}
}

func TestDistributedScan(t *testing.T) {
	// Four sources, each failing on 5 disjoint unprivileged ports: no one of
	// them has enough evidence alone (score 5 < 12), together 20 ports.
	var b strings.Builder
	for i := 0; i < 5; i++ {
		for j := 0; j < 4; j++ {
			fmt.Fprintf(&b, "%.2f 10.9.0.%d:50000 > 10.9.0.2:%d tcp S\n", float64(i*4+j)*0.1, 60+j, 2000+j*5+i)
		}
	}
	fs := run(t, DefaultConfig(), b.String())
	for j := 0; j < 4; j++ {
		f := must(t, fs, fmt.Sprintf("10.9.0.%d", 60+j))
		if f.Verdict != Scan || f.Class != ClassDistributed || len(f.Evidence.Group) != 3 {
			t.Errorf("member %d: %v %v group %v: %s", j, f.Verdict, f.Class, f.Evidence.Group, f.Reason)
		}
	}
}

func TestSameBusyPortsAreNotDistributed(t *testing.T) {
	// Background noise: many sources probing the same popular ports.
	var b strings.Builder
	popular := []int{22, 23, 80, 443, 3389, 8080}
	ts := 0.0
	for s := 1; s <= 10; s++ {
		for _, port := range popular[:3+s%3] {
			ts += 0.5
			fmt.Fprintf(&b, "%.1f 10.9.1.%d:50000 > 10.9.0.2:%d tcp S\n", ts, s, port)
		}
	}
	for src, f := range run(t, DefaultConfig(), b.String()) {
		if f.Class == ClassDistributed {
			t.Errorf("%s called distributed: %s", src, f.Reason)
		}
	}
}

func TestMemoryCapEvictsLowEvidenceFirst(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxSources = 64
	var retired []Finding
	d, err := New(cfg, func(f *Finding, u Update) {
		if u == Retired {
			retired = append(retired, *f)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var p probe.Probe
	feed := func(line string) {
		ok, err := probetext.Parse(line, epoch, &p)
		if err != nil || !ok {
			t.Fatal(line, err)
		}
		d.Observe(&p)
	}
	// A slow scanner first, then a flood of one-packet spoofed sources.
	for i := 0; i < 6; i++ {
		feed(fmt.Sprintf("%d 10.9.0.1:50000 > 10.9.0.2:%d tcp S", i*60, 20+i))
	}
	for i := 0; i < 10000; i++ {
		feed(fmt.Sprintf("400.%04d 172.16.%d.%d:1234 > 10.9.0.2:80 tcp S", i, i/250, i%250))
	}
	if d.Sources() > cfg.MaxSources {
		t.Fatalf("%d sources tracked, cap %d", d.Sources(), cfg.MaxSources)
	}
	if d.Stats().Evicted == 0 {
		t.Fatal("nothing evicted")
	}
	f, ok := d.FindingFor(netip.MustParseAddr("10.9.0.1"))
	if !ok {
		t.Fatal("the slow scanner was evicted by the flood")
	}
	if f.Verdict != Scan {
		t.Fatalf("slow scanner: %v: %s", f.Verdict, f.Reason)
	}
}

func TestSlowScanAddsUp(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 8; i++ { // one probe every 5 minutes
		fmt.Fprintf(&b, "%d 10.9.0.1:%d > 10.9.0.2:%d tcp S outcome=closed\n", i*300, 40000+i, 20+i)
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Scan {
		t.Fatalf("got %v: %s", f.Verdict, f.Reason)
	}
}

func TestMixedClientIsNotAScan(t *testing.T) {
	// A mail client trying several submission ports, some blocked.
	fs := run(t, DefaultConfig(), `
0 10.9.0.1:40000 > 10.9.0.2:587 tcp S outcome=dropped
1 10.9.0.1:40001 > 10.9.0.2:465 tcp S outcome=dropped
2 10.9.0.1:40002 > 10.9.0.2:25 tcp S outcome=open
3 10.9.0.1:40003 > 10.9.0.2:993 tcp S outcome=open
4 10.9.0.1:40004 > 10.9.0.2:143 tcp S outcome=dropped
`)
	if f := must(t, fs, "10.9.0.1"); f.Verdict == Scan {
		t.Fatalf("got %v: %s", f.Verdict, f.Reason)
	}
}

func TestSinkSeesEscalation(t *testing.T) {
	var got []Verdict
	d, _ := New(DefaultConfig(), func(f *Finding, u Update) {
		if u == Escalated {
			got = append(got, f.Verdict)
		}
	})
	var p probe.Probe
	for i := 0; i < 10; i++ {
		probetext.Parse(fmt.Sprintf("%d 10.9.0.1:5 > 10.9.0.2:%d tcp S outcome=closed", i, i+1), epoch, &p)
		d.Observe(&p)
	}
	if len(got) != 2 || got[0] != Suspicious || got[1] != Scan {
		t.Fatalf("escalations %v, want [suspicious scan]", got)
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.Theta1 = 0.9
	c.Alpha = 2
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "theta1") || !strings.Contains(err.Error(), "alpha") {
		t.Fatalf("got %v", err)
	}
}

func TestEmptyUDPIsAProbeAtOnce(t *testing.T) {
	var b strings.Builder
	for i := 0; i < 8; i++ { // all sent within 8 ms, long before any timeout
		fmt.Fprintf(&b, "0.00%d 10.9.0.1:60000 > 10.9.0.2:%d udp len=0\n", i, 100+i)
	}
	// A late reply turns one back into an open port.
	b.WriteString("0.5 10.9.0.2:103 > 10.9.0.1:60000 udp len=20\n")
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Scan || f.DetectedAtAttempt > 5 || f.Open != 1 || f.Failed != 7 {
		t.Fatalf("got %v at %d, open %d failed %d: %s", f.Verdict, f.DetectedAtAttempt, f.Open, f.Failed, f.Reason)
	}
	// Datagrams with payload wait for an answer: DNS queries are not probes.
	b.Reset()
	for i := 0; i < 8; i++ {
		fmt.Fprintf(&b, "0.00%d 10.9.0.1:%d > 10.9.0.53:53 udp len=40\n0.01%d 10.9.0.53:53 > 10.9.0.1:%d udp len=90\n", i, 30000+i, i, 30000+i)
	}
	if f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1"); f.Verdict != Benign || f.Failed != 0 {
		t.Fatalf("DNS client: %v: %s", f.Verdict, f.Reason)
	}
}

func TestChangedReportsOnlyWhatChanged(t *testing.T) {
	d, _ := New(DefaultConfig(), nil)
	var p probe.Probe
	feed := func(line string) {
		probetext.Parse(line, epoch, &p)
		d.Observe(&p)
	}
	for i := 0; i < 6; i++ {
		feed(fmt.Sprintf("%d 10.9.0.1:5 > 10.9.0.2:%d tcp S outcome=closed", i, i+1))
	}
	feed("7 10.9.0.7:5 > 10.9.0.2:80 tcp S outcome=open") // benign
	if got := d.Changed(Suspicious, 10); len(got) != 1 || got[0].Src.String() != "10.9.0.1" {
		t.Fatalf("first call: %v", got)
	}
	if got := d.Changed(Suspicious, 10); len(got) != 0 {
		t.Fatalf("nothing changed, got %d", len(got))
	}
	feed("8 10.9.0.1:5 > 10.9.0.2:99 tcp S outcome=closed")
	if got := d.Changed(Suspicious, 10); len(got) != 1 || got[0].Ports != 7 {
		t.Fatalf("after a new probe: %v", got)
	}
}

func baitProbe(line string, kind probe.Bait) probe.Probe {
	var p probe.Probe
	if _, err := probetext.Parse(line, epoch, &p); err != nil {
		panic(err)
	}
	p.Bait = kind
	return p
}

func TestBaitConnectionIsAScanAtOnce(t *testing.T) {
	d, _ := New(DefaultConfig(), nil)
	// The packet sensor sees the SYN (open: a bait listener takes it), then
	// the bait sensor reports the completed connection on the same 4-tuple.
	p := baitProbe("0 10.9.0.1:40000 > 10.9.0.2:31337 tcp S seq=1 opts=mss,sack,ts,ws outcome=open", probe.BaitNone)
	d.Observe(&p)
	p = baitProbe("0.001 10.9.0.1:40000 > 10.9.0.2:31337 tcp S outcome=open", probe.BaitConnect)
	d.Observe(&p)
	f, _ := d.FindingFor(netip.MustParseAddr("10.9.0.1"))
	if f.Verdict != Scan || f.Attempts != 1 || f.Evidence.BaitHits != 1 || f.DetectedAtAttempt != 1 {
		t.Fatalf("got %v attempts %d bait %d at %d: %s", f.Verdict, f.Attempts, f.Evidence.BaitHits, f.DetectedAtAttempt, f.Reason)
	}
	if !strings.Contains(f.Reason, "Touched bait") || !strings.Contains(f.Reason, "31337") {
		t.Errorf("reason: %s", f.Reason)
	}
}

func TestBaitTriggerAndWindow(t *testing.T) {
	cfg := DefaultConfig()
	cfg.BaitTrigger, cfg.BaitWindow = 2, time.Minute
	d, _ := New(cfg, nil)
	hit := func(ts float64, port int) Verdict {
		p := baitProbe(fmt.Sprintf("%.1f 10.9.0.1:%d > 10.9.0.2:%d udp outcome=open", ts, 40000+port, port), probe.BaitConnect)
		d.Observe(&p)
		f, _ := d.FindingFor(netip.MustParseAddr("10.9.0.1"))
		return f.Verdict
	}
	hit(0, 7)
	hit(1, 7) // a repeat of the same datagram flow: not a second contact
	p := baitProbe("1.5 10.9.0.1:40007 > 10.9.0.2:7 udp outcome=open", probe.BaitConnect)
	d.Observe(&p)
	if v := hit(70, 9); v == Scan { // the window of the first contact has passed
		t.Fatal("contacts more than the window apart added up")
	}
	hit(80, 11)
	if v := hit(90, 13); v != Scan {
		t.Fatalf("3 bait contacts within a minute, trigger 2: %v", v)
	}
}

func TestThresholdRuleCountsAttemptsNotPackets(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Threshold = Threshold{Attempts: 10, DistinctPorts: 1, Window: 5 * time.Minute} // CSF's defaults
	// A mail client: 3 connection attempts at blocked 587, each with 4 SYN
	// retransmissions: 15 log lines, more than PS_LIMIT, 3 attempts.
	var b strings.Builder
	for i := 0; i < 3; i++ {
		for j, dt := range []int{0, 1, 3, 7, 15} {
			_ = j
			fmt.Fprintf(&b, "%d 10.9.0.1:%d > 10.9.0.2:587 tcp S seq=%d outcome=dropped\n", i*30+dt, 40000+i, i)
		}
	}
	if f := must(t, run(t, cfg, b.String()), "10.9.0.1"); f.Verdict != Benign {
		t.Fatalf("mail client: %v: %s", f.Verdict, f.Reason)
	}
	// Eleven separate attempts at one port within the window: lfd's rule, with
	// its diversity of 1, calls it (this is what the setting asks for).
	b.Reset()
	for i := 0; i < 11; i++ {
		fmt.Fprintf(&b, "%d 10.9.0.1:%d > 10.9.0.2:8443 tcp S outcome=dropped\n", i*10, 41000+i)
	}
	if f := must(t, run(t, cfg, b.String()), "10.9.0.1"); f.Verdict != Scan || !strings.Contains(f.Reason, "threshold rule") {
		t.Fatalf("11 attempts in 100 s: %v: %s", f.Verdict, f.Reason)
	}
	// The same eleven spread over an hour: the sliding window never holds ten.
	b.Reset()
	for i := 0; i < 11; i++ {
		fmt.Fprintf(&b, "%d 10.9.0.1:%d > 10.9.0.2:8443 tcp S outcome=dropped\n", i*400, 41000+i)
	}
	if f := must(t, run(t, cfg, b.String()), "10.9.0.1"); f.Verdict == Scan {
		t.Fatalf("11 attempts in an hour: %v: %s", f.Verdict, f.Reason)
	}
	// Diversity: 12 attempts at one port do not make 3 distinct ports.
	cfg.Threshold.DistinctPorts = 3
	b.Reset()
	for i := 0; i < 12; i++ {
		fmt.Fprintf(&b, "%d 10.9.0.1:%d > 10.9.0.2:8443 tcp S outcome=dropped\n", i, 42000+i)
	}
	if f := must(t, run(t, cfg, b.String()), "10.9.0.1"); f.Verdict == Scan {
		t.Fatalf("one port, diversity 3: %v: %s", f.Verdict, f.Reason)
	}
}

// TestFailedHostsAreTheScansTargets: a host that talked to 20 web servers
// and then scanned one: the targets shown first are the web servers, the
// failed hosts are the scanned one only (where to look for the process).
func TestFailedHostsAreTheScansTargets(t *testing.T) {
	var b strings.Builder
	for i := range 20 {
		ts := float64(i) * 0.01
		fmt.Fprintf(&b, "%.3f 10.9.0.1:%d > 10.9.1.%d:443 tcp S seq=%d opts=mss,sack,ts,ws\n", ts, 30000+i, i+1, i)
		fmt.Fprintf(&b, "%.3f 10.9.1.%d:443 > 10.9.0.1:%d tcp S. ack=%d\n", ts+0.0005, i+1, 30000+i, i+1)
	}
	for i := range 60 {
		ts := 1 + float64(i)*0.001
		fmt.Fprintf(&b, "%.4f 10.9.0.1:%d > 10.9.2.7:%d tcp S seq=%d opts=mss,sack,ts,ws\n", ts, 40000+i, i+1, 500+i)
		fmt.Fprintf(&b, "%.4f 10.9.2.7:%d > 10.9.0.1:%d tcp R. ack=%d\n", ts+0.0001, i+1, 40000+i, 501+i)
	}
	f := must(t, run(t, DefaultConfig(), b.String()), "10.9.0.1")
	if f.Verdict != Scan {
		t.Fatalf("verdict %v: %s", f.Verdict, f.Reason)
	}
	if len(f.Evidence.Targets) == 0 || f.Evidence.Targets[0].String() != "10.9.1.1" {
		t.Errorf("targets %v: the first hosts contacted", f.Evidence.Targets)
	}
	if len(f.Evidence.FailedHosts) != 1 || f.Evidence.FailedHosts[0].String() != "10.9.2.7" {
		t.Errorf("failed hosts %v, want only the scanned 10.9.2.7", f.Evidence.FailedHosts)
	}
}
