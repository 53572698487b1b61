package triage

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/analyze"
	"github.com/scanwarden/scanwarden/internal/detect"
	render "github.com/scanwarden/scanwarden/internal/report"
	"github.com/scanwarden/scanwarden/internal/sensor/input"
)

// Result is what triage found. The JSON field names are a contract with
// ticket systems: fields are only ever added, never renamed. Every string
// in it is fit to print: whatever came from the report or the log is
// escaped.
type Result struct {
	Name     string `json:"name"`
	Format   string `json:"format"`  // the input's format: "flow report" or "kernel log"
	Verdict  string `json:"verdict"` // scan, suspicious or benign: the worst across sources
	Attempts int    `json:"attempts"`
	Packets  int    `json:"packets"`
	Ports    int    `json:"ports"` // distinct destination ports
	Hosts    int    `json:"hosts"` // distinct destination hosts
	// Window spans the report's packets in our clock, as matched against
	// the log: report times read in TimeZone, minus Offset.
	Window  Window   `json:"window"`
	Clients []Client `json:"clients"` // never null
	Reason  string   `json:"reason"`
	Sources []Source `json:"sources"`

	TimeZone    string `json:"timezone"` // zone of report times that carry none
	Offset      string `json:"offset"`   // the reporter's clock ahead of ours, subtracted
	Skew        string `json:"skew"`     // tolerance either side when matching
	Assumptions string `json:"assumptions"`

	Log     LogStatus   `json:"log"`
	LogNote string      `json:"log_note"`
	Lookup  LookupStats `json:"lookup"`
	// Hint and SuggestedOffset: when nothing matched, a clock difference
	// that makes the report match the log.
	Hint            string `json:"hint,omitempty"`
	SuggestedOffset string `json:"suggested_offset,omitempty"`

	Lines      Lines    `json:"lines"`
	Notes      []string `json:"notes"`
	DraftReply string   `json:"draft_reply"`

	loc *time.Location
}

// Window is a span of time; JSON renders it in RFC 3339, UTC.
type Window struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Source is the verdict on one reported source address.
type Source struct {
	Src         string    `json:"src"`
	SrcMasked   bool      `json:"src_masked"`           // the reporter masked it; Src is a stand-in
	LookupSrc   string    `json:"lookup_src,omitempty"` // the address searched in the log, when not Src
	DstHosts    []string  `json:"dst_hosts"`            // the first few
	Hosts       int       `json:"hosts"`
	Verdict     string    `json:"verdict"`
	ScanType    string    `json:"scan_type"`
	Class       string    `json:"class"`
	Attempts    int       `json:"attempts"`
	Packets     int       `json:"packets"`
	Retransmits int       `json:"retransmits"`
	Ports       int       `json:"ports"`
	PortList    []string  `json:"port_list"` // the first few, "6881/tcp"
	First       time.Time `json:"first"`
	Last        time.Time `json:"last"`
	Reason      string    `json:"reason"`
}

// Client is a machine or local process behind reported attempts.
type Client struct {
	IP      string   `json:"ip"`
	NAT     bool     `json:"nat"`               // seen outside as another address: behind our NAT
	Outside string   `json:"outside,omitempty"` // that address
	Process *Process `json:"process,omitempty"` // for a local process
	Sources []string `json:"sources"`           // the reported sources whose attempts it matched
	// Attempts counts the logged connections that match the report;
	// Matched, the report's attempts they match.
	Attempts     int            `json:"attempts"`
	Matched      int            `json:"matched"`
	First        time.Time      `json:"first"`
	Last         time.Time      `json:"last"`
	Outcomes     map[string]int `json:"outcomes"` // logged connections by outcome
	Packets      uint64         `json:"packets"`
	ReplyPackets uint64         `json:"reply_packets"`
}

// Process is a local process.
type Process struct {
	PID  uint32 `json:"pid"`
	UID  uint32 `json:"uid"`
	Comm string `json:"comm"`
}

// LookupStats counts the connection log search.
type LookupStats struct {
	Attempts    int `json:"attempts"` // connection attempts in the report
	Queried     int `json:"queried"`
	Matched     int `json:"matched"`
	Unmatched   int `json:"unmatched"`
	NotLookedUp int `json:"not_looked_up"`
	Ambiguous   int `json:"ambiguous"` // matched more than one client
	Truncated   int `json:"truncated"` // queries that hit the answer limit
	Errors      int `json:"errors"`
}

// Lines counts the report's lines.
type Lines struct {
	Read         uint64 `json:"read"`
	Parsed       uint64 `json:"parsed"`
	Ignored      uint64 `json:"ignored"` // prose, headers, other log lines
	Malformed    uint64 `json:"malformed"`
	FirstProblem string `json:"first_problem,omitempty"`
}

// lines counts the report's lines: the reader's counts, with the
// over-long lines the unquoter dropped moved from ignored (the empty line
// left in their place) to malformed.
func (r *report) lines() Lines {
	st := r.Stats()
	l := Lines{Read: st.Read.Load(), Parsed: st.Probes.Load(), Ignored: st.Ignored.Load(),
		Malformed: st.Malformed.Load(), FirstProblem: safe(st.FirstProblem())}
	if n := uint64(r.norm.long); n > 0 && l.Ignored >= n {
		l.Ignored -= n
		l.Malformed += n
		if l.FirstProblem == "" {
			l.FirstProblem = fmt.Sprintf("%s:%d: line longer than %d bytes, skipped", safe(r.Name()), r.norm.firstLong, maxLine)
		}
	}
	return l
}

// maxListed bounds the hosts and ports listed per source.
const maxListed = 8

// newResult builds the result's verdict part from the detector's findings.
func newResult(rep *report, ares *analyze.Result, opts *Options) *Result {
	res := &Result{
		Name:     safe(rep.Name()),
		Format:   string(rep.format),
		Verdict:  detect.Benign.String(),
		Window:   Window{Start: rep.first.UTC(), End: rep.last.UTC()},
		Clients:  []Client{},
		Sources:  []Source{},
		Notes:    []string{},
		Lines:    rep.lines(),
		TimeZone: zoneName(opts.Location),
		Offset:   opts.Offset.String(),
		Skew:     opts.Skew.String(),
		loc:      opts.Location,
	}
	for i := range ares.Findings {
		f := &ares.Findings[i]
		s := sourceOf(f, rep, opts)
		res.Sources = append(res.Sources, s)
		res.Attempts += f.Attempts
		res.Packets += f.Packets
		if i == 0 {
			res.Verdict = f.Verdict.String()
		}
	}
	res.Ports, res.Hosts = rep.portCount(), len(rep.hosts)
	if len(ares.Findings) == 1 { // exactly the detector's counts
		res.Ports, res.Hosts = ares.Findings[0].Ports, ares.Findings[0].Hosts
	}
	if ares.DroppedBenign > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d benign sources were dropped from tracking (more than %d sources); their attempts are not counted.", ares.DroppedBenign, maxSources))
	}
	return res
}

func sourceOf(f *detect.Finding, rep *report, opts *Options) Source {
	s := Source{
		Src:         rep.srcText(f.Src),
		Hosts:       f.Hosts,
		Verdict:     f.Verdict.String(),
		ScanType:    string(f.ScanType),
		Class:       string(f.Class),
		Attempts:    f.Attempts,
		Packets:     f.Packets,
		Retransmits: f.Retransmits,
		Ports:       f.Ports,
		First:       f.FirstSeen.UTC(),
		Last:        f.LastSeen.UTC(),
		Reason:      safe(f.Reason),
		DstHosts:    []string{},
		PortList:    []string{},
	}
	if si := rep.sources[f.Src]; si != nil {
		// The report's times: the detector's clock does not go back for
		// lines out of order (a report sorted by source), these do.
		s.SrcMasked, s.First, s.Last = si.masked, si.first.UTC(), si.last.UTC()
	}
	if s.SrcMasked && opts.Source.IsValid() {
		s.LookupSrc = opts.Source.String()
	}
	for _, h := range f.Evidence.Targets {
		if len(s.DstHosts) < maxListed {
			s.DstHosts = append(s.DstHosts, rep.dstText(h))
		}
	}
	seen := map[detect.PortProto]bool{}
	for _, pp := range append(append([]detect.PortProto{}, f.Evidence.FailedPorts...), f.Evidence.OpenPorts...) {
		if !seen[pp] && len(s.PortList) < maxListed {
			seen[pp] = true
			s.PortList = append(s.PortList, strconv.Itoa(int(pp.Port))+"/"+pp.Proto.String())
		}
	}
	return s
}

// finish writes the sentences: reason, assumptions, notes, draft reply.
func (res *Result) finish(rep *report, opts *Options) {
	res.Reason = res.overallReason()
	res.Assumptions = fmt.Sprintf("Report times without a zone read as %s; the reporter's clock taken to be %v ahead of ours (subtracted); log times matched within ±%v.",
		zoneName(opts.Location), opts.Offset, opts.Skew)
	if rep.format == input.FormatKernLog && opts.Location == time.UTC {
		res.Notes = append(res.Notes, "The report quotes kernel firewall log lines; their stamps are in the reporter's local time, read here as UTC unless a zone is given.")
	}
	masked := 0
	for _, s := range res.Sources {
		if s.SrcMasked {
			masked++
		}
	}
	if masked > 0 {
		n := "The reporter masked our address; it is shown as the report wrote it (x for masked octets)."
		if opts.Source.IsValid() {
			n += " Searched as " + opts.Source.String() + " (--source)."
			if !fits(rep, opts.Source) {
				n += " Note: that address does not fit the octets the report left visible."
			}
		} else {
			n += " Attribution needs our address the report is about (--source)."
		}
		res.Notes = append(res.Notes, n)
	}
	if opts.Source.IsValid() && masked == 0 {
		if _, ok := rep.sources[opts.Source]; !ok {
			res.Notes = append(res.Notes, fmt.Sprintf("--source %v was not used: the report names our address(es) unmasked, and %v is not among them.", opts.Source, opts.Source))
		}
	}
	if len(rep.dstMasked) > 0 {
		res.Notes = append(res.Notes, "The reporter masked the destination address; the log was searched for any destination on the reported port.")
	}
	if res.Lines.Malformed > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d lines looked like report lines but could not be read (first: %s).", res.Lines.Malformed, res.Lines.FirstProblem))
	}
	res.DraftReply = res.draftReply()
}

// overallReason is the sentence for the whole report.
func (res *Result) overallReason() string {
	switch len(res.Sources) {
	case 0:
		return fmt.Sprintf("%s parsed, none of them a connection attempt the detector counts (ICMP echo or other protocols): nothing to call a port scan.",
			plural(int(res.Lines.Parsed), "report line"))
	case 1:
		return res.Sources[0].Reason
	}
	var n [3]int
	for _, s := range res.Sources {
		v, _ := detect.ParseVerdict(s.Verdict)
		n[v]++
	}
	w := res.Sources[0]
	return fmt.Sprintf("%d reported sources (%d scan, %d suspicious, %d benign); the worst, %s: %s",
		len(res.Sources), n[detect.Scan], n[detect.Suspicious], n[detect.Benign], w.Src, w.Reason)
}

// fits reports whether src agrees with the IPv4 octets the reporter left
// visible in every masked source (a masked octet reads 0).
func fits(rep *report, src netip.Addr) bool {
	for a, si := range rep.sources {
		if !si.masked || !a.Is4() || !src.Is4() {
			continue
		}
		x, y := a.As4(), src.As4()
		for i := range x {
			if x[i] != 0 && x[i] != y[i] {
				return false
			}
		}
	}
	return true
}

func zoneName(loc *time.Location) string {
	if loc == nil || loc == time.UTC {
		return "UTC"
	}
	return safe(loc.String())
}

// safe escapes text for output (see report.Safe): control bytes, escape
// sequences, invalid UTF-8 and invisible format characters are shown as Go
// escapes, in text and JSON alike.
func safe(s string) string { return render.Safe(s) }

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	if strings.HasSuffix(word, "y") {
		return fmt.Sprintf("%d %sies", n, word[:len(word)-1])
	}
	return fmt.Sprintf("%d %ss", n, word)
}
