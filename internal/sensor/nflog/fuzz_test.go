package nflog

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// FuzzDatagram feeds arbitrary datagrams to the decoder (and to the
// acknowledgement search) as if the socket had returned them. The seed
// corpus in testdata/fuzz/FuzzDatagram holds datagrams the kernel sent in
// the namespace tests and crafted odd ones; `go test -run TestWriteSeeds
// -seeds` (as root) writes it afresh.
//
//	go test -fuzz FuzzDatagram -fuzztime 60s ./internal/sensor/nflog
func FuzzDatagram(f *testing.F) {
	for _, s := range craftedSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := testDecoder(testHost)
		var n uint64
		d.datagram(b, func(p *probe.Probe, m *Meta) {
			n++
			g := d.group(m.Group)
			switch {
			case g == nil:
				t.Fatalf("probe from group %d, which is not bound", m.Group)
			case p.Outcome != g.outcome || p.Sensor != probe.SensorNFLog:
				t.Fatalf("outcome %v sensor %v in group %d", p.Outcome, p.Sensor, m.Group)
			case !p.Src.Addr().IsValid() || !p.Dst.Addr().IsValid():
				t.Fatalf("probe without addresses: %+v", p)
			case p.Time.IsZero():
				t.Fatal("probe without a time")
			}
		})
		st := d.stats()
		if st.Probes != n || st.Probes+st.NoPayload+st.Ignored > st.Messages {
			t.Fatalf("counts do not add up: %d delivered, %+v", n, st)
		}
		var lost uint64
		for _, g := range st.Groups {
			lost += g.Lost
		}
		if lost != st.Lost {
			t.Fatalf("lost %d, groups say %d", st.Lost, lost)
		}
		findAck(b, 1)
	})
}

// craftedSeeds are the parser tests' odd datagrams and a few good ones.
func craftedSeeds(t testing.TB) [][]byte {
	now := time.Now()
	syn := synPacket(t, "203.0.113.9", "10.0.0.1", 40000, 22)
	hdr := hdrAttr(0x0800, HookInput)
	return [][]byte{
		inputSYN(t, 5, 0, now),
		batch(inputSYN(t, 5, 0, now), inputSYN(t, 6, 0, now), inputSYN(t, 5, 3, now)),
		packetMsg(7341, familyIPv6, hdrAttr(0x86dd, HookPrerouting), u32Attr(attrIfIndexIn, 3),
			prefixAttr("scanwarden"), payloadAttr(udpPacket6(t, "fd00::99", "fd00::1", 5353, 161))),
		packetMsg(5, familyIPv4, hdr, payloadAttr(syn[:34])),
		packetMsg(5, familyIPv4, hdr, payloadAttr(nil)),
		packetMsg(5, familyBridge, hdrAttr(0x0806, HookForward), payloadAttr(make([]byte, 28))),
		truncateAttr(packetMsg(5, familyIPv4, hdr, payloadAttr(syn))),
		nlmsg(nlmsgError, 0, make([]byte, 20)),
		shortLength(),
	}
}

var writeSeeds = flag.Bool("seeds", false, "TestWriteSeeds: write the fuzz seed corpus (needs root)")

// TestWriteSeeds writes testdata/fuzz/FuzzDatagram: the crafted seeds and
// datagrams the kernel sends for an nmap SYN scan, IPv4 and IPv6 UDP, and
// our own group at prerouting.
func TestWriteSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("only with -seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDatagram")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		data := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", b)
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range craftedSeeds(t) {
		write(fmt.Sprintf("crafted-%02d", i), s)
	}

	l := newLabOnly(t, csfRuleset+`
table inet scanwarden {
	chain pre {
		type filter hook prerouting priority -300; policy accept;
		tcp flags & (syn|ack) == syn log group 7341 prefix "scanwarden"
	}
}`, "nmap")
	s, err := Open(Config{Groups: []uint16{5}, Own: 7341, NetNS: l.target.FD()}, l.host)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l.peer.Run(t, "nmap", "-n", "-Pn", "-sS", "-p", "20-29", "--max-retries", "0", "-T5", "10.81.0.1")
	l.sendUDP("10.81.0.1:5353")
	l.sendUDP("[fd00:81::1]:5353")
	l.dial("[fd00:81::1]:7")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for i := 0; ctx.Err() == nil; i++ {
		n, errno, err := s.sock.recv()
		if err != nil || errno != 0 {
			break
		}
		write(fmt.Sprintf("kernel-%02d", i), s.sock.buf[:n])
	}
}
