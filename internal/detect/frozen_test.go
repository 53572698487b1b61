package detect

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// TestFrozenClockStaysBounded feeds 400 000 SYNs that all carry one
// timestamp (a hostile log, or one whose times run backwards) into a
// detector capped at 4 096 attempts. The detector frees the slots of shed
// attempts when its clock moves; it must move it itself rather than hold
// every shed attempt until the input's time does.
func TestFrozenClockStaysBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxAttempts, cfg.MaxSources = 4096, 4096
	d, err := New(cfg, func(*Finding, Update) {})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 6, 18, 15, 53, 34, 0, time.UTC)
	var p probe.Probe
	feed := func(n int) {
		for i := range n {
			var buf [64]byte
			src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%60000))
			dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), uint16(1+i%65535))
			raw := rawTCP4(buf[:0], src, dst, probe.SYN, uint32(i), 0, synOpts, uint16(i))
			p = probe.Probe{Time: at, Sensor: probe.SensorPacket, Direction: probe.DirInbound}
			if err := probe.Decode(probe.LinkRaw, raw, &p); err != nil {
				t.Fatal(err)
			}
			d.Observe(&p)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	feed(50_000)
	base := heap()
	feed(350_000)
	grown := int64(heap()) - int64(base)
	t.Logf("heap after 50 000 probes %d KiB, grown by %d KiB over 350 000 more; %d attempts held, %d slots",
		base>>10, grown>>10, d.attempts.len(), len(d.attempts.slab))
	if grown > 8<<20 {
		t.Errorf("350 000 probes at one timestamp grew the heap by %d MiB: shed attempts are not freed", grown>>20)
	}
	if n := len(d.attempts.slab); n > 4*cfg.MaxAttempts {
		t.Errorf("%d attempt slots for a cap of %d", n, cfg.MaxAttempts)
	}
	if d.answerQ.len()+d.expireQ.len() > 8*cfg.MaxAttempts {
		t.Errorf("deadline queues hold %d + %d for a cap of %d attempts", d.answerQ.len(), d.expireQ.len(), cfg.MaxAttempts)
	}
}
