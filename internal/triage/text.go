package triage

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

const stampLayout = "2006-01-02 15:04:05"

// WriteJSON writes the result as one indented JSON object.
func (r *Result) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes a short report for a person at the abuse desk, ending
// with the draft reply. Every line of it is printable: report-derived text
// was escaped when the Result was built.
func (r *Result) WriteText(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format, args...) }
	p("Abuse report %s: %s, %d of %s read as report lines.\n\n", r.Name, r.Format, r.Lines.Parsed, plural(int(r.Lines.Read), "line"))
	p("Verdict:    %s (%s)\n", strings.ToUpper(verdictWords(r.Verdict)), r.Verdict)
	p("            %s\n", r.Reason)
	p("Counted:    %s, %s, %s, %s\n", plural(r.Attempts, "connection attempt"), plural(r.Packets, "packet"),
		plural(r.Ports, "port"), plural(r.Hosts, "host"))
	p("Window:     %s\n", r.windowText())
	if alt := r.reportClockText(); alt != "" {
		p("            %s\n", alt)
	}
	p("Assumed:    %s\n", r.Assumptions)
	if len(r.Sources) > 0 {
		p("Sources:\n")
		for _, s := range r.Sources {
			p("  %-10s %s\n", s.Verdict, s.line())
		}
	}
	p("Log:        %s. %s\n", r.Log, r.LogNote)
	if r.Hint != "" {
		p("Hint:       %s\n", r.Hint)
	}
	if len(r.Clients) > 0 {
		p("Clients:\n")
		for i := range r.Clients {
			p("  %s\n", r.Clients[i].line(r.Attempts))
		}
	}
	for i, n := range r.Notes {
		if i == 0 {
			p("Notes:\n")
		}
		p("  - %s\n", n)
	}
	p("\nDraft reply (check and edit before sending):\n\n")
	for _, l := range strings.Split(strings.TrimRight(r.DraftReply, "\n"), "\n") {
		if l == "" {
			p("\n")
			continue
		}
		p("    %s\n", l)
	}
	return bw.Flush()
}

func verdictWords(v string) string {
	switch v {
	case "scan":
		return "a port scan"
	case "suspicious":
		return "suspicious, not clearly a port scan"
	}
	return "not a port scan"
}

func (r *Result) windowText() string {
	s, e := r.Window.Start.UTC(), r.Window.End.UTC()
	return fmt.Sprintf("%s – %s UTC (%s)", s.Format(stampLayout), e.Format(stampLayout), span(e.Sub(s)))
}

// reportClockText shows the window as the report wrote it, when that
// differs from UTC: the zone used and the offset added back.
func (r *Result) reportClockText() string {
	off, _ := time.ParseDuration(r.Offset)
	if (r.loc == nil || r.loc == time.UTC) && off == 0 {
		return ""
	}
	loc := r.loc
	if loc == nil {
		loc = time.UTC
	}
	s, e := r.Window.Start.Add(off).In(loc), r.Window.End.Add(off).In(loc)
	return fmt.Sprintf("= %s – %s on the report's clock (%s, offset %v)", s.Format(stampLayout), e.Format(stampLayout), zoneName(loc), off)
}

func span(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func (s *Source) line() string {
	src := s.Src
	if s.SrcMasked {
		src += " (masked"
		if s.LookupSrc != "" {
			src += ", searched as " + s.LookupSrc
		}
		src += ")"
	}
	dst := strings.Join(s.DstHosts, ", ")
	if s.Hosts > len(s.DstHosts) {
		dst += fmt.Sprintf(" and %d more", s.Hosts-len(s.DstHosts))
	}
	ports := strings.Join(s.PortList, ", ")
	if s.Ports > len(s.PortList) {
		ports += fmt.Sprintf(" and %d more", s.Ports-len(s.PortList))
	}
	return fmt.Sprintf("%s -> %s: %s, %s, %s (%s), %s – %s UTC: %s", src, dst,
		plural(s.Attempts, "attempt"), plural(s.Packets, "packet"), plural(s.Ports, "port"), ports,
		s.First.Format(stampLayout), s.Last.Format("15:04:05"), s.Reason)
}

func (c *Client) line(attempts int) string {
	var b strings.Builder
	b.WriteString(c.IP)
	switch {
	case c.Process != nil:
		fmt.Fprintf(&b, " process %q (PID %d, UID %d)", c.Process.Comm, c.Process.PID, c.Process.UID)
	case c.NAT:
		fmt.Fprintf(&b, " (internal client, behind our NAT as %s)", c.Outside)
	}
	fmt.Fprintf(&b, ": matches %d of %s; %s, %s – %s UTC", c.Matched, plural(attempts, "reported attempt"),
		plural(c.Attempts, "logged connection"), c.First.Format(stampLayout), c.Last.Format("15:04:05"))
	if len(c.Outcomes) > 0 {
		var parts []string
		for _, o := range []string{"established", "refused", "unanswered", "unknown"} {
			if n := c.Outcomes[o]; n > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n, o))
			}
		}
		b.WriteString(" (" + strings.Join(parts, ", ") + ")")
	}
	return b.String()
}
