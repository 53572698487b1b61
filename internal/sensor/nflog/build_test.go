package nflog

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
)

// Builders of nfnetlink_log datagrams as the kernel writes them
// (__build_packet_message), for the parser tests, the fuzz seeds and the
// benchmark. Packets are serialised by gopacket, an implementation
// independent of the decoder under test.

type attr struct {
	typ uint16
	v   []byte
}

// packetMsg is one NFULNL_MSG_PACKET netlink message.
func packetMsg(group uint16, family uint8, attrs ...attr) []byte {
	body := []byte{family, 0, 0, 0}
	binary.BigEndian.PutUint16(body[2:], group)
	for _, a := range attrs {
		body = appendAttr(body, a.typ, a.v)
	}
	return nlmsg(msgPacket, 0, body)
}

// nlmsg frames a body with a netlink header (padded to 4 bytes).
func nlmsg(typ, flags uint16, body []byte) []byte {
	b := binary.NativeEndian.AppendUint32(nil, uint32(nlmsgHdrLen+len(body)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = binary.NativeEndian.AppendUint16(b, flags)
	b = binary.NativeEndian.AppendUint32(b, 0) // seq
	b = binary.NativeEndian.AppendUint32(b, 0) // portid
	b = append(b, body...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// batch is several messages in one datagram, ended by NLMSG_DONE as the
// kernel ends a batch of more than one.
func batch(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		b = append(b, m...)
	}
	if len(msgs) > 1 {
		b = append(b, nlmsg(nlmsgDone, 0, []byte{0, 0, 0, 0})...)
	}
	return b
}

func hdrAttr(hwproto uint16, hook Hook) attr {
	return attr{attrPacketHdr, []byte{byte(hwproto >> 8), byte(hwproto), byte(hook), 0}}
}

func u32Attr(typ uint16, x uint32) attr {
	return attr{typ, binary.BigEndian.AppendUint32(nil, x)}
}

func prefixAttr(s string) attr { return attr{attrPrefix, append([]byte(s), 0)} }

func payloadAttr(b []byte) attr { return attr{attrPayload, b} }

func tsAttr(t time.Time) attr {
	b := binary.BigEndian.AppendUint64(nil, uint64(t.Unix()))
	return attr{attrTimestamp, binary.BigEndian.AppendUint64(b, uint64(t.Nanosecond()/1000))}
}

// inputSYN is a logged SYN as the CSF-style ruleset's input rule sends it.
func inputSYN(t testing.TB, group uint16, seq uint32, ts time.Time) []byte {
	return packetMsg(group, familyIPv4,
		hdrAttr(0x0800, HookInput),
		u32Attr(attrMark, 0),
		tsAttr(ts),
		u32Attr(attrIfIndexIn, 2),
		attr{attrHWType, []byte{0, 1}},
		attr{attrHWLen, []byte{0, 14}},
		attr{attrHWHeader, make([]byte, 14)},
		attr{attrHWAddr, []byte{0, 6, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0}},
		prefixAttr("Firewall: *TCP_IN Blocked* "),
		u32Attr(attrSeq, seq),
		payloadAttr(synPacket(t, "203.0.113.9", "10.0.0.1", 40000, 22)),
	)
}

func serialize(t testing.TB, ls ...gopacket.SerializableLayer) []byte {
	t.Helper()
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}, ls...); err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

// synPacket is an nmap-like IPv4 SYN (MSS option only).
func synPacket(t testing.TB, src, dst string, sport, dport uint16) []byte {
	ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 47, Id: 4242, Protocol: layers.IPProtocolTCP,
		SrcIP: net.ParseIP(src).To4(), DstIP: net.ParseIP(dst).To4()}
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), Seq: 123456, SYN: true, Window: 1024,
		Options: []layers.TCPOption{{OptionType: layers.TCPOptionKindMSS, OptionLength: 4, OptionData: []byte{0x05, 0xb4}}}}
	tcp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, tcp)
}

// udpPacket6 is an IPv6 UDP datagram with a 5-byte payload.
func udpPacket6(t testing.TB, src, dst string, sport, dport uint16) []byte {
	ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP,
		SrcIP: net.ParseIP(src), DstIP: net.ParseIP(dst)}
	udp := &layers.UDP{SrcPort: layers.UDPPort(sport), DstPort: layers.UDPPort(dport)}
	udp.SetNetworkLayerForChecksum(ip)
	return serialize(t, ip, udp, gopacket.Payload("probe"))
}
