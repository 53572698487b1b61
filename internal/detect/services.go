package detect

import (
	"strconv"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Service names for the ports reasons mention most, from the IANA registry
// (and de-facto names where IANA has none, such as BitTorrent's 6881-6889).
// A short table, not /etc/services: the reason a user reads must not depend
// on what the machine happens to have installed.
var tcpServices = map[uint16]string{
	20: "ftp-data", 21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "domain",
	80: "http", 88: "kerberos", 110: "pop3", 111: "sunrpc", 113: "ident", 135: "msrpc",
	139: "netbios-ssn", 143: "imap", 179: "bgp", 389: "ldap", 443: "https",
	445: "microsoft-ds", 465: "submissions", 514: "shell", 548: "afp", 587: "submission",
	631: "ipp", 636: "ldaps", 873: "rsync", 993: "imaps", 995: "pop3s", 1080: "socks",
	1433: "ms-sql-s", 1521: "oracle", 1723: "pptp", 2049: "nfs", 2375: "docker",
	2376: "docker-tls", 3128: "squid", 3306: "mysql", 3389: "ms-wbt-server", 5060: "sip",
	5061: "sips", 5432: "postgresql", 5900: "vnc", 5985: "winrm", 6379: "redis",
	6443: "kubernetes", 6881: "bittorrent", 6882: "bittorrent", 6883: "bittorrent",
	6884: "bittorrent", 6885: "bittorrent", 6886: "bittorrent", 6887: "bittorrent",
	6888: "bittorrent", 6889: "bittorrent", 8080: "http-alt", 8443: "https-alt",
	9100: "jetdirect", 9200: "elasticsearch", 10250: "kubelet", 11211: "memcache",
	27017: "mongodb",
}

var udpServices = map[uint16]string{
	53: "domain", 67: "bootps", 68: "bootpc", 69: "tftp", 123: "ntp", 137: "netbios-ns",
	138: "netbios-dgm", 161: "snmp", 162: "snmptrap", 443: "quic", 500: "isakmp",
	514: "syslog", 520: "rip", 1194: "openvpn", 1900: "ssdp", 3478: "stun",
	4500: "ipsec-nat-t", 5060: "sip", 5353: "mdns", 6881: "bittorrent", 11211: "memcache",
	51820: "wireguard",
}

// portName renders a port as reasons print it: "587/submission" for TCP,
// "udp 53/domain" for UDP, the bare number when the port has no name.
func portName(port uint16, proto probe.Proto) string {
	n := strconv.Itoa(int(port))
	names := tcpServices
	if proto == probe.UDP {
		names = udpServices
		n = "udp " + n
	}
	if s, ok := names[port]; ok {
		return n + "/" + s
	}
	return n
}
