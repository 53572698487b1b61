package hostsdeny

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

// FuzzParse: whatever the file holds, parsing and rendering give back the
// same bytes, and a change to the block leaves what is outside it alone.
func FuzzParse(f *testing.F) {
	f.Add([]byte(original))
	f.Add([]byte("ALL: PARANOID\n# BEGIN scanwarden: x\nALL: 192.0.2.7\nnot an entry\n# END scanwarden\ntail\n"))
	f.Add([]byte("# BEGIN scanwarden\r\nALL: [2001:db8::]/32\r\n# END scanwarden"))
	f.Add([]byte("# BEGIN scanwarden\n# END scanwarden\n# BEGIN scanwarden\n"))
	f.Add([]byte("x \\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse(data, DefaultLine)
		if err != nil {
			return
		}
		if !bytes.Equal(c.render(), data) {
			t.Fatalf("render differs:\n%q\n%q", c.render(), data)
		}
		head, tail := string(c.head), string(c.tail)
		c.add(netip.MustParsePrefix("192.0.2.7/32"))
		c.remove(netip.MustParsePrefix("2001:db8::/32"))
		c.canonicalize(DefaultLine)
		out := c.render()
		c2, err := parse(out, DefaultLine)
		if err != nil {
			t.Fatalf("our own output does not parse: %v\n%q", err, out)
		}
		if !strings.HasPrefix(string(c2.head), head) || string(c2.tail) != tail {
			t.Fatalf("outside of the block changed:\n%q\n%q", data, out)
		}
		found := false
		for _, e := range c2.entries {
			found = found || e.ok && e.prefix == netip.MustParsePrefix("192.0.2.7/32")
		}
		if !found {
			t.Fatalf("the entry added is not read back:\n%q", out)
		}
	})
}
