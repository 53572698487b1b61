package pcapfile

import (
	"bytes"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/scanwarden/scanwarden/internal/probe"
)

func captures(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, pat := range []string{"*.pcap", "*.pcapng"} {
		m, err := filepath.Glob(filepath.Join("../../../testdata/captures", pat))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m...)
	}
	if len(out) == 0 {
		t.Fatal("no captures in testdata/captures")
	}
	return out
}

func TestReadsEveryCapture(t *testing.T) {
	for _, file := range captures(t) {
		f, err := os.Open(file)
		if err != nil {
			t.Fatal(err)
		}
		r, err := New(f, file)
		if err != nil {
			t.Fatal(err)
		}
		var p probe.Probe
		for {
			if err := r.Next(&p); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
		}
		st := r.Stats()
		if st.Probes.Load() == 0 || st.Malformed.Load() != 0 {
			t.Errorf("%s: %s", file, st)
		}
		r.Close()
	}
}

// TestDecoderAgreesWithGopacket decodes every frame of every capture with
// both probe.Decode and gopacket/layers and compares what both understand.
func TestDecoderAgreesWithGopacket(t *testing.T) {
	compared := 0
	for _, file := range captures(t) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var src interface {
			ReadPacketData() ([]byte, gopacket.CaptureInfo, error)
		}
		var link layers.LinkType
		if strings.HasSuffix(file, ".pcapng") {
			r, err := pcapgo.NewNgReader(bytes.NewReader(data), pcapgo.DefaultNgReaderOptions)
			if err != nil {
				t.Fatal(err)
			}
			src, link = r, r.LinkType()
		} else {
			r, err := pcapgo.NewReader(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			src, link = r, r.LinkType()
		}
		for i := 1; ; i++ {
			frame, _, err := src.ReadPacketData()
			if err != nil {
				break
			}
			var p probe.Probe
			if probe.Decode(probe.LinkType(link), frame, &p) != nil {
				continue
			}
			first := layers.LayerTypeEthernet
			switch link {
			case layers.LinkTypeLinuxSLL:
				first = layers.LayerTypeLinuxSLL
			case layers.LinkType(276):
				first = layers.LayerTypeLinuxSLL2
			case layers.LinkTypeRaw, layers.LinkType(12), layers.LinkType(14):
				first = layers.LayerTypeIPv4
				if frame[0]>>4 == 6 {
					first = layers.LayerTypeIPv6
				}
			}
			pkt := gopacket.NewPacket(frame, first, gopacket.Default)
			var src, dst netip.Addr
			if ip4, ok := pkt.Layer(layers.LayerTypeIPv4).(*layers.IPv4); ok {
				src, _ = netip.AddrFromSlice(ip4.SrcIP.To4())
				dst, _ = netip.AddrFromSlice(ip4.DstIP.To4())
			} else if ip6, ok := pkt.Layer(layers.LayerTypeIPv6).(*layers.IPv6); ok {
				src, _ = netip.AddrFromSlice(ip6.SrcIP)
				dst, _ = netip.AddrFromSlice(ip6.DstIP)
			} else {
				continue
			}
			if p.Src.Addr() != src || p.Dst.Addr() != dst {
				t.Errorf("%s #%d: addresses %v > %v, gopacket %v > %v", file, i, p.Src, p.Dst, src, dst)
			}
			if tcp, ok := pkt.Layer(layers.LayerTypeTCP).(*layers.TCP); ok {
				var f probe.TCPFlags
				for _, b := range []struct {
					set bool
					bit probe.TCPFlags
				}{{tcp.FIN, probe.FIN}, {tcp.SYN, probe.SYN}, {tcp.RST, probe.RST}, {tcp.PSH, probe.PSH}, {tcp.ACK, probe.ACK}, {tcp.URG, probe.URG}, {tcp.ECE, probe.ECE}, {tcp.CWR, probe.CWR}} {
					if b.set {
						f |= b.bit
					}
				}
				if p.Src.Port() != uint16(tcp.SrcPort) || p.Dst.Port() != uint16(tcp.DstPort) || p.Flags != f ||
					p.Seq != tcp.Seq || p.Ack != tcp.Ack || p.Window != tcp.Window {
					t.Errorf("%s #%d: tcp %v>%v %v seq %d ack %d win %d; gopacket %d>%d %v seq %d ack %d win %d", file, i,
						p.Src.Port(), p.Dst.Port(), p.Flags, p.Seq, p.Ack, p.Window, tcp.SrcPort, tcp.DstPort, f, tcp.Seq, tcp.Ack, tcp.Window)
				}
				compared++
			}
			if udp, ok := pkt.Layer(layers.LayerTypeUDP).(*layers.UDP); ok && !p.Inner.Valid {
				if p.Src.Port() != uint16(udp.SrcPort) || p.Dst.Port() != uint16(udp.DstPort) {
					t.Errorf("%s #%d: udp %v > %v, gopacket %d > %d", file, i, p.Src, p.Dst, udp.SrcPort, udp.DstPort)
				}
				compared++
			}
		}
	}
	if compared < 1000 {
		t.Fatalf("only %d packets compared", compared)
	}
}

func TestTruncatedCaptureEndsWithANote(t *testing.T) {
	data, err := os.ReadFile("../../../testdata/captures/nmap-fin.pcap")
	if err != nil {
		t.Fatal(err)
	}
	cut := data[:len(data)-7]
	r, err := New(bytes.NewReader(cut), "cut.pcap")
	if err != nil {
		t.Fatal(err)
	}
	var p probe.Probe
	n := 0
	for r.Next(&p) == nil {
		n++
	}
	if n == 0 || r.Stats().Malformed.Load() != 1 || !strings.Contains(r.Stats().FirstProblem(), "ends in the middle") {
		t.Fatalf("read %d probes, stats %s", n, r.Stats())
	}
}

func TestNotACapture(t *testing.T) {
	if _, err := New(bytes.NewReader([]byte{0xa1, 0xb2, 0xc3, 0xd4, 1}), "short.pcap"); err == nil {
		t.Fatal("a 5-byte file was accepted as a capture")
	}
	if Sniff([]byte("IN=eth0")) || !Sniff([]byte{0x0a, 0x0d, 0x0d, 0x0a}) {
		t.Fatal("sniffing is wrong")
	}
}

func TestUnsupportedLinkType(t *testing.T) {
	var buf bytes.Buffer
	w := pcapgo.NewWriter(&buf)
	if err := w.WriteFileHeader(65535, layers.LinkType(147)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(&buf, "usb.pcap"); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("got %v", err)
	}
}
