package packet

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/sys/unix"

	"github.com/scanwarden/scanwarden/internal/host"
	"github.com/scanwarden/scanwarden/internal/probe"
)

// ringFrame lays pkt out as the kernel does in a SOCK_DGRAM TPACKET_V3 ring:
// tpacket3_hdr, sockaddr_ll, padding, then the packet at dgramDataOffset. It
// returns the packet bytes, as gopacket would.
func ringFrame(pkt []byte, ifindex int32, pkttype uint8, status uint32) []byte {
	buf := make([]byte, dgramDataOffset+len(pkt))
	ne := binary.NativeEndian
	ne.PutUint32(buf[12:], uint32(len(pkt))) // tp_snaplen
	ne.PutUint32(buf[16:], uint32(len(pkt))) // tp_len
	ne.PutUint32(buf[20:], status)           // tp_status
	ne.PutUint16(buf[24:], dgramDataOffset)  // tp_mac
	ne.PutUint16(buf[26:], dgramDataOffset)  // tp_net
	ll := buf[sizeofTpacket3Hdr:]
	ne.PutUint16(ll[0:], unix.AF_PACKET)
	binary.BigEndian.PutUint16(ll[2:], unix.ETH_P_IP)
	ne.PutUint32(ll[4:], uint32(ifindex))
	ll[10] = pkttype
	copy(buf[dgramDataOffset:], pkt)
	return buf[dgramDataOffset:]
}

func TestReadMeta(t *testing.T) {
	pkt := tcp4(t, "S")
	m := readMeta(ringFrame(pkt, 7, unix.PACKET_OUTGOING, unix.TP_STATUS_VLAN_VALID), 7)
	if !m.ok || m.pkttype != unix.PACKET_OUTGOING || !m.vlan {
		t.Errorf("readMeta = %+v", m)
	}
	if m := readMeta(ringFrame(pkt, 7, unix.PACKET_HOST, 0), 8); m.ok {
		t.Error("interface index mismatch accepted")
	}
	f := ringFrame(pkt, 7, unix.PACKET_HOST, 0)
	if m := readMeta(f[:len(f)-1], 7); m.ok {
		t.Error("snap length mismatch accepted")
	}
}

// localHost starts a host view of the test's own namespace: netlink and
// sock_diag dumps need no privilege.
func localHost(tb testing.TB) *host.Host {
	tb.Helper()
	h, err := host.Start(context.Background(), host.Options{
		ResolvConf: []string{},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Skipf("no host view here: %v", err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

func TestFramerDirection(t *testing.T) {
	h := localHost(t)
	lo, ok := h.LinkByIndex(loopbackIfindex)
	if !ok {
		t.Skip("no loopback device")
	}
	local := netip.MustParseAddr("127.0.0.1")
	remote := netip.MustParseAddr("203.0.113.5")
	build := func(src, dst netip.Addr) []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		tcp := tcpLayer("S", 40000, 80)
		tcp.SetNetworkLayerForChecksum(ip)
		return serialize(t, ip, tcp)
	}
	forwardedLeaving := probe.DirUnknown // skipped on a router
	if !h.Forwarding() {
		forwardedLeaving = probe.DirOutbound // a spoofed source made here
	}
	for _, c := range []struct {
		name     string
		src, dst netip.Addr
		pkttype  uint8
		ifindex  int
		want     probe.Direction
	}{
		{"arriving for us", remote, local, unix.PACKET_HOST, 2, probe.DirInbound},
		{"arriving for someone else", remote, netip.MustParseAddr("198.51.100.9"), unix.PACKET_HOST, 2, probe.DirForwarded},
		{"promiscuous", remote, netip.MustParseAddr("198.51.100.9"), unix.PACKET_OTHERHOST, 2, probe.DirForwarded},
		{"leaving from us", local, remote, unix.PACKET_OUTGOING, 2, probe.DirOutbound},
		{"leaving from someone else", remote, netip.MustParseAddr("198.51.100.9"), unix.PACKET_OUTGOING, 2, forwardedLeaving},
		{"loopback leaving copy", local, local, unix.PACKET_OUTGOING, loopbackIfindex, probe.DirUnknown},
		{"loopback arriving copy", local, local, unix.PACKET_HOST, loopbackIfindex, probe.DirInbound},
	} {
		f := &framer{host: h, all: true}
		data := ringFrame(build(c.src, c.dst), int32(c.ifindex), c.pkttype, 0)
		v := f.frame(data, gopacket.CaptureInfo{Timestamp: time.Unix(1, 0), InterfaceIndex: c.ifindex})
		switch {
		case c.want == probe.DirUnknown && v != frameIgnored:
			t.Errorf("%s: verdict %v, want ignored", c.name, v)
		case c.want != probe.DirUnknown && (v != frameProbe || f.p.Direction != c.want):
			t.Errorf("%s: verdict %v direction %v, want %v", c.name, v, f.p.Direction, c.want)
		}
		if v == frameProbe && (f.p.Sensor != probe.SensorPacket || f.p.Flags != probe.SYN || !f.p.Time.Equal(time.Unix(1, 0))) {
			t.Errorf("%s: probe %+v", c.name, f.p)
		}
		if c.ifindex == loopbackIfindex && v == frameProbe && f.p.Iface != lo.Name {
			t.Errorf("%s: iface %q", c.name, f.p.Iface)
		}
		if f.headerMismatch != 0 {
			t.Errorf("%s: header mismatch", c.name)
		}
	}
	// A VLAN-tagged copy on a listen-everywhere socket is a duplicate.
	f := &framer{host: h, all: true}
	data := ringFrame(build(remote, local), 2, unix.PACKET_HOST, unix.TP_STATUS_VLAN_VALID)
	if v := f.frame(data, gopacket.CaptureInfo{InterfaceIndex: 2}); v != frameIgnored {
		t.Errorf("VLAN copy: verdict %v", v)
	}
}

// BenchmarkFrame is the sensor's user-space cost per packet: ring header,
// decode, interface name and direction.
func BenchmarkFrame(b *testing.B) {
	h := localHost(b)
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP,
		SrcIP: netip.MustParseAddr("203.0.113.5").AsSlice(), DstIP: netip.MustParseAddr("127.0.0.1").AsSlice()}
	tcp := tcpLayer("S", 40000, 80)
	tcp.Options = []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{5, 180}}}
	tcp.SetNetworkLayerForChecksum(ip)
	buf := gopacket.NewSerializeBuffer()
	gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ip, tcp)
	data := ringFrame(buf.Bytes(), 1, unix.PACKET_HOST, 0)
	ci := gopacket.CaptureInfo{Timestamp: time.Now(), InterfaceIndex: 1}
	f := &framer{host: h, all: true}
	b.ReportAllocs()
	for b.Loop() {
		if f.frame(data, ci) != frameProbe {
			b.Fatal("not a probe")
		}
	}
}
