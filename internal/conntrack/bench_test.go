package conntrack

import "testing"

// BenchmarkDecodeNew decodes one NEW event of a masqueraded TCP connection
// as the kernel sends it (with CTA_TIMEOUT and CTA_PROTOINFO to skip).
func BenchmarkDecodeNew(b *testing.B) {
	body := buildBody(b, masqueraded())
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var e Event
	for b.Loop() {
		e = Event{Type: EventNew}
		if err := decode(body, &e); err != nil {
			b.Fatal(err)
		}
	}
}
