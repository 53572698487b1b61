package triage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/analyze"
)

// checkRegistry checks the verdict part of the registry case: ten packets
// from four source ports, 0/3/9 s apart, to one BitTorrent peer.
func checkRegistry(t *testing.T, res *Result) {
	t.Helper()
	if res.Verdict != "benign" || res.Attempts != 4 || res.Packets != 10 || res.Ports != 1 || res.Hosts != 1 {
		t.Fatalf("verdict %s attempts %d packets %d ports %d hosts %d, want benign 4 10 1 1: %s",
			res.Verdict, res.Attempts, res.Packets, res.Ports, res.Hosts, res.Reason)
	}
	for _, want := range []string{"4 connection attempts", "SYN retransmissions", "6881", "not a port scan"} {
		if !strings.Contains(res.Reason, want) {
			t.Errorf("reason %q lacks %q", res.Reason, want)
		}
	}
	if len(res.Sources) != 1 || res.Sources[0].Retransmits != 6 {
		t.Errorf("sources %+v, want one with 6 retransmissions", res.Sources)
	}
	if s := res.Sources[0]; !s.First.Equal(res.Window.Start) || !s.Last.Equal(res.Window.End) {
		t.Errorf("source %v – %v, window %v – %v", s.First, s.Last, res.Window.Start, res.Window.End)
	}
}

func wantClients(t *testing.T, res *Result, want ...string) {
	t.Helper()
	var got []string
	for _, c := range res.Clients {
		got = append(got, c.IP)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("clients %v, want %v (log: %s; %s)", got, want, res.LogNote, res.Hint)
	}
}

func TestRegistryCase(t *testing.T) {
	log := registryLog(0)
	res := run(t, readTestdata(t, "registry-6881.txt"), log, Options{})
	checkRegistry(t, res)
	if !res.Window.Start.Equal(at("2013-06-18 15:53:34")) || !res.Window.End.Equal(at("2013-06-18 16:00:39")) {
		t.Errorf("window %v – %v", res.Window.Start, res.Window.End)
	}
	wantClients(t, res, "10.0.0.23")
	c := res.Clients[0]
	if !c.NAT || c.Outside != "203.0.113.9" || c.Matched != 4 || c.Attempts != 4 || c.Packets != 10 ||
		len(c.Sources) != 1 || c.Sources[0] != "203.0.113.9" ||
		c.Outcomes["unanswered"] != 4 || c.Process != nil {
		t.Errorf("client %+v", c)
	}
	if !c.First.Equal(at("2013-06-18 15:53:34")) || !c.Last.Equal(at("2013-06-18 16:00:39")) {
		t.Errorf("client first %v last %v", c.First, c.Last)
	}
	if res.Log != LogSearched || res.Lookup.Queried != 4 || res.Lookup.Matched != 4 || res.Lookup.Unmatched != 0 {
		t.Errorf("log %s %+v: %s", res.Log, res.Lookup, res.LogNote)
	}
	// Each query names the outside 4-tuple and the attempt's time ± skew.
	q := log.queries[0]
	want := Query{Src: ours, SrcPort: 52218, Dst: reporter.Addr(), DstPort: 6881, Proto: 6,
		Since: at("2013-06-18 15:53:34").Add(-DefaultSkew), Until: at("2013-06-18 15:53:43").Add(DefaultSkew), Limit: queryLimit}
	if q != want {
		t.Errorf("first query %+v, want %+v", q, want)
	}
	out := text(t, res)
	for _, want := range []string{
		"NOT A PORT SCAN (benign)", "4 connection attempts, 10 packets, 1 port, 1 host",
		"2013-06-18 15:53:34 – 2013-06-18 16:00:39 UTC", "10.0.0.23 (internal client, behind our NAT as 203.0.113.9)",
		"matches 4 of 4 reported attempts", "from one customer device to one port (6881/tcp)",
		"SYN retransmissions of a single application's connections", "not a port scan", "±2m0s",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(res.DraftReply, "10.0.0.23") {
		t.Errorf("the draft reply names the internal client:\n%s", res.DraftReply)
	}
	if testing.Verbose() {
		t.Logf("\n%s", out)
	}
}

func TestRegistryCaseTimeZone(t *testing.T) {
	// The reporter wrote local time (UTC+1) without saying so: the log,
	// in UTC, is an hour earlier than the report's stamps.
	log := registryLog(-time.Hour)
	res := run(t, readTestdata(t, "registry-6881.txt"), log, Options{})
	checkRegistry(t, res)
	wantClients(t, res)
	if res.Lookup.Matched != 0 || !strings.Contains(res.LogNote, "Nothing matched") || !strings.Contains(res.LogNote, "--tz") {
		t.Errorf("log note %q", res.LogNote)
	}
	if res.SuggestedOffset != "1h0m0s" || !strings.Contains(res.Hint, "--offset 1h0m0s") {
		t.Errorf("hint %q (suggested %q), want an offset of 1h", res.Hint, res.SuggestedOffset)
	}

	res = run(t, readTestdata(t, "registry-6881.txt"), log, Options{Location: time.FixedZone("UTC+1", 3600)})
	checkRegistry(t, res)
	wantClients(t, res, "10.0.0.23")
	if res.Clients[0].Matched != 4 || res.Hint != "" || res.TimeZone != "UTC+1" {
		t.Errorf("client %+v, hint %q, zone %q", res.Clients[0], res.Hint, res.TimeZone)
	}
	if !res.Window.Start.Equal(at("2013-06-18 14:53:34")) {
		t.Errorf("window starts %v, want 14:53:34 UTC", res.Window.Start)
	}
	out := text(t, res)
	if !strings.Contains(out, "2013-06-18 14:53:34 – 2013-06-18 15:00:39 UTC") ||
		!strings.Contains(out, "= 2013-06-18 15:53:34 – 2013-06-18 16:00:39 on the report's clock (UTC+1") {
		t.Errorf("text does not give the window in both clocks:\n%s", out)
	}

	// The same with the reporter's clock an hour fast instead.
	res = run(t, readTestdata(t, "registry-6881.txt"), log, Options{Offset: time.Hour})
	wantClients(t, res, "10.0.0.23")
}

func TestSkewBounds(t *testing.T) {
	// Five minutes off: outside the default skew, inside a wider one.
	log := registryLog(-5 * time.Minute)
	res := run(t, readTestdata(t, "registry-6881.txt"), log, Options{})
	wantClients(t, res)
	if res.Hint == "" {
		t.Errorf("no hint for a clock 5 minutes off")
	}
	res = run(t, readTestdata(t, "registry-6881.txt"), log, Options{Skew: 6 * time.Minute})
	wantClients(t, res, "10.0.0.23")
}

func TestScanReport(t *testing.T) {
	ip := netip.MustParseAddr("203.0.113.77")
	log := &fakeLog{}
	for i := 0; i < 200; i++ {
		log.conns = append(log.conns, Conn{
			Start: time.Date(2024, 9, 23, 8, 25, i/10, 0, time.UTC), Proto: 6,
			End:    time.Date(2024, 9, 23, 8, 25, i/10+3, 0, time.UTC),
			Client: netip.AddrPortFrom(ip, 61234), Outside: netip.AddrPortFrom(ip, 61234),
			Dst:     netip.AddrPortFrom(netip.MustParseAddr("198.51.100.34"), uint16(1000+i*7)),
			Outcome: "refused", OrigPackets: 1, ReplyPackets: 1,
			PID: 4242, UID: 1001, Comm: "masscan",
		})
	}
	res := run(t, readTestdata(t, "scan-200.txt"), log, Options{})
	if res.Verdict != "scan" || res.Attempts != 200 || res.Ports != 200 || res.Packets != 200 {
		t.Fatalf("verdict %s attempts %d ports %d packets %d: %s", res.Verdict, res.Attempts, res.Ports, res.Packets, res.Reason)
	}
	wantClients(t, res, "203.0.113.77")
	c := res.Clients[0]
	if c.Process == nil || c.Process.PID != 4242 || c.Process.Comm != "masscan" || c.NAT || c.Matched != 200 || c.Outcomes["refused"] != 200 {
		t.Errorf("client %+v process %+v", c, c.Process)
	}
	if !strings.Contains(res.DraftReply, "is a port scan") || !strings.Contains(res.DraftReply, "We have identified the customer") ||
		!strings.Contains(res.DraftReply, "from one application on our server") {
		t.Errorf("draft reply:\n%s", res.DraftReply)
	}
	if !strings.Contains(text(t, res), `process "masscan" (PID 4242, UID 1001)`) {
		t.Errorf("text does not name the process")
	}
}

func TestNoLog(t *testing.T) {
	res := run(t, readTestdata(t, "registry-6881.txt"), nil, Options{})
	checkRegistry(t, res)
	if res.Log != LogNone || !strings.Contains(res.LogNote, "could not attribute") {
		t.Errorf("log %q: %q", res.Log, res.LogNote)
	}
	var b bytes.Buffer
	if err := res.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	if cl, ok := m["clients"].([]any); !ok || len(cl) != 0 {
		t.Errorf("clients = %v in JSON, want []", m["clients"])
	}
	for _, k := range []string{"verdict", "attempts", "packets", "ports", "window", "reason", "sources", "timezone", "offset", "skew", "log", "log_note", "lines", "draft_reply"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
	if w := m["window"].(map[string]any); w["start"] != "2013-06-18T15:53:34Z" || w["end"] != "2013-06-18T16:00:39Z" {
		t.Errorf("window %v", w)
	}
	if !strings.Contains(res.DraftReply, "from our network") && !strings.Contains(res.DraftReply, "203.0.113.9") {
		t.Errorf("draft:\n%s", res.DraftReply)
	}
	if strings.Contains(res.DraftReply, "customer device") {
		t.Errorf("the draft claims a customer device without a log:\n%s", res.DraftReply)
	}
}

func TestMaskedSource(t *testing.T) {
	report := readTestdata(t, "registry-6881-masked.txt")
	log := registryLog(0)
	res := run(t, report, log, Options{})
	checkRegistry(t, res)
	if s := res.Sources[0]; s.Src != "x.x.x.x" || len(s.DstHosts) != 1 || s.DstHosts[0] != "x.x.x.103" {
		t.Errorf("masked addresses shown as %q -> %q, want them as the report wrote them", s.Src, s.DstHosts)
	}
	if !res.Sources[0].SrcMasked || res.Log != LogSkipped || !strings.Contains(res.LogNote, "--source") || len(log.queries) != 0 {
		t.Errorf("masked %v log %s %q, %d queries", res.Sources[0].SrcMasked, res.Log, res.LogNote, len(log.queries))
	}
	wantClients(t, res)

	res = run(t, report, log, Options{Source: ours})
	checkRegistry(t, res)
	wantClients(t, res, "10.0.0.23")
	if res.Sources[0].LookupSrc != "203.0.113.9" || res.Clients[0].Matched != 4 {
		t.Errorf("source %+v client %+v", res.Sources[0], res.Clients[0])
	}
	// The destination was masked too (y.y.y.103): searched on any address.
	if q := log.queries[0]; q.Dst.IsValid() || q.DstPort != 6881 || q.Src != ours {
		t.Errorf("query %+v", q)
	}
	if len(res.Notes) < 2 {
		t.Errorf("notes %q, want the masking explained", res.Notes)
	}
}

func TestMultipleSources(t *testing.T) {
	res := run(t, readTestdata(t, "multi-source.txt"), nil, Options{})
	if res.Verdict != "scan" || len(res.Sources) != 2 {
		t.Fatalf("verdict %s, %d sources: %s", res.Verdict, len(res.Sources), res.Reason)
	}
	s0, s1 := res.Sources[0], res.Sources[1]
	if s0.Src != "203.0.113.60" || s0.Verdict != "scan" || s0.Ports != 30 ||
		s1.Src != "203.0.113.61" || s1.Verdict != "benign" || s1.Attempts != 1 || s1.Packets != 3 {
		t.Errorf("sources %+v", res.Sources)
	}
	if res.Attempts != 31 || res.Packets != 33 || res.Ports != 31 || res.Hosts != 2 {
		t.Errorf("attempts %d packets %d ports %d hosts %d", res.Attempts, res.Packets, res.Ports, res.Hosts)
	}
	if !strings.HasPrefix(res.Reason, "2 reported sources (1 scan, 0 suspicious, 1 benign)") {
		t.Errorf("reason %q", res.Reason)
	}
	// The report lists the sources one after the other, not in time order:
	// each source keeps its own times.
	if s1.First != time.Date(2024, 3, 2, 10, 0, 0, 0, time.UTC) || s1.Last != time.Date(2024, 3, 2, 10, 0, 3, 0, time.UTC) {
		t.Errorf("second source %v – %v", s1.First, s1.Last)
	}
	// The reply is about the scan, and says the other address was benign.
	for _, want := range []string{"30 connection attempts (30 packets) from our network to 30 ports on one host (198.51.100.20), which is a port scan",
		"The other address in the report (203.0.113.61) made 1 connection attempt", "not a port scan"} {
		if !strings.Contains(res.DraftReply, want) {
			t.Errorf("draft lacks %q:\n%s", want, res.DraftReply)
		}
	}
}

func TestNotConnectionAttempts(t *testing.T) {
	res := run(t, "2023-06-18T15:53:34Z ICMP 203.0.113.9 -> 198.51.100.7\n2023-06-18T15:53:35Z ICMP 203.0.113.9 -> 198.51.100.7\n", registryLog(0), Options{})
	if res.Verdict != "benign" || len(res.Sources) != 0 || res.Attempts != 0 || !strings.Contains(res.Reason, "none of them a connection attempt") ||
		!strings.Contains(res.DraftReply, "2 packets listed are not connection attempts") {
		t.Errorf("verdict %s sources %d: %s\n%s", res.Verdict, len(res.Sources), res.Reason, res.DraftReply)
	}
}

func TestUnusedSource(t *testing.T) {
	res := run(t, readTestdata(t, "registry-6881.txt"), nil, Options{Source: netip.MustParseAddr("192.0.2.1")})
	if !slicesContains(res.Notes, "--source 192.0.2.1 was not used") {
		t.Errorf("notes %q", res.Notes)
	}
}

func slicesContains(ss []string, sub string) bool {
	for _, s := range ss {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestQuotedNotice(t *testing.T) {
	res := run(t, readTestdata(t, "notice-quoted.txt"), registryLog(0), Options{})
	checkRegistry(t, res)
	wantClients(t, res, "10.0.0.23")
	if res.Format != "flow report" || res.Lines.Parsed != 10 || res.Lines.Malformed != 0 {
		t.Errorf("format %q lines %+v", res.Format, res.Lines)
	}
}

func TestIptablesLines(t *testing.T) {
	now := func() time.Time { return time.Date(2013, 6, 20, 0, 0, 0, 0, time.UTC) }
	src := netip.MustParseAddr("203.0.113.50")
	log := &fakeLog{conns: []Conn{{
		Start: time.Date(2013, 6, 18, 16, 10, 0, 0, time.UTC), End: time.Date(2013, 6, 18, 16, 10, 6, 0, time.UTC), Proto: 6,
		Client: netip.MustParseAddrPort("10.0.0.5:61001"), Outside: netip.AddrPortFrom(src, 61001),
		Dst: netip.MustParseAddrPort("198.51.100.7:22"), Outcome: "unanswered", OrigPackets: 2,
	}}}
	res := run(t, readTestdata(t, "iptables-quoted.txt"), log, Options{Now: now})
	if res.Format != "kernel log" || res.Verdict != "scan" || res.Attempts != 24 || res.Ports != 24 {
		t.Fatalf("format %q verdict %s attempts %d ports %d: %s (%+v)", res.Format, res.Verdict, res.Attempts, res.Ports, res.Reason, res.Lines)
	}
	wantClients(t, res, "10.0.0.5")
	if res.Lookup.Matched != 1 || res.Lookup.Unmatched != 23 {
		t.Errorf("lookup %+v", res.Lookup)
	}
	if !res.Window.Start.Equal(time.Date(2013, 6, 18, 16, 10, 0, 0, time.UTC)) {
		t.Errorf("window %v", res.Window)
	}
}

func TestLogErrors(t *testing.T) {
	log := registryLog(0)
	log.err = errors.New("database is locked\x1b[2J")
	res := run(t, readTestdata(t, "registry-6881.txt"), log, Options{})
	if res.Log != LogFailed || !strings.Contains(res.LogNote, `database is locked\x1b[2J`) {
		t.Errorf("log %s: %q", res.Log, res.LogNote)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, strings.NewReader(readTestdata(t, "registry-6881.txt")), "r", registryLog(0), Options{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v", err)
	}
}

func TestAnswerFromTheSameMachine(t *testing.T) {
	// A local process and a NAT client behind the same outside port, at
	// once: both are listed and the attempt counts as ambiguous.
	log := registryLog(0)
	c := log.conns[0]
	c.Client = netip.AddrPortFrom(ours, 52218)
	c.PID, c.UID, c.Comm = 777, 0, "qbittorrent"
	log.conns = append(log.conns, c)
	res := run(t, readTestdata(t, "registry-6881.txt"), log, Options{})
	if len(res.Clients) != 2 || res.Lookup.Ambiguous != 1 {
		t.Fatalf("clients %+v lookup %+v", res.Clients, res.Lookup)
	}
	if !strings.Contains(res.LogNote, "more than one client") {
		t.Errorf("note %q", res.LogNote)
	}
}

func TestOptionsValidated(t *testing.T) {
	_, err := Run(context.Background(), strings.NewReader(""), "r", nil, Options{Sensitivity: "paranoid"})
	if err == nil || !strings.Contains(err.Error(), "sensitivity") {
		t.Errorf("err %v", err)
	}
}

// TestSampleVerdicts runs every sample report listed in
// testdata/verdicts.txt and checks its verdict and counts.
func TestSampleVerdicts(t *testing.T) {
	for i, line := range strings.Split(readTestdata(t, "verdicts.txt"), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 6 {
			t.Fatalf("verdicts.txt:%d: want 6 fields, got %q", i+1, line)
		}
		t.Run(f[0], func(t *testing.T) {
			res := run(t, readTestdata(t, f[0]), nil, Options{Now: func() time.Time { return time.Date(2013, 6, 20, 0, 0, 0, 0, time.UTC) }})
			got := strings.Join([]string{res.Verdict, itoa(res.Attempts), itoa(res.Packets), itoa(res.Ports), itoa(len(res.Sources))}, " ")
			if want := strings.Join(f[1:], " "); got != want {
				t.Errorf("got %s, want %s: %s", got, want, res.Reason)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestSameAsAnalyze checks that triage classifies a report exactly as
// `scanwarden analyze` does (internal/analyze over the file).
func TestSameAsAnalyze(t *testing.T) {
	for _, name := range []string{"registry-6881.txt", "registry-6881-masked.txt", "notice-quoted.txt", "scan-200.txt", "multi-source.txt"} {
		t.Run(name, func(t *testing.T) {
			opts := analyze.DefaultOptions()
			opts.Input.Location = time.UTC
			want, err := analyze.Run([]string{filepath.Join("testdata", name)}, opts)
			if err != nil {
				t.Fatal(err)
			}
			res := run(t, readTestdata(t, name), nil, Options{})
			if len(res.Sources) != len(want.Findings) {
				t.Fatalf("%d sources, analyze found %d", len(res.Sources), len(want.Findings))
			}
			for i, f := range want.Findings {
				s := res.Sources[i]
				if s.Verdict != f.Verdict.String() || s.Attempts != f.Attempts || s.Packets != f.Packets || s.Ports != f.Ports ||
					s.Hosts != f.Hosts || s.ScanType != string(f.ScanType) || s.Reason != f.Reason {
					t.Errorf("source %d: triage %+v\nanalyze %+v", i, s, f)
				}
			}
		})
	}
}
