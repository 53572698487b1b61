// Package flowreport reads the packet lines of abuse reports and flow
// exports ("x.x.x.x/52218->y.y.y.103/6881") and turns each into a Probe, so
// that the reported traffic can be judged like any other sensor's: one
// connection's SYN retransmissions, or a scan.
//
// It owns the text formats only. It must not know about detection, policy
// or blocking: a report line says what a reporter's sensor saw, never what
// it means.
//
// # Formats
//
// Lines that put an arrow ("->", "=>", "-->", "→") between two endpoints,
// with a timestamp before them (or, failing that, after them):
//
//	"2013-06-18 15:53:34" 203.0.113.9/52218->198.51.100.103/6881 6(0)     CERT.br / NIC.br notices
//	2024-09-23 08:25:34  203.0.113.9 59318 ->  198.51.100.7    22   78 TCP Hetzner netscan notices
//	Sat Dec 12 11:06:49 2020 TCP  203.0.113.9 8302  =>  198.51.100.7 10001 older Hetzner notices
//	2023-06-18T15:53:34Z TCP 203.0.113.9:52218 -> [2001:db8::2]:6881 SYN
//	Nov 21 05:51:48 fw01 203.0.113.9.52218 -> 198.51.100.7.22             argus / tcpdump-style dotted port
//
// An endpoint is ADDR/PORT (split at the last slash, so IPv6 works),
// ADDR:PORT, [IPv6]:PORT, ADDR PORT (two columns) or an IPv4 address with
// the port as a fifth dotted field. An IPv6 address with a bare ":PORT" is
// ambiguous and is read as an address without a port. Endpoints without
// ports are accepted only for ICMP. A line with ports on both endpoints but
// no timestamp is an error; one with neither a timestamp nor a port on each
// side, such as the subject line "TCP PORT SCAN x.x.x.x -> y.y.y.103/32
// (PORT:6881)", is a summary and is ignored, like the prose of the notice. Mail quoting ("> "), byte order
// marks and CRLF line ends are dropped.
//
// Timestamps: RFC 3339 / ISO 8601, "YYYY-MM-DD HH:MM[:SS[.frac]]" (also
// with "/" or a honeyd-style "-" between date and time), "DD.MM.YYYY
// HH:MM:SS", syslog "Nov 21 05:51:48" (the year inferred from Parser.Now:
// the current year, or the one before when that would put the line more than
// a day in the future, as syslog readers do), ctime "Sat Dec 12 11:06:49
// 2020", RFC 2822 "Sat, 12 Dec 2020 11:06:49 +0000", and Unix epoch seconds
// (10 digits, optional fraction). A zone may follow: Z, ±hh[:]mm, UTC, GMT
// and common abbreviations (ambiguous ones as RFC 822 or common use reads
// them: CST is US Central, BST British Summer Time, IST India); without one,
// Parser.Location applies (UTC by default, because reporters mostly write
// UTC).
//
// The protocol is a word anywhere on the line (TCP, UDP, ICMP, ICMPv6, SCTP,
// ...), "proto 6", honeyd's "tcp(6)", or CERT.br's "6(0)": the protocol
// number followed by a value in parentheses whose meaning is not documented
// anywhere we could find; it is kept in Line.Aux and not used. With no
// protocol on the line, TCP is assumed: that is what port-scan reports are
// about. TCP flags may be given as words (SYN, SYN/ACK, RST), in tcpdump
// form ("[S]", "S.", a lone "S") or after a "flags" key; without them a TCP
// line is taken to be a SYN, since reports list connection attempts.
//
// Tables with a header line naming the columns, separated by commas,
// semicolons or tabs, fields optionally quoted (Shadowserver-style CSV,
// spreadsheet exports, Zeek conn.log with its "#fields" line): the header
// must name a time column (or a date and a time column), the source and the
// destination address; port columns are optional when the addresses carry
// ports. Headerless DShield rows (tab-separated date, author, count, source,
// source port, target, target port, protocol, flags) are read too.
//
// Every Probe says Sensor = SensorReport and Outcome = OutcomeUnknown, and
// Known = KnownPorts|KnownFlags for TCP (the flags being the report's, or
// the SYN a connection attempt implies) and KnownPorts for UDP: a report
// gives nothing else a packet sensor would (no TTL, IP ID, window or
// options); for ICMP it gives no ports either and Known is 0.
//
// # Redaction
//
// Reporters often mask an address: "x.x.x.x", "xx.xx.xx.xx", "y.y.y.103",
// "192.0.2.xxx", "***", "SERVERPUBLICIP", "[redacted]". Such a line still
// says how the attempts were structured, so it is parsed: every masked
// octet becomes 0 and a wholly masked address becomes 0.0.0.0 (or :: when
// the other end is IPv6). When the first octet is masked the result lies in
// 0.0.0.0/8, "this network", which never appears as a source on the wire,
// so nothing real can be blocked because of it; a partly masked address
// like 192.0.2.xxx becomes 192.0.2.0, so callers must check Line.SrcRedacted
// and Line.DstRedacted (or Parser.Redacted) before acting on an address.
// IPv6 addresses can only be masked as a whole.
//
// # Hostile input
//
// Reports come from strangers. Lines longer than MaxLineLen, and lines with
// NUL, escape or other control bytes, are refused; error texts quote input
// only through strconv.Quote, so a report can never write terminal escapes
// to an operator's screen.
package flowreport
