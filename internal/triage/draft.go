package triage

import (
	"fmt"
	"slices"
	"strings"
)

// draftReply writes a polite, factual answer to the reporter. It names no
// internal address or customer: the reporter needs to know what happened
// and what was done, not who our customer is. Claims are made only on
// evidence: "one customer device" only when the log says so, "we have
// taken action" only as a placeholder for the operator to fill in.
func (r *Result) draftReply() string {
	var b strings.Builder
	b.WriteString("Hello,\n\n")
	fmt.Fprintf(&b, "Thank you for your report about traffic from %s between %s and %s UTC.\n\n",
		r.reportedFrom(), r.Window.Start.Format(stampLayout), r.Window.End.Format(stampLayout))
	if len(r.Sources) == 0 {
		fmt.Fprintf(&b, "Our investigation shows that the %s listed are not connection attempts (ICMP echo or other protocols without ports), so they cannot be a port scan. We are taking no action; if you have further evidence, please send it and we will look again.\n",
			plural(int(r.Lines.Parsed), "packet"))
		b.WriteString("\nKind regards,\n[name]\n[organisation] abuse team\n")
		return b.String()
	}
	main, rest := r.split()
	facts := fmt.Sprintf("%s (%s) %s to %s", plural(main.attempts, "connection attempt"), plural(main.packets, "packet"), r.who(main), main.target())
	attributed := len(r.clientsOf(main)) > 0
	switch r.Verdict {
	case "scan":
		fmt.Fprintf(&b, "Our investigation confirms it: the report shows %s, which is a port scan.", facts)
		if attributed {
			b.WriteString(" We have identified the customer responsible and have taken action [describe: e.g. the customer was notified and the device isolated until cleaned].")
		} else {
			b.WriteString(" We are identifying the customer responsible and will take action.")
		}
		b.WriteString(" Thank you for bringing it to our attention.\n")
	case "suspicious":
		fmt.Fprintf(&b, "Our investigation shows %s. This does not clearly amount to a port scan, but it is unusual", facts)
		if attributed {
			b.WriteString("; we have identified the device involved and are following it up with the customer.\n")
		} else {
			b.WriteString(", and we are looking into it further.\n")
		}
	default:
		fmt.Fprintf(&b, "Our investigation shows %s. %s\n\n", facts, main.benignExplanation())
		b.WriteString("We therefore do not consider this a port scan or other abuse, and we are taking no action against the customer. If you have further evidence, for example other ports or hosts contacted, please send it and we will look again.\n")
	}
	if rest.attempts > 0 {
		fmt.Fprintf(&b, "\nThe other %s in the report (%s) made %s to %s, which %s.\n",
			pluralWord(len(rest.sources), "address", "addresses"), rest.names(), plural(rest.attempts, "connection attempt"), rest.target(), rest.verdictPhrase())
	}
	b.WriteString("\nKind regards,\n[name]\n[organisation] abuse team\n")
	return b.String()
}

// group is some of the report's sources, described together.
type group struct {
	sources                         []Source
	attempts, packets, ports, hosts int
	whole                           bool // all of the report's sources
}

// split puts the sources with the overall verdict in main, the others in
// rest.
func (r *Result) split() (main, rest group) {
	for _, s := range r.Sources {
		g := &rest
		if s.Verdict == r.Verdict {
			g = &main
		}
		g.sources = append(g.sources, s)
		g.attempts += s.Attempts
		g.packets += s.Packets
		g.ports += s.Ports
		g.hosts += s.Hosts
	}
	if len(rest.sources) == 0 { // exact counts across sources
		main.whole = true
		main.attempts, main.packets, main.ports, main.hosts = r.Attempts, r.Packets, r.Ports, r.Hosts
	}
	return main, rest
}

func (r *Result) reportedFrom() string {
	var addrs []string
	for _, s := range r.Sources {
		a := s.Src
		if s.LookupSrc != "" {
			a = s.LookupSrc
		}
		if len(addrs) == 3 {
			addrs = append(addrs, "others")
			break
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return "our network"
	}
	return strings.Join(addrs, ", ")
}

// clientsOf returns the clients that matched attempts of g's sources.
func (r *Result) clientsOf(g group) []Client {
	var out []Client
	for _, c := range r.Clients {
		if slices.ContainsFunc(g.sources, func(s Source) bool { return slices.Contains(c.Sources, s.Src) }) {
			out = append(out, c)
		}
	}
	return out
}

// who says who made g's attempts, in words fit for a reporter.
func (r *Result) who(g group) string {
	devices, procs := map[string]bool{}, 0
	for _, c := range r.clientsOf(g) {
		if c.Process != nil {
			procs++
		} else {
			devices[c.IP] = true
		}
	}
	switch {
	case procs == 0 && len(devices) == 1:
		return "from one customer device"
	case procs == 0 && len(devices) > 1:
		return fmt.Sprintf("from %d customer devices", len(devices))
	case procs == 1 && len(devices) == 0:
		return "from one application on our server"
	case procs > 0 && len(devices) == 0:
		return fmt.Sprintf("from %d processes on our server", procs)
	case procs > 0:
		return fmt.Sprintf("from %d devices and processes on our network", procs+len(devices))
	}
	return "from our network"
}

func (g group) target() string {
	ports := "one port"
	if g.ports != 1 {
		ports = plural(g.ports, "port")
	}
	if len(g.sources) == 1 && len(g.sources[0].PortList) > 0 && g.ports <= 3 {
		ports += " (" + strings.Join(g.sources[0].PortList, ", ") + ")"
	}
	hosts := "one host"
	if g.hosts != 1 {
		hosts = plural(g.hosts, "host")
	}
	if g.hosts == 1 && len(g.sources) == 1 && len(g.sources[0].DstHosts) == 1 && !strings.Contains(g.sources[0].DstHosts[0], "x") {
		hosts += " (" + g.sources[0].DstHosts[0] + ")"
	}
	return ports + " on " + hosts
}

func (g group) names() string {
	var ns []string
	for i, s := range g.sources {
		if i == 3 {
			ns = append(ns, "...")
			break
		}
		ns = append(ns, s.Src)
	}
	return strings.Join(ns, ", ")
}

func (g group) verdictPhrase() string {
	for _, s := range g.sources {
		if s.Verdict == "suspicious" {
			return "does not clearly amount to a port scan; we are looking into it"
		}
	}
	return "is consistent with normal traffic, not a port scan"
}

func (g group) benignExplanation() string {
	one := len(g.sources) == 1 && g.ports == 1 && g.hosts == 1
	tcp := true
	retrans := 0
	for _, s := range g.sources {
		retrans += s.Retransmits
		for _, p := range s.PortList {
			tcp = tcp && strings.HasSuffix(p, "/tcp")
		}
	}
	switch {
	case one && retrans > 0 && tcp:
		what := "each attempt was retransmitted"
		if g.attempts == 1 {
			what = "the attempt was retransmitted"
		}
		return fmt.Sprintf("The repeated packets are SYN retransmissions: %s by the sending system's TCP stack, seconds apart, because no answer came back. This is consistent with SYN retransmissions of a single application's connections to one peer (for example peer-to-peer software), not a port scan.", what)
	case one && retrans > 0:
		return "The repeated packets are retransmissions of the same few requests to one service, consistent with an application retrying one peer, not a port scan."
	case one:
		return "All of them went to one service, consistent with an application connecting to one peer, not a port scan."
	}
	return "The attempts are too few, and too concentrated, to be a port scan."
}

func pluralWord(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return fmt.Sprintf("%d %s", n, many)
}
