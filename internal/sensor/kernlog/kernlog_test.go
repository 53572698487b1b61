package kernlog

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// testNow is the parser clock of the table tests: shortly after the lines
// were written.
var testNow = time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC)

// testBoot is the boot time for boot-relative stamps in the table tests.
var testBoot = time.Date(2026, 11, 21, 5, 51, 0, 0, time.UTC)

func testParser() *Parser {
	return &Parser{Location: time.UTC, Now: func() time.Time { return testNow }, Boot: testBoot}
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// Field parts shared by many cases.
const (
	mac4   = "MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 "
	mac6   = "MAC=52:54:00:12:34:56:52:54:00:65:43:21:86:dd "
	tcpSyn = "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=40000 DPT=587 WINDOW=64240 RES=0x00 SYN URGP=0 "
)

// synProbe is what tcpSyn reads as, inbound on eth0, at time t.
func synProbe(t time.Time) probe.Probe {
	return probe.Probe{
		Time: t, Src: ap("203.0.113.5:40000"), Dst: ap("198.51.100.7:587"), Proto: probe.TCP,
		Flags: probe.SYN, TTL: 52, IPID: 54321, Window: 64240,
		Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownWindow,
		Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped,
	}
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// with returns p changed by fn, to write cases as differences from a base.
func with(p probe.Probe, fn func(*probe.Probe)) probe.Probe {
	fn(&p)
	return p
}

var parseCases = []struct {
	name string
	line string
	want probe.Probe
}{
	// Stamps: every format in front of the same fields.
	{"syslog with kernel stamp (the syslog clock wins)",
		"Nov 21 05:51:48 web1 kernel: [ 1234.567890] IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"CSF on syslog",
		"Nov 21 05:51:48 web1 kernel: [12345.678901] Firewall: *TCP_IN Blocked* IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"syslog single-digit day",
		"Nov  1 05:51:48 web1 kernel: DROP: IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-01T05:51:48Z"))},
	{"rsyslog RFC 3339 high precision",
		"2026-11-21T05:51:48.123456+01:00 web1 kernel: [UFW BLOCK] IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T04:51:48.123456Z"))},
	{"RFC 3339 Z",
		"2026-11-21T05:51:48Z web1 kernel: IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"RFC 3339 without zone is in Location",
		"2026-11-21 05:51:48 web1 kernel: IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"RFC 5424 with priority",
		"<4>1 2026-11-21T05:51:48.5-05:00 web1 kernel - - - IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T10:51:48.5Z"))},
	{"journalctl short",
		"Nov 21 05:51:48 web1 kernel: Firewall: *TCP_IN Blocked* IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"journalctl short-iso",
		"2026-11-21T05:51:48+0000 web1 kernel: IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"journalctl short-iso-precise",
		"2026-11-21T05:51:48.407065+0200 web1 kernel: IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T03:51:48.407065Z"))},
	{"journalctl short-precise",
		"Nov 21 05:51:48.123456 web1 kernel: IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48.123456Z"))},
	{"journalctl short-full",
		"Sat 2026-11-21 05:51:48 UTC web1 kernel: IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"journalctl short-full numeric zone",
		"Sat 2026-11-21 05:51:48 +03 web1 kernel: IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T02:51:48Z"))},
	{"journalctl short-monotonic",
		"[  774.841128] web1 kernel: IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(testBoot.Add(774841128 * time.Microsecond))},
	{"journalctl short-unix",
		"1795241094.407065 web1 kernel: IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(time.Unix(1795241094, 407065000))},
	{"dmesg",
		"[  774.841128] Firewall: *TCP_IN Blocked* IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(testBoot.Add(774841128 * time.Microsecond))},
	{"dmesg -T",
		"[Sat Nov 21 06:03:58 2026] IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T06:03:58Z"))},
	{"dmesg -T padded day",
		"[Sun Nov  1 06:03:58 2026] IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-01T06:03:58Z"))},
	{"dmesg -r",
		"<4>[  774.841128] IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(testBoot.Add(774841128 * time.Microsecond))},
	{"dmesg --time-format iso",
		"2026-11-21T06:03:58,841128+00:00 IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T06:03:58.841128Z"))},
	{"kmsg",
		"4,372,774841128,-;Firewall: *TCP_IN Blocked* IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(testBoot.Add(774841128 * time.Microsecond))},
	{"kmsg with caller",
		"4,372,774841128,-,caller=T1234;IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(testBoot.Add(774841128 * time.Microsecond))},

	// Prefixes.
	{"prefix glued to IN=",
		"Nov 21 05:51:48 web1 kernel: BLOCKEDIN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"prefix containing IN=",
		"Nov 21 05:51:48 web1 kernel: [LOGIN=] IN=eth0 OUT= " + mac4 + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"CRLF and trailing spaces",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= " + mac4 + tcpSyn + "  \r\n",
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"no MAC (loopback-like, OUTPUT chain has none)",
		"Nov 21 05:51:48 web1 kernel: IN=lo OUT= " + tcpSyn,
		with(synProbe(utc("2026-11-21T05:51:48Z")), func(p *probe.Probe) { p.Iface = "lo" })},
	{"empty MAC",
		"Nov 21 05:51:48 web1 kernel: IN=tun0 OUT= MAC= " + tcpSyn,
		with(synProbe(utc("2026-11-21T05:51:48Z")), func(p *probe.Probe) { p.Iface = "tun0" })},
	{"MAC decode and VLAN (nftables flags ether)",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= MACSRC=66:c1:f8:33:79:7f MACDST=42:38:83:dc:71:59 VPROTO=8100 VID=42 MACPROTO=0800 " + tcpSyn,
		synProbe(utc("2026-11-21T05:51:48Z"))},
	{"bridge with PHYSIN",
		"Nov 21 05:51:48 web1 kernel: IN=br0 OUT= PHYSIN=eth0 " + mac4 + tcpSyn,
		with(synProbe(utc("2026-11-21T05:51:48Z")), func(p *probe.Probe) { p.Iface = "br0" })},

	// Directions.
	{"outbound",
		"Nov 21 05:51:48 web1 kernel: OUT: IN= OUT=eth0 SRC=198.51.100.7 DST=203.0.113.5 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=25676 DF PROTO=TCP SPT=45740 DPT=7777 WINDOW=64240 RES=0x00 SYN URGP=0 UID=1000 GID=1000 MARK=0x2a",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("198.51.100.7:45740"), Dst: ap("203.0.113.5:7777"),
			Proto: probe.TCP, Flags: probe.SYN, TTL: 64, IPID: 25676, Window: 64240,
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownWindow,
			Direction: probe.DirOutbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"forwarded",
		"Nov 21 05:51:48 gw kernel: FWD: IN=eth1 OUT=eth0 " + mac4 + tcpSyn,
		with(synProbe(utc("2026-11-21T05:51:48Z")), func(p *probe.Probe) { p.Direction, p.Iface = probe.DirForwarded, "eth1" })},

	// TCP details.
	{"TCP sequence and options (flags all)",
		"Nov 21 05:51:48 web1 kernel: ALL: IN=eth0 OUT= " + mac4 + "SRC=10.201.0.1 DST=10.201.0.2 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=30682 DF PROTO=TCP SPT=59150 DPT=4446 SEQ=1352827939 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 OPT (020405B40402080AB663A998000000000103030A)",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("10.201.0.1:59150"), Dst: ap("10.201.0.2:4446"),
			Proto: probe.TCP, Flags: probe.SYN, TTL: 64, IPID: 30682, Seq: 1352827939, Window: 64240,
			Opts:      probe.TCPOpts{MSS: 1460, WScale: 10, Bits: probe.OptMSS | probe.OptSACKPerm | probe.OptTimestamp | probe.OptNOP | probe.OptWScale, Len: 20, Count: 5, First: 2},
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownWindow | probe.KnownSeq | probe.KnownOptions | probe.KnownPayload,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"TCP with payload and options",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=203.0.113.5 DST=198.51.100.7 LEN=100 TOS=0x00 PREC=0x00 TTL=52 ID=1 DF PROTO=TCP SPT=40000 DPT=80 SEQ=1 ACK=2 WINDOW=502 RES=0x00 ACK PSH URGP=0 OPT (0101080A0000000100000002)",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("203.0.113.5:40000"), Dst: ap("198.51.100.7:80"),
			Proto: probe.TCP, Flags: probe.ACK | probe.PSH, TTL: 52, IPID: 1, Seq: 1, Ack: 2, Window: 502, Payload: 48,
			Opts:      probe.TCPOpts{Bits: probe.OptNOP | probe.OptTimestamp, Len: 12, Count: 3, First: 1},
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownWindow | probe.KnownSeq | probe.KnownOptions | probe.KnownPayload,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"nmap XMAS: no options, no room for payload",
		"[  781.804302] Firewall: *TCP_IN Blocked* IN=eth0 OUT= " + mac4 + "SRC=10.201.0.1 DST=10.201.0.2 LEN=40 TOS=0x00 PREC=0x00 TTL=41 ID=63524 PROTO=TCP SPT=55478 DPT=4444 WINDOW=1024 RES=0x00 URG PSH FIN URGP=0 ",
		probe.Probe{Time: testBoot.Add(781804302 * time.Microsecond), Src: ap("10.201.0.1:55478"), Dst: ap("10.201.0.2:4444"),
			Proto: probe.TCP, Flags: probe.URG | probe.PSH | probe.FIN, TTL: 41, IPID: 63524, Window: 1024,
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownWindow | probe.KnownPayload,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"all flag words, AE and CE",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=203.0.113.5 DST=198.51.100.7 LEN=40 TOS=0x00 PREC=0x00 TTL=52 ID=7 CE DF PROTO=TCP SPT=1 DPT=2 WINDOW=0 RES=0x00 AE CWR ECE URG ACK PSH RST SYN FIN URGP=0",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("203.0.113.5:1"), Dst: ap("198.51.100.7:2"),
			Proto: probe.TCP, Flags: 0xff, TTL: 52, IPID: 7,
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownWindow | probe.KnownPayload,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"TCP options truncated",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF PROTO=TCP SPT=40000 DPT=587 WINDOW=64240 RES=0x00 SYN URGP=0 OPT (TRUNCATED)",
		with(synProbe(utc("2026-11-21T05:51:48Z")), func(p *probe.Probe) { p.Iface = "eth0" })},
	{"TCP header incomplete",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=203.0.113.5 DST=198.51.100.7 LEN=30 TOS=0x00 PREC=0x00 TTL=52 ID=9 PROTO=TCP INCOMPLETE [10 bytes] ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("203.0.113.5:0"), Dst: ap("198.51.100.7:0"),
			Proto: probe.TCP, TTL: 52, IPID: 9, Known: probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"IPv4 options (--log-ip-options)",
		"Nov 21 05:51:48 web1 kernel: IPOPT: IN=eth0 OUT= MACSRC=66:c1:f8:33:79:7f MACDST=42:38:83:dc:71:59 MACPROTO=0800 SRC=10.201.0.1 DST=10.201.0.2 LEN=43 TOS=0x00 PREC=0x00 TTL=64 ID=49260 DF OPT (070B0C0AC900010AC9000200) PROTO=UDP SPT=39654 DPT=6000 LEN=11 ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("10.201.0.1:39654"), Dst: ap("10.201.0.2:6000"),
			Proto: probe.UDP, TTL: 64, IPID: 49260, Payload: 3,
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownPayload,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},

	// UDP.
	{"UFW UDP",
		"Nov 21 05:51:48 web1 kernel: [UFW BLOCK] IN=eth0 OUT= " + mac4 + "SRC=192.0.2.44 DST=198.51.100.7 LEN=40 TOS=0x00 PREC=0x00 TTL=245 ID=54321 PROTO=UDP SPT=5353 DPT=5353 LEN=20 ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("192.0.2.44:5353"), Dst: ap("198.51.100.7:5353"),
			Proto: probe.UDP, TTL: 245, IPID: 54321, Payload: 12,
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownPayload,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"UDPLITE: LEN is checksum coverage, payload from the IP length",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=192.0.2.44 DST=198.51.100.7 LEN=40 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=UDPLITE SPT=1000 DPT=2000 LEN=8 ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("192.0.2.44:1000"), Dst: ap("198.51.100.7:2000"),
			Proto: 136, TTL: 64, IPID: 1, Payload: 12,
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownPayload,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},

	// Fragments.
	{"IPv4 first fragment: payload of this packet, as probe.Decode counts it",
		"[  801.365992] FRAG: IN=eth0 OUT= " + mac4 + "SRC=10.201.0.1 DST=10.201.0.2 LEN=1500 TOS=0x00 PREC=0x00 TTL=64 ID=49233 MF PROTO=UDP SPT=40728 DPT=5353 LEN=3008 ",
		probe.Probe{Time: testBoot.Add(801365992 * time.Microsecond), Src: ap("10.201.0.1:40728"), Dst: ap("10.201.0.2:5353"),
			Proto: probe.UDP, TTL: 64, IPID: 49233, Payload: 1472, Frag: probe.FragFirst,
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownPayload,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"IPv4 later fragment",
		"[  801.366017] FRAG: IN=eth0 OUT= " + mac4 + "SRC=10.201.0.1 DST=10.201.0.2 LEN=1500 TOS=0x00 PREC=0x00 TTL=64 ID=49233 MF FRAG:185 PROTO=UDP ",
		probe.Probe{Time: testBoot.Add(801366017 * time.Microsecond), Src: ap("10.201.0.1:0"), Dst: ap("10.201.0.2:0"),
			Proto: probe.UDP, TTL: 64, IPID: 49233, Frag: probe.FragLater,
			Known:     probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"IPv6 first fragment",
		"[  801.366284] FRAG6: IN=eth0 OUT= " + mac6 + "SRC=fd00:0201:0000:0000:0000:0000:0000:0001 DST=fd00:0201:0000:0000:0000:0000:0000:0002 LEN=1496 TC=0 HOPLIMIT=64 FLOWLBL=145954 FRAG:0 INCOMPLETE ID:b93f3539 PROTO=UDP SPT=37665 DPT=5353 LEN=3008 ",
		probe.Probe{Time: testBoot.Add(801366284 * time.Microsecond), Src: ap("[fd00:201::1]:37665"), Dst: ap("[fd00:201::2]:5353"),
			Proto: probe.UDP, TTL: 64, IPID: 0x3539, Payload: 1440, Frag: probe.FragFirst,
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownIPID | probe.KnownPayload,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"IPv6 later fragment with ip options logged",
		"[  810.328801] V6: IN=eth0 OUT= MACSRC=66:c1:f8:33:79:7f MACDST=42:38:83:dc:71:59 MACPROTO=86dd SRC=fd00:0201:0000:0000:0000:0000:0000:0001 DST=fd00:0201:0000:0000:0000:0000:0000:0002 LEN=608 TC=0 HOPLIMIT=64 FLOWLBL=663400 OPT ( FRAG:1448 ID:d21cecf3 ) PROTO=UDP ",
		probe.Probe{Time: testBoot.Add(810328801 * time.Microsecond), Src: ap("[fd00:201::1]:0"), Dst: ap("[fd00:201::2]:0"),
			Proto: probe.UDP, TTL: 64, IPID: 0xecf3, Frag: probe.FragLater,
			Known:     probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},

	// IPv6.
	{"ip6tables compressed addresses",
		"Nov 21 05:51:48 web1 kernel: [UFW BLOCK] IN=eth0 OUT= " + mac6 + "SRC=2001:db8::1 DST=2001:db8::2 LEN=80 TC=0 HOPLIMIT=57 FLOWLBL=12345 PROTO=TCP SPT=51000 DPT=22 WINDOW=64800 RES=0x00 SYN URGP=0 ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("[2001:db8::1]:51000"), Dst: ap("[2001:db8::2]:22"),
			Proto: probe.TCP, Flags: probe.SYN, TTL: 57, Window: 64800,
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownWindow,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"nftables IPv6 as the kernel prints it (%pI6)",
		"[  775.927235] Firewall: *TCP6IN Blocked* IN=eth0 OUT= " + mac6 + "SRC=fd00:0201:0000:0000:0000:0000:0000:0001 DST=fd00:0201:0000:0000:0000:0000:0000:0002 LEN=64 TC=0 HOPLIMIT=255 FLOWLBL=0 PROTO=TCP SPT=37286 DPT=4446 SEQ=497750516 ACK=0 WINDOW=1024 RES=0x00 SYN URGP=0 OPT (020405B4) ",
		probe.Probe{Time: testBoot.Add(775927235 * time.Microsecond), Src: ap("[fd00:201::1]:37286"), Dst: ap("[fd00:201::2]:4446"),
			Proto: probe.TCP, Flags: probe.SYN, TTL: 255, Seq: 497750516, Window: 1024,
			Opts:      probe.TCPOpts{MSS: 1460, Bits: probe.OptMSS, Len: 4, Count: 1, First: 2},
			Known:     probe.KnownPorts | probe.KnownTTL | probe.KnownWindow | probe.KnownSeq | probe.KnownOptions | probe.KnownPayload,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"IPv4-mapped addresses are unmapped",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=0000:0000:0000:0000:0000:ffff:cb00:7105 DST=::ffff:198.51.100.7 LEN=60 TC=0 HOPLIMIT=52 FLOWLBL=0 PROTO=TCP SPT=40000 DPT=587 WINDOW=64240 RES=0x00 SYN URGP=0 ",
		with(synProbe(utc("2026-11-21T05:51:48Z")), func(p *probe.Probe) {
			p.IPID = 0
			p.Known &^= probe.KnownIPID
			p.Known |= probe.KnownPayload // IPv6 LEN=60 leaves no room for data
		})},

	// ICMP.
	{"ICMP echo: its ID and SEQ are not the IP ID or TCP sequence",
		"Nov 21 05:51:48 web1 kernel: PING: IN=eth0 OUT= " + mac4 + "SRC=203.0.113.77 DST=198.51.100.7 LEN=84 TOS=0x00 PREC=0x00 TTL=56 ID=20702 DF PROTO=ICMP TYPE=8 CODE=0 ID=4660 SEQ=1 ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("203.0.113.77:0"), Dst: ap("198.51.100.7:0"),
			Proto: probe.ICMP, TTL: 56, IPID: 20702, ICMPType: 8,
			Known:     probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"ICMP port unreachable quoting UDP",
		"Nov 21 05:51:48 web1 kernel: ICMP-IN: IN=eth0 OUT= " + mac4 + "SRC=10.201.0.1 DST=10.201.0.2 LEN=59 TOS=0x00 PREC=0xC0 TTL=64 ID=20626 PROTO=ICMP TYPE=3 CODE=3 [SRC=10.201.0.2 DST=10.201.0.1 LEN=31 TOS=0x00 PREC=0x00 TTL=64 ID=64578 DF PROTO=UDP SPT=33162 DPT=5555 LEN=11 ] ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("10.201.0.1:0"), Dst: ap("10.201.0.2:0"),
			Proto: probe.ICMP, TTL: 64, IPID: 20626, ICMPType: 3, ICMPCode: 3,
			Inner:     probe.Inner{Valid: true, Proto: probe.UDP, Src: ap("10.201.0.2:33162"), Dst: ap("10.201.0.1:5555")},
			Known:     probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"ICMP admin prohibited quoting TCP with sequence; quoted flags are not ours",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= " + mac4 + "SRC=10.201.0.1 DST=10.201.0.2 LEN=88 TOS=0x00 PREC=0xC0 TTL=64 ID=20771 PROTO=ICMP TYPE=3 CODE=13 [SRC=10.201.0.2 DST=10.201.0.1 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=40619 DF PROTO=TCP SPT=51592 DPT=8888 SEQ=99 ACK=0 WINDOW=64240 RES=0x00 SYN URGP=0 ] MARK=0x1 ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("10.201.0.1:0"), Dst: ap("10.201.0.2:0"),
			Proto: probe.ICMP, TTL: 64, IPID: 20771, ICMPType: 3, ICMPCode: 13,
			Inner:     probe.Inner{Valid: true, Proto: probe.TCP, Src: ap("10.201.0.2:51592"), Dst: ap("10.201.0.1:8888"), Seq: 99},
			Known:     probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"ICMP frag needed with MTU after the quote",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=192.0.2.1 DST=198.51.100.7 LEN=576 TOS=0x00 PREC=0x00 TTL=250 ID=1 PROTO=ICMP TYPE=3 CODE=4 [SRC=198.51.100.7 DST=203.0.113.5 LEN=1500 TOS=0x00 PREC=0x00 TTL=63 ID=2 DF PROTO=TCP SPT=443 DPT=50000 WINDOW=501 RES=0x00 ACK URGP=0 ] MTU=1400 ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("192.0.2.1:0"), Dst: ap("198.51.100.7:0"),
			Proto: probe.ICMP, TTL: 250, IPID: 1, ICMPType: 3, ICMPCode: 4,
			Inner:     probe.Inner{Valid: true, Proto: probe.TCP, Src: ap("198.51.100.7:443"), Dst: ap("203.0.113.5:50000")},
			Known:     probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"ICMP redirect with gateway",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=192.0.2.1 DST=198.51.100.7 LEN=56 TOS=0x00 PREC=0xC0 TTL=64 ID=3 PROTO=ICMP TYPE=5 CODE=1 GATEWAY=192.0.2.254 [SRC=198.51.100.7 DST=203.0.113.5 LEN=28 TOS=0x00 PREC=0x00 TTL=63 ID=4 PROTO=UDP SPT=53 DPT=53 LEN=8 ] ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("192.0.2.1:0"), Dst: ap("198.51.100.7:0"),
			Proto: probe.ICMP, TTL: 64, IPID: 3, ICMPType: 5, ICMPCode: 1,
			Inner:     probe.Inner{Valid: true, Proto: probe.UDP, Src: ap("198.51.100.7:53"), Dst: ap("203.0.113.5:53")},
			Known:     probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"ICMP quote cut after 8 bytes of TCP gives no usable inner",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=192.0.2.1 DST=198.51.100.7 LEN=56 TOS=0x00 PREC=0x00 TTL=250 ID=5 PROTO=ICMP TYPE=11 CODE=0 [SRC=198.51.100.7 DST=203.0.113.5 LEN=60 TOS=0x00 PREC=0x00 TTL=1 ID=6 DF PROTO=TCP INCOMPLETE [8 bytes] ] ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("192.0.2.1:0"), Dst: ap("198.51.100.7:0"),
			Proto: probe.ICMP, TTL: 250, IPID: 5, ICMPType: 11,
			Known:     probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"ICMP with a truncated quote",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=192.0.2.1 DST=198.51.100.7 LEN=32 TOS=0x00 PREC=0x00 TTL=250 ID=5 PROTO=ICMP TYPE=3 CODE=1 [TRUNCATED] ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("192.0.2.1:0"), Dst: ap("198.51.100.7:0"),
			Proto: probe.ICMP, TTL: 250, IPID: 5, ICMPType: 3, ICMPCode: 1,
			Known:     probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"ICMPv6 echo",
		"[  801.239995] PING6: IN=eth0 OUT= " + mac6 + "SRC=fd00:0201:0000:0000:0000:0000:0000:0001 DST=fd00:0201:0000:0000:0000:0000:0000:0002 LEN=104 TC=0 HOPLIMIT=64 FLOWLBL=704427 PROTO=ICMPv6 TYPE=128 CODE=0 ID=17185 SEQ=7 ",
		probe.Probe{Time: testBoot.Add(801239995 * time.Microsecond), Src: ap("[fd00:201::1]:0"), Dst: ap("[fd00:201::2]:0"),
			Proto: probe.ICMPv6, TTL: 64, ICMPType: 128,
			Known:     probe.KnownTTL,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"ICMPv6 unreachable quoting TCP",
		"[  801.606154] ICMP6-IN: IN=eth0 OUT= " + mac6 + "SRC=fd00:0201:0000:0000:0000:0000:0000:0001 DST=fd00:0201:0000:0000:0000:0000:0000:0002 LEN=128 TC=0 HOPLIMIT=64 FLOWLBL=851166 PROTO=ICMPv6 TYPE=1 CODE=1 [SRC=fd00:0201:0000:0000:0000:0000:0000:0002 DST=fd00:0201:0000:0000:0000:0000:0000:0001 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=705445 PROTO=TCP SPT=41616 DPT=8888 WINDOW=64800 RES=0x00 SYN URGP=0 ] ",
		probe.Probe{Time: testBoot.Add(801606154 * time.Microsecond), Src: ap("[fd00:201::1]:0"), Dst: ap("[fd00:201::2]:0"),
			Proto: probe.ICMPv6, TTL: 64, ICMPType: 1, ICMPCode: 1,
			Inner:     probe.Inner{Valid: true, Proto: probe.TCP, Src: ap("[fd00:201::2]:41616"), Dst: ap("[fd00:201::1]:8888")},
			Known:     probe.KnownTTL,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"ICMPv6 parameter problem with pointer",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=2001:db8::1 DST=2001:db8::2 LEN=96 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=ICMPv6 TYPE=4 CODE=0 POINTER=00000028 [SRC=2001:db8::2 DST=2001:db8::3 LEN=48 TC=0 HOPLIMIT=64 FLOWLBL=0 PROTO=UDP SPT=1 DPT=2 LEN=8 ] ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("[2001:db8::1]:0"), Dst: ap("[2001:db8::2]:0"),
			Proto: probe.ICMPv6, TTL: 64, ICMPType: 4,
			Inner:     probe.Inner{Valid: true, Proto: probe.UDP, Src: ap("[2001:db8::2]:1"), Dst: ap("[2001:db8::3]:2")},
			Known:     probe.KnownTTL,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},

	// Other protocols.
	{"unknown protocol number",
		"Nov 21 05:51:48 web1 kernel: GRE: IN=eth0 OUT= " + mac4 + "SRC=10.201.0.1 DST=10.201.0.2 LEN=20 TOS=0x00 PREC=0x00 TTL=64 ID=26852 PROTO=47 ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("10.201.0.1:0"), Dst: ap("10.201.0.2:0"),
			Proto: 47, TTL: 64, IPID: 26852, Known: probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"ESP",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=10.201.0.1 DST=10.201.0.2 LEN=120 TOS=0x00 PREC=0x00 TTL=64 ID=1 PROTO=ESP SPI=0x1234abcd ",
		probe.Probe{Time: utc("2026-11-21T05:51:48Z"), Src: ap("10.201.0.1:0"), Dst: ap("10.201.0.2:0"),
			Proto: 50, TTL: 64, IPID: 1, Known: probe.KnownTTL | probe.KnownIPID,
			Direction: probe.DirInbound, Iface: "eth0", Sensor: probe.SensorKernLog, Outcome: probe.OutcomeDropped}},
	{"a future word is ignored",
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= " + mac4 + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=54321 DF NEWFLAG PROTO=TCP SPT=40000 DPT=587 WINDOW=64240 RES=0x00 SYN XYZ URGP=0 NEWFIELD=7",
		synProbe(utc("2026-11-21T05:51:48Z"))},
}

func TestParse(t *testing.T) {
	for _, tc := range parseCases {
		t.Run(tc.name, func(t *testing.T) {
			var p probe.Probe
			p.Iface = "stale" // Parse must overwrite what the caller reuses
			ok, err := testParser().Parse([]byte(tc.line), &p)
			if err != nil || !ok {
				t.Fatalf("Parse = (%v, %v), want (true, nil)", ok, err)
			}
			checkProbe(t, p, tc.want)
		})
	}
}

func checkProbe(t *testing.T, got, want probe.Probe) {
	t.Helper()
	if !got.Time.Equal(want.Time) {
		t.Errorf("Time = %v, want %v", got.Time.UTC(), want.Time.UTC())
	}
	got.Time, want.Time = time.Time{}, time.Time{}
	if got != want {
		t.Errorf("probe mismatch\n got %+v\nwant %+v", got, want)
	}
}

func TestParseIgnores(t *testing.T) {
	for _, line := range []string{
		"",
		"Nov 21 05:51:48 web1 sshd[812]: Accepted publickey for root from 203.0.113.5 port 52022 ssh2",
		"Nov 21 05:51:48 web1 kernel: [ 1234.5] eth0: link up, 1000Mbps, full-duplex",
		"-- Boot 5d1c9d7f2a0a4f6e8d0e2c3f4b5a6978 --",
		"-- No entries --",
		"Nov 21 05:51:48 web1 login[99]: LOGIN=root TTY=tty1",
		// ARP is logged by the same code but is not an IP probe.
		"Nov 21 05:51:48 web1 kernel: ARP: IN=eth0 OUT= MACSRC=66:c1:f8:33:79:7f MACDST=ff:ff:ff:ff:ff:ff MACPROTO=0806 ARP HTYPE=1 PTYPE=0x0800 OPCODE=1 MACSRC=66:c1:f8:33:79:7f IPSRC=10.0.0.1 MACDST=00:00:00:00:00:00 IPDST=10.0.0.2",
		// The kernel could not read the IP header.
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 TRUNCATED",
		// An IPv6 line ended at an unknown extension header has no PROTO=.
		"Nov 21 05:51:48 web1 kernel: IN=eth0 OUT= SRC=2001:db8::1 DST=2001:db8::2 LEN=80 TC=0 HOPLIMIT=64 FLOWLBL=0 Unknown Ext Hdr 253",
		"\x00\x01\x02\xff\xfe IN=\x1b[31m",
		"IN=IN=IN=IN=IN=IN=IN= OUT",
	} {
		var p probe.Probe
		ok, err := testParser().Parse([]byte(line), &p)
		if ok || err != nil {
			t.Errorf("Parse(%q) = (%v, %v), want (false, nil)", line, ok, err)
		}
	}
}

func TestParseErrors(t *testing.T) {
	const st = "Nov 21 05:51:48 web1 kernel: "
	const head = st + "IN=eth0 OUT= "
	for _, tc := range []struct{ line, want string }{
		{"IN=eth0 OUT= " + tcpSyn, "no timestamp"},
		{"DROP: IN=eth0 OUT= " + tcpSyn, "no timestamp"},
		{"hello IN=eth0 OUT= " + tcpSyn, "no timestamp"},
		{"Nov 31 05:51:48 web1 kernel: IN=eth0 OUT= " + tcpSyn, "no timestamp"},
		{"2026-02-30T05:51:48Z web1 kernel: IN=eth0 OUT= " + tcpSyn, "no timestamp"},
		{"Nov 21 25:51:48 web1 kernel: IN=eth0 OUT= " + tcpSyn, "no timestamp"},
		{"[ 12x.5] IN=eth0 OUT= " + tcpSyn, "no timestamp"},
		{st + "IN=eth0 SRC=1.2.3.4 DST=5.6.7.8 LEN=40 PROTO=TCP SPT=1 DPT=2", "IN= without OUT="},
		{head + "SRC=203.0.113.500 DST=198.51.100.7 LEN=60 TTL=5 PROTO=TCP SPT=1 DPT=2", "bad address SRC="},
		{head + "SRC=example.com DST=198.51.100.7 LEN=60 TTL=5 PROTO=TCP SPT=1 DPT=2", "bad address SRC="},
		{head + "SRC=fe80::1%eth0 DST=fe80::2 LEN=60 HOPLIMIT=5 PROTO=TCP SPT=1 DPT=2", "bad address SRC="},
		{head + "SRC=203.0.113.5 DST=01.2.3.4 LEN=60 TTL=5 PROTO=TCP SPT=1 DPT=2", "bad address DST="},
		{head + "SRC=203.0.113.5 DST= LEN=60 TTL=5 PROTO=TCP SPT=1 DPT=2", "bad address DST="},
		{head + "SRC=203.0.113.5 DST=2001:db8::1 LEN=60 TTL=5 PROTO=TCP SPT=1 DPT=2", "different address families"},
		{head + "SRC=::ffff:203.0.113.5 DST=2001:db8::1 LEN=60 HOPLIMIT=5 PROTO=TCP SPT=1 DPT=2", "IPv4-mapped"},
		// Forged lines that try to make us use another address.
		{head + "SRC=203.0.113.5 DST=198.51.100.7 SRC=192.0.2.66 LEN=60 TTL=5 PROTO=TCP SPT=1 DPT=2", "repeated SRC="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=5 DST=192.0.2.66 PROTO=TCP SPT=1 DPT=2", "repeated DST="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=5 PROTO=TCP SPT=1 DPT=2 WINDOW=1 SRC=192.0.2.66", "SRC= after PROTO="},
		{head + "SRC=203.0.113.5 LEN=60 DST=198.51.100.7 TTL=5 PROTO=TCP SPT=1 DPT=2", "DST= must follow SRC="},
		{head + "IN=eth1 SRC=203.0.113.5 DST=198.51.100.7 LEN=60 PROTO=TCP SPT=1 DPT=2", "repeated IN="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 OUT=eth1 PROTO=TCP SPT=1 DPT=2", "repeated OUT="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 PROTO=TCP PROTO=UDP SPT=1 DPT=2", "PROTO= after PROTO="},
		// Bad numbers.
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=TCP SPT=70000 DPT=2", "bad SPT="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=TCP SPT=-1 DPT=2", "bad SPT="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=TCP SPT=1 DPT=", "bad DPT="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=TCP SPT=1 DPT=0x50", "bad DPT="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=999 PROTO=TCP SPT=1 DPT=2", "bad TTL="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=99999999999 TTL=9 PROTO=TCP SPT=1 DPT=2", "bad LEN="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=9 ID=65536 PROTO=TCP SPT=1 DPT=2", "bad ID="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=9 PROTO=TCP SPT=1 DPT=2 SEQ=4294967296", "bad SEQ="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=9 PROTO=ICMP TYPE=256 CODE=0", "bad TYPE="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=9 FRAG:9000 PROTO=UDP", "bad fragment offset"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=9 PROTO=TCP SPT=1 DPT=2 OPT (02040)", "bad TCP options"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=9 PROTO=TCP SPT=1 DPT=2 OPT (" + strings.Repeat("01", 41) + ")", "bad TCP options"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=9 OPT (ZZ) PROTO=TCP SPT=1 DPT=2", "bad IP options"},
		// Missing or misplaced fields.
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=TCP DPT=2 WINDOW=5", "missing SPT= or DPT="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=UDP SPT=2", "missing SPT= or DPT="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=ICMP TYPE=8", "missing TYPE= or CODE="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 FRAG:10 PROTO=TCP SPT=1 DPT=2", "ports in a non-first fragment"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 XPROTO=TCP", "missing PROTO="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=FOO", "unknown protocol"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=ICMPv6 TYPE=1 CODE=0", "PROTO=\"ICMPv6\" in an IPv4 packet"},
		{head + "SRC=2001:db8::1 DST=2001:db8::2 LEN=60 TTL=52 PROTO=TCP SPT=1 DPT=2", "TTL= in an IPv6 packet"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 HOPLIMIT=52 PROTO=TCP SPT=1 DPT=2", "HOPLIMIT= in an IPv4 packet"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 TTL=53 PROTO=TCP SPT=1 DPT=2", "repeated TTL="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=TCP SPT=1 DPT=2 SPT=3", "repeated SPT="},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=TCP SPT=1 DPT=2 SYN SYN", "repeated SYN"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=UDP SPT=1 DPT=2 WINDOW=5", "WINDOW= in a udp packet"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=60 TTL=52 PROTO=TCP SPT=1 DPT=2 [SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2 ]", "quoted packet in a tcp packet"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=20 TTL=52 PROTO=TCP SPT=1 DPT=2", "shorter than the headers"},
		{head + "SRC=203.0.113.5 DST=198.51.100.7 LEN=40 TTL=52 PROTO=UDP SPT=1 DPT=2 LEN=4", "shorter than its header"},
		{st + "IN=eth0123456789abcdef OUT= " + tcpSyn, "longer than 15 bytes"},
		{st + "IN=eth\x1b0 OUT= " + tcpSyn, "control character"},
		// Quotes.
		{head + "SRC=192.0.2.1 DST=198.51.100.7 LEN=56 TTL=9 PROTO=ICMP TYPE=3 CODE=3 [SRC=1.2.3.4 DST=5.6.7.8 LEN=28 TTL=1 PROTO=ICMP TYPE=3 CODE=3 [SRC=9.9.9.9 DST=8.8.8.8 ] ]", "quote inside a quote"},
		{head + "SRC=192.0.2.1 DST=198.51.100.7 LEN=56 TTL=9 PROTO=ICMP TYPE=3 CODE=3 [SRC=2001:db8::1 DST=2001:db8::2 LEN=48 HOPLIMIT=1 PROTO=UDP SPT=1 DPT=2 LEN=8 ]", "other IP version"},
		{head + "SRC=192.0.2.1 DST=198.51.100.7 LEN=56 TTL=9 PROTO=ICMP TYPE=3 CODE=3 [DST=1.2.3.4 SRC=5.6.7.8 ]", "not SRC="},
		{head + "SRC=192.0.2.1 DST=198.51.100.7 LEN=56 TTL=9 PROTO=ICMP TYPE=3 CODE=3 [SRC=1.2.3.4 DST=5.6.7.8 SRC=6.6.6.6 PROTO=UDP SPT=1 DPT=2 ]", "in quoted packet: repeated SRC="},
		{head + "SRC=192.0.2.1 DST=198.51.100.7 LEN=56 TTL=9 PROTO=ICMP TYPE=3 CODE=3 [SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2 ] [SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2 ]", "repeated quoted packet"},
		{head + "SRC=192.0.2.1 DST=198.51.100.7 LEN=56 TTL=9 PROTO=ICMP TYPE=3 CODE=3 [SRC=1.2.3.4 DST=5.6.7.8 PROTO=UDP SPT=1 DPT=2 MARK=0x1 ]", "MARK= inside a quoted packet"},
	} {
		var p probe.Probe
		ok, err := testParser().Parse([]byte(tc.line), &p)
		if ok || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q)\n = (%v, %v), want error containing %q", tc.line, ok, err, tc.want)
		}
		if err != nil && !LooksLikeLogLine([]byte(tc.line)) {
			t.Errorf("error %v for a line LooksLikeLogLine rejects: %q", err, tc.line)
		}
	}
}

// TestParseFirstAddressWins checks that the address the kernel printed first
// is the one used even when the prefix, which the admin chose but whose
// text a hostile party might influence through other log lines, carries one.
func TestParseFirstAddressWins(t *testing.T) {
	line := "Nov 21 05:51:48 web1 kernel: SRC=192.0.2.66 DST=192.0.2.67 IN=eth0 OUT= " + tcpSyn
	var p probe.Probe
	ok, err := testParser().Parse([]byte(line), &p)
	if !ok || err != nil {
		t.Fatalf("Parse = (%v, %v)", ok, err)
	}
	if p.Src != ap("203.0.113.5:40000") || p.Dst != ap("198.51.100.7:587") {
		t.Errorf("Src, Dst = %v, %v; want the addresses after IN=", p.Src, p.Dst)
	}
}

func TestLooksLikeLogLine(t *testing.T) {
	for line, want := range map[string]bool{
		"Nov 21 05:51:48 h kernel: IN=eth0 OUT= " + tcpSyn:       true,
		"IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP":         true,
		"IN=eth0 OUT= SRC=1.2.3.4 DST=5.6.7.8":                   false,
		"IN=eth0 OUT= DST=5.6.7.8 SRC=1.2.3.4 PROTO=TCP":         false,
		"SRC=1.2.3.4 DST=5.6.7.8 PROTO=TCP IN=eth0":              false,
		"IN=eth0 OUT= ARP HTYPE=1 IPSRC=10.0.0.1 IPDST=10.0.0.2": false,
		"": false,
	} {
		if got := LooksLikeLogLine([]byte(line)); got != want {
			t.Errorf("LooksLikeLogLine(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestParseAllocs(t *testing.T) {
	ps := testParser()
	var p probe.Probe
	for _, tc := range parseCases {
		line := []byte(tc.line)
		ps.Parse(line, &p) // interns the interface name
		if n := testing.AllocsPerRun(20, func() { ps.Parse(line, &p) }); n != 0 {
			t.Errorf("%s: %v allocations per line, want 0", tc.name, n)
		}
	}
}

func TestIfaceInterning(t *testing.T) {
	ps := testParser()
	var p probe.Probe
	for i := 0; i < maxInterned+50; i++ {
		name := "veth" + strconv.Itoa(i)
		line := "Nov 21 05:51:48 h kernel: IN=" + name + " OUT= " + tcpSyn
		if ok, err := ps.Parse([]byte(line), &p); !ok || err != nil {
			t.Fatalf("Parse(%q) = (%v, %v)", line, ok, err)
		}
		if want := name; p.Iface != want {
			t.Fatalf("Iface = %q, want %q", p.Iface, want)
		}
	}
	if n := len(*ps.ifaces.m.Load()); n != maxInterned {
		t.Errorf("interned %d names, want the cap %d", n, maxInterned)
	}
}

// TestParseConcurrent shares one Parser between goroutines, as the doc
// allows; run with -race.
func TestParseConcurrent(t *testing.T) {
	ps := testParser()
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func() {
			var p probe.Probe
			ok := true
			for i := 0; i < 200; i++ {
				tc := parseCases[(i+g)%len(parseCases)]
				got, err := ps.Parse([]byte(tc.line), &p)
				ok = ok && got && err == nil && p.Iface == tc.want.Iface
			}
			done <- ok
		}()
	}
	for g := 0; g < 4; g++ {
		if !<-done {
			t.Error("a goroutine misparsed a line")
		}
	}
}
