package follow

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

// TestRealKmsgForgery writes kernel-looking firewall lines to the real
// /dev/kmsg, as root can (with "<12>", user.warning, and with no prefix),
// and checks that the kernel gives them facility 1 (user) and that a kmsg
// sensor counts them as unverified and makes no probe of them. It writes
// no record of facility 0: that is the kernel's alone.
func TestRealKmsgForgery(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root, to write to /dev/kmsg")
	}
	w, err := os.OpenFile("/dev/kmsg", os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("root, but /dev/kmsg cannot be written (%v): no device in this container?", err)
	}
	defer w.Close()

	s, err := Open(Config{Source: SourceKmsg})
	if err != nil {
		t.Fatalf("root can write /dev/kmsg but the sensor cannot read it: %v", err)
	}
	c := newCollector()
	stop := start(t, s, c)
	// A second reader, opened just after the sensor, sees what the kernel
	// made of our records. Once the sensor has read as many records as it
	// did up to our marker, it has read ours (unless others were logged in
	// the microseconds between the two opens).
	raw, err := openKmsg("/dev/kmsg", false)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.close()

	src := netip.AddrFrom4([4]byte{10, 99, byte(1 + rand.IntN(250)), byte(1 + rand.IntN(250))})
	forged := fmt.Sprintf("kernel: Firewall: *TCP_IN Blocked* IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "+
		"SRC=%s DST=10.99.1.1 LEN=44 TOS=0x00 PREC=0x00 TTL=49 ID=4242 PROTO=TCP SPT=1234 DPT=22 "+
		"WINDOW=1024 RES=0x00 SYN URGP=0", src)
	marker := fmt.Sprintf("scanwarden follow test %d.%d done", os.Getpid(), time.Now().UnixNano())
	for _, rec := range []string{"<12>" + forged, forged, "<14>" + marker} {
		if _, err := w.WriteString(rec + "\n"); err != nil { // one write(2), one record
			t.Fatalf("writing %.20q to /dev/kmsg: %v", rec, err)
		}
	}

	// What the kernel made of them.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var records, ours int
	seen := false
	err = raw.follow(ctx, &counters{}, func(r *kmsgRecord) {
		records++
		msg := string(r.text())
		switch {
		case strings.Contains(msg, marker):
			seen = true
			cancel()
		case strings.Contains(msg, "SRC="+src.String()+" "):
			ours++
			if !r.ok || r.facility() != 1 || ours == 1 && r.prio != 12 {
				t.Errorf("the kernel logged our record %d as prio %d (facility %d), want user: %q", ours, r.prio, r.facility(), r.line)
			}
		}
	})
	if err != nil || !seen || ours != 2 {
		t.Fatalf("read back %d of our 2 records, marker seen %v, %v", ours, seen, err)
	}

	st := waitStats(t, s, 10*time.Second, "our records", func(st Stats) bool {
		return st.Lines >= uint64(records) && st.Unverified >= 2
	})
	stop()
	t.Logf("%+v", st)
	for _, p := range c.snapshot() {
		if p.Src.Addr() == src {
			t.Errorf("a probe from a record user space wrote: %+v", p)
		}
	}
	if st.Malformed != 0 {
		t.Errorf("malformed records on the real device: %s", st.FirstProblem)
	}
}
