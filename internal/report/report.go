// Package report renders findings for people and programs: an aligned text
// table, worst first, and JSON lines with a stable schema.
package report

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/scanwarden/scanwarden/internal/detect"
)

// JSONFinding is the stable JSON form of a finding: one object per line.
// Fields are only ever added, never renamed.
type JSONFinding struct {
	ID                string         `json:"id"`
	Src               string         `json:"src"`
	Direction         string         `json:"direction"`
	Verdict           string         `json:"verdict"`
	ScanType          string         `json:"scan_type"`
	Class             string         `json:"class"`
	Tool              string         `json:"tool,omitempty"`
	Ports             int            `json:"ports"`
	Hosts             int            `json:"hosts"`
	Saturated         bool           `json:"saturated,omitempty"`
	Packets           int            `json:"packets"`
	Attempts          int            `json:"attempts"`
	Retransmits       int            `json:"retransmits"`
	Failed            int            `json:"failed"`
	Open              int            `json:"open"`
	Stealth           int            `json:"stealth"`
	Responsive        bool           `json:"responsive"`
	FirstSeen         string         `json:"first_seen"`
	LastSeen          string         `json:"last_seen"`
	DetectedAt        string         `json:"detected_at,omitempty"`
	DetectedAtAttempt int            `json:"detected_at_attempt"`
	Reason            string         `json:"reason"`
	Evidence          JSONEvidence   `json:"evidence"`
	Extra             map[string]any `json:"extra,omitempty"`
	// Actor: for an outbound finding, the process behind it.
	Actor *JSONActor `json:"actor,omitempty"`
	// ClientIP, ClientMAC: for a forwarded finding on a router, the
	// internal client (its own address, before NAT) and its MAC from the
	// neighbour table. ClientNAT: this host translates its connections.
	ClientIP  string `json:"client_ip,omitempty"`
	ClientMAC string `json:"client_mac,omitempty"`
	ClientNAT bool   `json:"client_nat,omitempty"`
}

// JSONActor is who made an outbound scan. When exact, the fields are the
// owner of the scan's sockets (Candidates: any other process sharing
// them); otherwise they are empty and Candidates lists the processes that
// could have made it.
type JSONActor struct {
	Exact bool   `json:"exact"`
	How   string `json:"how"`
	JSONProcess
	Candidates []JSONProcess `json:"candidates,omitempty"`
}

// JSONProcess is a local process.
type JSONProcess struct {
	PID       int    `json:"pid,omitempty"`
	User      string `json:"user,omitempty"`
	UID       uint32 `json:"uid"`
	Command   string `json:"command,omitempty"`
	Exe       string `json:"exe,omitempty"`
	Cgroup    string `json:"cgroup,omitempty"`
	Unit      string `json:"unit,omitempty"`
	Container string `json:"container,omitempty"`
}

// JSONEvidence is the detail behind a JSON finding.
type JSONEvidence struct {
	Targets      []string       `json:"targets,omitempty"`
	OpenPorts    []string       `json:"open_ports,omitempty"`
	FailedPorts  []string       `json:"failed_ports,omitempty"`
	FailedHosts  []string       `json:"failed_hosts,omitempty"`
	ProbeTypes   map[string]int `json:"probe_types,omitempty"`
	Outcomes     map[string]int `json:"outcomes,omitempty"`
	Fingerprints map[string]int `json:"fingerprints,omitempty"`
	Score        int            `json:"score"`
	LogLR        float64        `json:"log_likelihood_ratio"`
	Decoys       []string       `json:"decoys,omitempty"`
	Group        []string       `json:"group,omitempty"`
	Fragments    int            `json:"fragments,omitempty"`
	BaitHits     int            `json:"bait_hits,omitempty"`
	BaitPorts    []string       `json:"bait_ports,omitempty"`
	BaitModes    []string       `json:"bait_modes,omitempty"`
}

// ToJSON converts a finding.
func ToJSON(f *detect.Finding) JSONFinding {
	j := JSONFinding{
		ID:                f.ID,
		Src:               f.Src.String(),
		Direction:         f.Direction.String(),
		Verdict:           f.Verdict.String(),
		ScanType:          string(f.ScanType),
		Class:             string(f.Class),
		Tool:              f.Tool,
		Ports:             f.Ports,
		Hosts:             f.Hosts,
		Saturated:         f.Saturated,
		Packets:           f.Packets,
		Attempts:          f.Attempts,
		Retransmits:       f.Retransmits,
		Failed:            f.Failed,
		Open:              f.Open,
		Stealth:           f.Stealth,
		Responsive:        f.Responsive,
		FirstSeen:         rfc3339(f.FirstSeen),
		LastSeen:          rfc3339(f.LastSeen),
		DetectedAtAttempt: f.DetectedAtAttempt,
		Reason:            f.Reason,
	}
	if !f.DetectedAt.IsZero() {
		j.DetectedAt = rfc3339(f.DetectedAt)
	}
	if a := f.Actor; a != nil {
		ja := &JSONActor{Exact: a.Exact, How: a.How}
		for i, p := range a.Processes {
			jp := JSONProcess{PID: p.PID, User: p.User, UID: p.UID, Command: p.Command, Exe: p.Exe, Cgroup: p.Cgroup, Unit: p.Unit, Container: p.Container}
			if a.Exact && i == 0 {
				ja.JSONProcess = jp
			} else {
				ja.Candidates = append(ja.Candidates, jp)
			}
		}
		j.Actor = ja
	}
	if c := f.Client; c != nil {
		j.ClientIP, j.ClientMAC, j.ClientNAT = c.IP.String(), c.MAC, c.NAT
	}
	e := &f.Evidence
	j.Evidence = JSONEvidence{
		Targets:      strs(e.Targets),
		OpenPorts:    ports(e.OpenPorts),
		FailedPorts:  ports(e.FailedPorts),
		FailedHosts:  strs(e.FailedHosts),
		Outcomes:     e.Outcomes,
		Fingerprints: e.Fingerprints,
		Score:        e.Score,
		LogLR:        round(e.LogLR),
		Decoys:       strs(e.Decoys),
		Group:        strs(e.Group),
		Fragments:    e.Fragments,
		BaitHits:     e.BaitHits,
		BaitPorts:    ports(e.BaitPorts),
		BaitModes:    e.BaitModes,
	}
	if len(e.ProbeTypes) > 0 {
		j.Evidence.ProbeTypes = map[string]int{}
		for k, v := range e.ProbeTypes {
			j.Evidence.ProbeTypes[string(k)] = v
		}
	}
	return j
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func round(f float64) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(f, 'f', 3, 64), 64)
	return v
}

func strs(as []netip.Addr) []string {
	if len(as) == 0 {
		return nil
	}
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func ports(ps []detect.PortProto) []string {
	if len(ps) == 0 {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = fmt.Sprintf("%d/%s", p.Port, p.Proto)
	}
	return out
}

// WriteJSON writes one JSON object per line.
func WriteJSON(w io.Writer, fs []detect.Finding) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for i := range fs {
		if err := enc.Encode(ToJSON(&fs[i])); err != nil {
			return err
		}
	}
	return nil
}

// WriteText writes an aligned table, one row per finding, the reason last
// so each row stays one grep-able line.
func WriteText(w io.Writer, fs []detect.Finding) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "VERDICT\tSOURCE\tTYPE\tCLASS\tPORTS\tHOSTS\tATTEMPTS\tPACKETS\tFIRST SEEN\tREASON")
	for i := range fs {
		f := &fs[i]
		typ, class := string(f.ScanType), string(f.Class)
		if f.Verdict == detect.Benign {
			typ, class = "-", "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n",
			f.Verdict, f.Src, typ, class, f.Ports, f.Hosts, f.Attempts, f.Packets,
			f.FirstSeen.UTC().Format("2006-01-02 15:04:05"), Safe(f.Reason))
	}
	return tw.Flush()
}

// Safe makes text from untrusted input (report lines, log prefixes, host
// names) fit to print on a terminal: control characters, escape sequences
// included, and invisible format characters (bidi overrides) are shown as
// Go escapes instead of being sent to the terminal.
func Safe(s string) string {
	clean := true
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}

// Counts summarises findings by verdict: "1 scan, 0 suspicious, 3 benign".
func Counts(fs []detect.Finding) string {
	var n [3]int
	for i := range fs {
		n[fs[i].Verdict]++
	}
	return fmt.Sprintf("%d %s: %d scan, %d suspicious, %d benign",
		len(fs), plural(len(fs), "source"), n[detect.Scan], n[detect.Suspicious], n[detect.Benign])
}

func plural(n int, w string) string {
	if n == 1 {
		return w
	}
	return w + "s"
}
