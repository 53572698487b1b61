package csf

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/internal/importer/importutil"
)

// How CSF reads its lists (csf.pl and lfd.pl; readme.txt, "Include
// statement in configuration files", "Advanced Allow/Deny Filters"):
//
//   - a line that starts with "Include" names a file whose lines are
//     appended to the list being read; the path must be absolute, and a
//     comment after it makes the line name a file that does not exist. The
//     appended lines are read in turn, Include lines too, with no limit: a
//     file that includes itself makes csf read for ever;
//   - other lines lose their blanks at either end; empty lines, lines
//     starting with '#' and lines mentioning "Include" are skipped;
//   - the entry is the first word, and the rest of the line its comment
//     ("1.2.3.4 # lfd: (sshd) Failed SSH login ... - Fri Mar 6 00:30:35
//     2015");
//   - an entry is an IPv4 or IPv6 address, ADDRESS/BITS, or an advanced
//     filter, tcp|in|d=22|s=1.2.3.4 (protocol tcp, udp or icmp, default
//     tcp; direction in or out, default in; s= and d= a port, "2000_3000",
//     "22,80,443", or an address; u= and g= a UID or GID). Host names are
//     ignored, except in csf.dyndns.

// listLine is one line of a list file that is an entry: not a comment, not
// an Include.
type listLine struct {
	File    string // "csf.allow", or the path an Include named
	Line    int
	Raw     string // the line, without blanks at either end
	Token   string // the entry: the first word
	Comment string // the rest, without a leading '#'
}

// listFile is a list and the files it includes.
type listFile struct {
	lines []listLine
	// comments are the comment lines, for csf.blocklists, whose disabled
	// lists are commented out.
	comments []listLine
	read     int // files read (1 + includes followed)
}

var includeLine = regexp.MustCompile(`^Include\s*(.*)$`)

// readList reads a list of the input and follows its Include lines as CSF
// does: the lines of an included file come after those of the file that
// includes it. Every Include line becomes an Entry, followed or not and why.
// It returns nil when the list is not in the input.
func (c *converter) readList(name string) *listFile {
	data, ok := c.in.Files[name]
	if !ok {
		return nil
	}
	type job struct {
		label string
		data  []byte
		depth int
		entry int    // index in c.res.Entries of the Include line that named it, or -1
		from  string // where it was read, when not the path the line names
	}
	lf := &listFile{read: 1}
	seen := map[string]string{filepath.Join(c.in.Dir, name): name}
	for queue := []job{{name, data, 0, -1, ""}}; len(queue) > 0; queue = queue[1:] {
		j := queue[0]
		count := 0
		for i, raw := range splitLines(j.data) {
			n := i + 1
			if m := includeLine.FindStringSubmatch(raw); m != nil {
				if next, ok := c.include(j.label, n, m[1], j.depth, seen); ok {
					queue = append(queue, job{next.label, next.data, j.depth + 1, len(c.res.Entries) - 1, next.from})
					lf.read++
				}
				continue
			}
			text := clean(raw)
			switch {
			case text == "":
				continue
			case text[0] == '#':
				lf.comments = append(lf.comments, listLine{File: j.label, Line: n, Raw: text})
				continue
			case strings.Contains(text, "Include"):
				c.addEntry(j.label, n, text, Unsupported, "CSF skips any line that mentions Include but is not an Include line at its start (an indented one, say): nothing read")
				continue
			}
			tok, comment := text, ""
			if k := strings.IndexAny(text, " \t"); k >= 0 {
				tok, comment = text[:k], clean(text[k:])
			}
			comment = clean(strings.TrimLeft(comment, "#"))
			lf.lines = append(lf.lines, listLine{File: j.label, Line: n, Raw: text, Token: tok, Comment: comment})
			count++
		}
		if j.entry >= 0 {
			as := "followed: " + importutil.Plural(count, "entry", "entries")
			if j.from != "" {
				as += ", read from " + importutil.Safe(j.from) + " (the copy of /etc/csf being imported)"
			}
			c.res.Entries[j.entry].As = as
		}
	}
	return lf
}

// included is a file an Include line named and that was read.
type included struct {
	label string
	data  []byte
	from  string // where it was read, when not the path the line names
}

// include follows one Include line, within the limits, and records it as an
// Entry: followed (Mapped) or not and why (Unsupported).
func (c *converter) include(file string, line int, arg string, depth int, seen map[string]string) (included, bool) {
	path := clean(arg)
	text := strings.TrimSpace("Include " + path)
	fail := func(why string) (included, bool) {
		c.addEntry(file, line, text, Unsupported, why)
		return included{}, false
	}
	switch {
	case path == "":
		return fail("names no file: nothing read")
	case strings.ContainsAny(path, " \t"):
		return fail("CSF reads the whole rest of the line as the file name, so a comment after it (readme.txt: \"Do NOT put a comment after the Include filename\") names a file that does not exist: CSF read nothing from it, and nor does this import")
	case !strings.HasPrefix(path, "/"):
		return fail("not a full path, which CSF needs (readme.txt): nothing read")
	case depth >= MaxIncludeDepth:
		return fail(fmt.Sprintf("more than %d levels of Include: not followed (CSF has no limit; a chain this deep is a loop or a mistake)", MaxIncludeDepth))
	case c.includes >= MaxFiles:
		return fail(fmt.Sprintf("more than %d included files in all: not followed", MaxFiles))
	case c.in.ReadInclude == nil:
		return fail("not followed: this import was given no way to read included files")
	}
	var candidates []string
	if rest, ok := strings.CutPrefix(path, "/etc/csf/"); ok && filepath.Clean(c.in.Dir) != "/etc/csf" {
		candidates = append(candidates, filepath.Join(c.in.Dir, rest))
	}
	candidates = append(candidates, filepath.Clean(path))
	var errs []string
	for _, p := range candidates {
		if where, ok := seen[p]; ok {
			return fail(fmt.Sprintf("%s is already read (%s): an Include loop, which CSF itself would read for ever, or a file included twice; its entries are counted once", importutil.Safe(p), importutil.Safe(where)))
		}
		data, err := c.in.ReadInclude(p)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if err := importutil.CheckText(data, MaxListSize, "CSF", ErrBinary); err != nil {
			return fail(fmt.Sprintf("%s not read: %v", importutil.Safe(p), err))
		}
		if c.bytes+len(data) > MaxTotal {
			return fail(fmt.Sprintf("%s not read: the included files together would pass %d bytes", importutil.Safe(p), MaxTotal))
		}
		c.bytes += len(data)
		c.includes++
		seen[p] = fmt.Sprintf("%s line %d", file, line)
		c.addEntry(file, line, text, Mapped, "followed")
		inc := included{label: path, data: data}
		if p != filepath.Clean(path) {
			inc.from = p
		}
		return inc, true
	}
	return fail("not read (" + sanitize(strings.Join(errs, "; "), 400) + "): CSF reads nothing from a file it cannot open either. Copy it next to the others, or import on the host where it exists")
}

// parseAddr reads an entry as CSF's checkip does: an IPv4 or IPv6 address,
// or ADDRESS/BITS with BITS at least 1 (checkip refuses /0). A prefix with
// host bits set is masked, and the remark says so.
func parseAddr(tok string) (p netip.Prefix, remark string, ok bool) {
	addr, bits, hasBits := strings.Cut(tok, "/")
	a, err := netip.ParseAddr(addr)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, "", false
	}
	a = a.Unmap()
	n := a.BitLen()
	if hasBits {
		b, err := strconv.Atoi(bits)
		if err != nil || b < 1 || b > a.BitLen() || bits != strconv.Itoa(b) {
			return netip.Prefix{}, "", false
		}
		n = b
	}
	p = netip.PrefixFrom(a, n).Masked()
	if p.Addr() != a {
		remark = "host bits set: read as " + p.String()
	}
	return p, remark, true
}

// hostName reports whether s looks like a DNS name CSF would resolve.
func hostName(s string) bool {
	if len(s) == 0 || len(s) > 253 || !strings.Contains(s, ".") {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	_, err := netip.ParseAddr(s)
	return err != nil
}

// filter is an advanced allow/deny filter: tcp|in|d=22|s=1.2.3.4.
type filter struct {
	proto, dir   string
	sport, dport string
	src, dst     []netip.Prefix
	srcHost      string
	dstHost      string
	owner        string // "u=99" or "g=12"
}

// parseFilter reads an advanced filter, or says why it is not one CSF
// reads.
func parseFilter(tok string) (filter, string) {
	f := filter{proto: "tcp", dir: "in"}
	for _, part := range strings.Split(tok, "|") {
		low := strings.ToLower(part)
		switch {
		case part == "":
		case low == "tcp" || low == "udp" || low == "icmp":
			f.proto = low
		case low == "in" || low == "out":
			f.dir = low
		case strings.HasPrefix(low, "u=") || strings.HasPrefix(low, "g="):
			f.owner = part
		case strings.HasPrefix(low, "s=") || strings.HasPrefix(low, "d="):
			v := part[2:]
			isSrc := low[0] == 's'
			if p, _, ok := parseAddr(v); ok {
				if isSrc {
					f.src = append(f.src, p)
				} else {
					f.dst = append(f.dst, p)
				}
				continue
			}
			if isPortSpec(v) {
				if isSrc {
					f.sport = v
				} else {
					f.dport = v
				}
				continue
			}
			if hostName(v) {
				if isSrc {
					f.srcHost = v
				} else {
					f.dstHost = v
				}
				continue
			}
			if f.proto == "icmp" && isWord(v) {
				f.dport = v
				continue
			}
			return f, fmt.Sprintf("%s is neither a port nor an address", importutil.Quote(part))
		default:
			return f, fmt.Sprintf("%s is not a part of a filter (tcp/udp/icmp, in/out, s=, d=, u=, g=)", importutil.Quote(part))
		}
	}
	return f, ""
}

func isPortSpec(v string) bool {
	if v == "" {
		return false
	}
	for _, p := range strings.Split(v, ",") {
		ends := strings.Split(p, "_")
		if len(ends) > 2 {
			return false
		}
		for _, s := range ends {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 || n > 65535 {
				return false
			}
		}
	}
	return true
}

func isWord(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return false
		}
	}
	return true
}

// what says what a filter lets through or blocks: "port 22/tcp", "ports
// 2000-3000/udp", "ICMP ping", "source port 53/udp".
func (f filter) what() string {
	ports := func(spec string) string {
		spec = strings.ReplaceAll(spec, "_", "-")
		word := "port "
		if strings.ContainsAny(spec, ",-") {
			word = "ports "
		}
		return word + spec
	}
	switch {
	case f.proto == "icmp" && f.dport != "":
		return "ICMP " + f.dport
	case f.proto == "icmp":
		return "ICMP"
	case f.dport != "" && f.sport != "":
		return fmt.Sprintf("%s/%s from source %s", ports(f.dport), f.proto, ports(f.sport))
	case f.dport != "":
		return ports(f.dport) + "/" + f.proto
	case f.sport != "":
		return "source " + ports(f.sport) + "/" + f.proto
	}
	return "all of " + strings.ToUpper(f.proto)
}
