package conntrack

import "testing"

// FuzzDecode feeds arbitrary message bodies to the decoder: it must never
// panic, and what it accepts must be a well-formed event. Seeds are in
// testdata/fuzz/FuzzDecode and built here from a real-shaped message.
func FuzzDecode(f *testing.F) {
	good := buildBody(f, masqueraded())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		if err := decode(b, &e); err != nil {
			return
		}
		for _, tu := range []Tuple{e.Orig, e.Reply} {
			if !tu.Src.Addr().IsValid() || !tu.Dst.Addr().IsValid() {
				t.Fatalf("accepted a tuple without addresses: %+v", tu)
			}
			if tu.Src.Addr().Is4() != tu.Dst.Addr().Is4() {
				t.Fatalf("accepted a tuple of mixed families: %+v", tu)
			}
		}
		_ = e.NATed()
	})
}
