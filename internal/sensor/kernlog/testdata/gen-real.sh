#!/bin/bash
# gen-real.sh writes testdata/real-*.log: kernel firewall log lines for real
# packets, in every format the kernlog package reads. Run as root on a Linux
# host with nft, nc (ncat), nmap, hping3 and python3; it touches nothing but
# two network namespaces of its own (swklog-a, swklog-b), which it deletes,
# and net.netfilter.nf_log_all_netns, which it restores. No packet leaves
# the namespaces. journalctl output needs systemd-journald; when no journald
# runs, one is started in a private mount namespace over tmpfs, where it
# imports the kernel ring buffer and is stopped again.
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
A="ip netns exec swklog-a"
B="ip netns exec swklog-b"
old_all=$(sysctl -n net.netfilter.nf_log_all_netns)
cleanup() {
	ip netns del swklog-a 2>/dev/null || true
	ip netns del swklog-b 2>/dev/null || true
	sysctl -qw net.netfilter.nf_log_all_netns="$old_all"
	rm -rf "$tmp"
}
trap cleanup EXIT

sysctl -qw net.netfilter.nf_log_all_netns=1
ip netns add swklog-a
ip netns add swklog-b
ip link add swk-a0 netns swklog-a type veth peer name swk-b0 netns swklog-b
for ns in a b; do ip -n swklog-$ns link set lo up; done
ip -n swklog-a addr add 10.201.0.1/24 dev swk-a0
ip -n swklog-b addr add 10.201.0.2/24 dev swk-b0
ip -n swklog-a addr add fd00:201::1/64 dev swk-a0 nodad
ip -n swklog-b addr add fd00:201::2/64 dev swk-b0 nodad
ip -n swklog-a link set swk-a0 up
ip -n swklog-b link set swk-b0 up

$A nft -f - <<'NFT'
table inet swklog {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 8888 reject with icmpx type admin-prohibited
  }
}
NFT
$B nft -f - <<'NFT'
table inet swklog {
  chain pre {
    type filter hook prerouting priority -450; policy accept;
    ip frag-off & 0x1fff != 0 log prefix "FRAG4: "
    ip frag-off & 0x2000 != 0 log prefix "FRAG4-FIRST: "
    exthdr frag exists log prefix "FRAG6: "
  }
  chain input {
    type filter hook input priority 0; policy accept;
    meta nfproto ipv4 tcp dport 4444 log prefix "Firewall: *TCP_IN Blocked* " drop
    meta nfproto ipv6 tcp dport 4444 log prefix "Firewall: *TCP6IN Blocked* " drop
    tcp dport 4445 log prefix "[UFW BLOCK] " drop
    tcp dport 4446 log prefix "ALL: " flags all drop
    udp dport 5353 log prefix "DROP: " drop
    icmp type echo-request log prefix "PING: " drop
    icmpv6 type echo-request log prefix "PING6: " drop
    meta l4proto icmp icmp type != echo-request log prefix "ICMP-IN: "
    meta l4proto ipv6-icmp icmpv6 type { destination-unreachable, time-exceeded, packet-too-big } log prefix "ICMP6-IN: "
    meta l4proto 47 log prefix "GRE: " drop
    udp dport 6000 log prefix "IPOPT: " flags all drop
  }
  chain output {
    type filter hook output priority 0; policy accept;
    tcp dport 7777 log prefix "OUT: " drop
    udp dport 7778 log prefix "OUTU: " drop
    udp dport 7779 meta mark set 0x2a log prefix "MARKED: " drop
    tcp dport 7780 log prefix "UID: " flags skuid drop
  }
}
NFT

cat >"$tmp/raw.py" <<'PY'
import socket, struct, sys
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
mode = sys.argv[1]
if mode == 'echo4':
    for size in (56, 3000):
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        data = b'x' * size
        c = csum(struct.pack('!BBHHH', 8, 0, 0, 0x1234, 1) + data)
        s.sendto(struct.pack('!BBHHH', 8, 0, c, 0x1234, 1) + data, ('10.201.0.2', 0))
elif mode == 'echo6':
    for size in (56, 3000):
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        s.sendto(struct.pack('!BBHHH', 128, 0, 0, 0x4321, 7) + b'y' * size, ('fd00:201::2', 0))
elif mode == 'bigudp':
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'z' * 3000, ('10.201.0.2', 5353))
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'z' * 3000, ('fd00:201::2', 5353))
elif mode == 'ipopt':
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_OPTIONS, bytes([7, 11, 4] + [0] * 8 + [0]))
    s.sendto(b'opt', ('10.201.0.2', 6000))
elif mode == 'bigudp6':
    socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).sendto(b'o' * 2000, ('fd00:201::2', 6000))
PY

start=$(dmesg | wc -l)
for port in 4444 4445 4446; do
	for dst in 10.201.0.2 fd00:201::2; do $A timeout 3 nc -w 1 $dst $port </dev/null || true; done
done
for scan in -sS -sF -sX -sN -sA -sM; do
	$A timeout 15 nmap -n -Pn $scan --max-retries 0 --host-timeout 10s -p 4444 10.201.0.2 >/dev/null || true
done
$A timeout 15 nmap -6 -n -Pn -sS --max-retries 0 --host-timeout 10s -p 4444,4446 fd00:201::2 >/dev/null || true
$A timeout 3 sh -c 'echo hello | nc -u -w 1 10.201.0.2 5353' || true
$A timeout 3 sh -c 'echo hello | nc -u -w 1 fd00:201::2 5353' || true
$B timeout 3 sh -c 'echo hi | nc -u -w 1 10.201.0.1 5555' || true
$B timeout 3 sh -c 'echo hi | nc -u -w 1 fd00:201::1 5555' || true
$B timeout 3 nc -w 1 10.201.0.1 7777 </dev/null || true
$B timeout 3 nc -w 1 fd00:201::1 7777 </dev/null || true
$B timeout 3 sh -c 'echo x | nc -u -w 1 10.201.0.1 7778' || true
$B timeout 3 sh -c 'echo x | nc -u -w 1 10.201.0.1 7779' || true
$A timeout 5 hping3 -c 1 -0 -H 47 10.201.0.2 >/dev/null 2>&1 || true
for m in echo4 echo6 bigudp ipopt; do $A timeout 5 python3 "$tmp/raw.py" $m; done
$B timeout 3 nc -w 1 10.201.0.1 8888 </dev/null || true
$B timeout 3 nc -w 1 fd00:201::1 8888 </dev/null || true
$B timeout 3 nc -w 1 10.201.0.1 7780 </dev/null || true
# IPv6 extension headers are printed only with "flags ip options".
$B nft add rule inet swklog pre meta nfproto ipv6 udp dport 6000 log prefix '"V6OPT: "' flags all
$B nft add rule inet swklog pre meta nfproto ipv6 exthdr frag exists log prefix '"V6FRAGOPT: "' flags all
$A timeout 5 python3 "$tmp/raw.py" bigudp6
sleep 1

pat='IN=swk-|OUT=swk-'
dmesg | tail -n +$((start + 1)) | grep -E "$pat" >"$out/real-dmesg.log"
dmesg -T | tail -n +$((start + 1)) | grep -E "$pat" >"$out/real-dmesg-T.log"
dmesg -r | tail -n +$((start + 1)) | grep -E "$pat" >"$out/real-dmesg-r.log"
dmesg --time-format iso | tail -n +$((start + 1)) | grep -E "$pat" >"$out/real-dmesg-iso.log"
# /dev/kmsg and the journal hold earlier runs too: keep as many of the last
# lines as dmesg found since the start.
n=$(wc -l <"$out/real-dmesg.log")
timeout 2 cat /dev/kmsg | grep -aE "$pat" | tail -n "$n" >"$out/real-kmsg.log" || true
modes="short short-iso short-iso-precise short-precise short-full short-monotonic short-unix"
if pgrep -x systemd-journal >/dev/null; then # the kernel keeps 15 bytes of the name
	for m in $modes; do journalctl -k --no-pager -o $m | grep -aE "$pat" | tail -n "$n" >"$out/real-journal-$m.log"; done
else
	unshare -m --propagation private bash -c '
		set -e
		mount -t tmpfs tmpfs /run
		mount -t tmpfs tmpfs /var/log
		mkdir -p /run/systemd/journal /var/log/journal
		timeout 8 /lib/systemd/systemd-journald >/dev/null 2>&1 &
		sleep 4
		for m in '"$modes"'; do
			journalctl -k --no-pager -o $m | grep -aE "'"$pat"'" | tail -n '"$n"' >"'"$out"'/real-journal-$m.log" || true
		done
		wait || true'
fi
# Retransmissions make the count vary a little from run to run: after
# regenerating, set realBoot in real_test.go to this and check the line
# numbers TestRealLogFields pins.
echo "$n lines; boot time $(awk '/^btime/ {print $2}' /proc/stat)"
