package conntrack

import (
	"testing"
	"time"
)

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

// BenchmarkDecodeDestroy decodes the DESTROY event the connection log
// records: a masqueraded TCP connection with both counters and the
// kernel's start and stop stamps (nf_conntrack_acct and _timestamp on).
func BenchmarkDecodeDestroy(b *testing.B) {
	ev := masqueraded()
	ev.Type, ev.TCPState = EventDestroy, TCPTimeWait
	ev.HaveCounters = true
	ev.OrigCounters, ev.ReplyCounters = Counters{Packets: 12, Bytes: 1480}, Counters{Packets: 10, Bytes: 9800}
	ev.Start = time.Date(2026, 6, 18, 15, 53, 34, 0, time.UTC)
	ev.Stop = ev.Start.Add(2 * time.Second)
	body := buildBody(b, ev)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var e Event
	for b.Loop() {
		e = Event{Type: EventDestroy}
		if err := decode(body, &e); err != nil {
			b.Fatal(err)
		}
	}
	if !e.HaveCounters || e.Stop.IsZero() {
		b.Fatalf("decoded %+v: counters or stop stamp missing", e)
	}
}
