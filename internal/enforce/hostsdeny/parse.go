package hostsdeny

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// content is a hosts.deny file split around our block. Rendering an
// unmodified content gives back the bytes it was parsed from.
type content struct {
	orig     []byte
	head     []byte  // everything before the block
	hasBlock bool    // the block is (or is to be) in the file
	begin    string  // the BEGIN line as found, with its line ending; "" for a new block
	entries  []entry // the lines between the markers
	end      string  // the END line as found; "" for a new block
	tail     []byte  // everything after the block
}

// entry is one line of the block.
type entry struct {
	raw    string // the line with its ending; "" until rendered
	prefix netip.Prefix
	ok     bool // a ban; otherwise a line someone else put there, kept as is
}

// parse splits a file around the block. A block that is not closed, or a
// second block, is an error: guessing where ours ends could delete other
// lines. Errors start with the line number.
func parse(data []byte, tmpl string) (*content, error) {
	c := &content{orig: data}
	lines := splitLines(data)
	begin, end := -1, -1
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, beginMarker):
			if begin >= 0 {
				what := "inside the block opened on line " + strconv.Itoa(begin+1)
				if end >= 0 {
					what = "a second scanwarden block"
				}
				return nil, fmt.Errorf("%d: %s; remove one of them", i+1, what)
			}
			begin = i
		case strings.HasPrefix(l, endMarker) && begin >= 0 && end < 0:
			end = i
		}
	}
	if begin < 0 {
		c.head = data
		return c, nil
	}
	if end < 0 {
		return nil, fmt.Errorf("%d: %q without a %q line after it; restore the END line or remove the block", begin+1, beginMarker, endMarker)
	}
	c.hasBlock = true
	c.head = []byte(strings.Join(lines[:begin], ""))
	c.begin = lines[begin]
	for _, l := range lines[begin+1 : end] {
		p, ok := parseEntry(trimEOL(l), tmpl)
		c.entries = append(c.entries, entry{raw: l, prefix: p, ok: ok})
	}
	c.end = lines[end]
	c.tail = []byte(strings.Join(lines[end+1:], ""))
	return c, nil
}

// splitLines splits after each '\n', keeping it.
func splitLines(data []byte) []string {
	var out []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, string(data))
			break
		}
		out = append(out, string(data[:i+1]))
		data = data[i+1:]
	}
	return out
}

func trimEOL(l string) string { return strings.TrimRight(l, "\r\n") }

// render gives the file's bytes.
func (c *content) render() []byte {
	var b bytes.Buffer
	b.Write(c.head)
	if c.hasBlock {
		b.WriteString(c.begin)
	}
	for _, e := range c.entries {
		if c.hasBlock || !e.ok {
			b.WriteString(e.raw)
		}
	}
	if c.hasBlock {
		b.WriteString(c.end)
	}
	b.Write(c.tail)
	return b.Bytes()
}

// add adds an entry for p unless one is there.
func (c *content) add(p netip.Prefix) {
	for _, e := range c.entries {
		if e.ok && e.prefix == p {
			return
		}
	}
	if !c.hasBlock {
		c.hasBlock = true
		c.head = separate(c.head)
	}
	c.entries = append(c.entries, entry{prefix: p, ok: true})
}

// remove removes every entry for p.
func (c *content) remove(p netip.Prefix) {
	c.entries = slices.DeleteFunc(c.entries, func(e entry) bool { return e.ok && e.prefix == p })
}

// separate prepares the text before a new block: the last line must end
// with a newline, and must not end with a backslash, which would continue
// it onto our BEGIN line (hosts_access(5) joins such lines).
func separate(head []byte) []byte {
	if len(head) == 0 {
		return head
	}
	if head[len(head)-1] != '\n' {
		head = append(head, '\n')
	}
	if last := trimEOL(string(head)); strings.HasSuffix(last, `\`) {
		head = append(head, '\n')
	}
	return head
}

// canonicalize writes the markers of a new block, renders entries in the
// current form and drops duplicate entries.
func (c *content) canonicalize(tmpl string) {
	if c.begin == "" {
		c.begin = beginLine + "\n"
	}
	if c.end == "" {
		c.end = endMarker + "\n"
	}
	seen := map[netip.Prefix]bool{}
	out := c.entries[:0]
	for _, e := range c.entries {
		if e.ok {
			if seen[e.prefix] {
				continue
			}
			seen[e.prefix] = true
			if l := render(tmpl, e.prefix); trimEOL(e.raw) != l {
				e.raw = l + "\n"
			}
		}
		out = append(out, e)
	}
	c.entries = out
}

// render is the line for a ban on p.
func render(tmpl string, p netip.Prefix) string {
	return strings.ReplaceAll(tmpl, placeholder, pattern(p))
}

// pattern is p as a hosts_access(5) client pattern (see the package
// documentation). p must be normalized.
func pattern(p netip.Prefix) string {
	a := p.Addr()
	if a.Is4() {
		if p.Bits() == 32 {
			return a.String()
		}
		return a.String() + "/" + mask4(p.Bits()).String()
	}
	if p.Bits() == 128 {
		return "[" + a.String() + "]"
	}
	return "[" + a.String() + "]/" + strconv.Itoa(p.Bits())
}

func mask4(bits int) netip.Addr {
	m := ^uint32(0) << (32 - bits) // 0 for bits == 0: Go shifts past the width to 0
	return netip.AddrFrom4([4]byte{byte(m >> 24), byte(m >> 16), byte(m >> 8), byte(m)})
}

// parseEntry reads the target of a block line: written with the template
// if it was, else the first field that is an address pattern (the line
// was written with another template). Comments and blank lines are not
// entries.
func parseEntry(line, tmpl string) (netip.Prefix, bool) {
	if t := strings.TrimSpace(line); t == "" || t[0] == '#' {
		return netip.Prefix{}, false
	}
	pre, _, _ := strings.Cut(tmpl, placeholder)
	if rest, ok := strings.CutPrefix(line, pre); ok {
		if p, ok := parsePattern(rest[:patternLen(rest)]); ok && render(tmpl, p) == line {
			return p, true
		}
	}
	for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }) {
		if p, ok := parsePattern(f); ok {
			return p, true
		}
		if _, after, ok := strings.Cut(f, ":"); ok && f[0] != '[' {
			if p, ok := parsePattern(after); ok {
				return p, true
			}
		}
	}
	return netip.Prefix{}, false
}

// patternLen is the length of the leading run of characters an address
// pattern can hold.
func patternLen(s string) int {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == '.', c == ':', c == '[', c == ']', c == '/':
		default:
			return i
		}
	}
	return len(s)
}

// parsePattern reads a pattern pattern() writes, and returns it
// normalized.
func parsePattern(s string) (netip.Prefix, bool) {
	var p netip.Prefix
	if inner, ok := strings.CutPrefix(s, "["); ok {
		addr, rest, ok := strings.Cut(inner, "]")
		if !ok {
			return p, false
		}
		a, err := netip.ParseAddr(addr)
		if err != nil || !a.Is6() || a.Zone() != "" {
			return p, false
		}
		bits := 128
		if rest != "" {
			n, ok := strings.CutPrefix(rest, "/")
			if !ok {
				return p, false
			}
			if bits, err = strconv.Atoi(n); err != nil || bits < 0 || bits > 128 || n != strconv.Itoa(bits) {
				return p, false
			}
		}
		p = netip.PrefixFrom(a, bits)
	} else {
		addr, m, hasMask := strings.Cut(s, "/")
		a, err := netip.ParseAddr(addr)
		if err != nil || !a.Is4() {
			return p, false
		}
		bits := 32
		if hasMask {
			if bits = maskBits(m); bits < 0 {
				return p, false
			}
		}
		p = netip.PrefixFrom(a, bits)
	}
	n, err := normalize(p)
	return n, err == nil
}

// maskBits is the prefix length of a dotted-quad netmask; -1 if it is not
// one or not contiguous.
func maskBits(s string) int {
	m, err := netip.ParseAddr(s)
	if err != nil || !m.Is4() {
		return -1
	}
	for bits := 0; bits <= 32; bits++ {
		if mask4(bits) == m {
			return bits
		}
	}
	return -1
}
