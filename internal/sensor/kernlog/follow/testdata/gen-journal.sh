#!/bin/bash
# gen-journal.sh writes testdata/journal-real.json: journal entries, as
# `journalctl -o json --all` prints them, for real kernel firewall log lines
# and for forgeries of them, made on a real kernel with a real journald.
# Run as root on Linux with systemd-journald (not running is fine: one is
# started in a private mount namespace over tmpfs and stopped again), nft,
# nmap, ncat, logger and systemd-cat. It touches nothing but two network
# namespaces of its own (swklf-ja, swklf-jb), which it deletes, and
# net.netfilter.nf_log_all_netns, which it restores. No packet leaves the
# namespaces.
#
# Kernel lines: nmap -sS and ncat from swklf-ja to swklf-jb, whose nft rules
# log and drop TCP 4444 (IPv4 and IPv6) and UDP 5353; one interface of
# swklf-jb is named "swklf\xff", which is not UTF-8, so journald stores
# those messages as arrays of bytes.
# Forgeries, all of kernel-looking lines with SRC=10.232.9.x: logger -t
# kernel to the syslog socket and logger --journald, both as user nobody,
# systemd-cat -t kernel, and records written to /dev/kmsg by root ("<4>" and
# "<0>" prefixes), which journald stores with _TRANSPORT=kernel but the
# facility the kernel gave them (1, user).
set -euo pipefail
out=$(cd "$(dirname "$0")" && pwd)
A="ip netns exec swklf-ja"
B="ip netns exec swklf-jb"
old_all=$(sysctl -n net.netfilter.nf_log_all_netns)
jpid=
cleanup() {
	[ -n "$jpid" ] && kill "$jpid" 2>/dev/null || true
	ip netns del swklf-ja 2>/dev/null || true
	ip netns del swklf-jb 2>/dev/null || true
	sysctl -qw net.netfilter.nf_log_all_netns="$old_all"
}
trap cleanup EXIT

# A journald of our own, in a mount namespace where /run and /var/log are
# empty tmpfs: it reads /dev/kmsg (from the start of the ring buffer) and
# listens on its sockets under /run/systemd/journal there.
unshare -m --propagation private bash -c '
	mount -t tmpfs tmpfs /run
	mount -t tmpfs tmpfs /var/log
	mkdir -p /run/systemd/journal /run/log/journal
	exec /lib/systemd/systemd-journald' >/dev/null 2>&1 &
jpid=$!
sleep 2
J="nsenter -t $(pgrep -P $jpid -x systemd-journal || echo $jpid) -m"
$J test -S /run/systemd/journal/socket

sysctl -qw net.netfilter.nf_log_all_netns=1
ip netns add swklf-ja
ip netns add swklf-jb
ip link add swklf-ja0 netns swklf-ja type veth peer name swklf-jb0 netns swklf-jb
ip link add swklf-ja1 netns swklf-ja type veth peer name "swklf"$'\xff' netns swklf-jb
for ns in ja jb; do ip -n swklf-$ns link set lo up; done
ip -n swklf-ja addr add 10.232.0.1/24 dev swklf-ja0
ip -n swklf-jb addr add 10.232.0.2/24 dev swklf-jb0
ip -n swklf-ja addr add fd00:232::1/64 dev swklf-ja0 nodad
ip -n swklf-jb addr add fd00:232::2/64 dev swklf-jb0 nodad
ip -n swklf-ja addr add 10.232.1.1/24 dev swklf-ja1
ip -n swklf-jb addr add 10.232.1.2/24 dev "swklf"$'\xff'
ip -n swklf-ja link set swklf-ja0 up
ip -n swklf-jb link set swklf-jb0 up
ip -n swklf-ja link set swklf-ja1 up
ip -n swklf-jb link set "swklf"$'\xff' up
# journald imported the whole ring buffer at its start: keep only what
# comes after its newest entry now.
since=$($J journalctl -o json -n 1 --no-pager | python3 -c 'import json, sys; print(json.loads(sys.stdin.readline())["__CURSOR"])')

$B nft -f - <<'NFT'
table inet swklf {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 4444 log prefix "Firewall: *TCP_IN Blocked* " drop
    udp dport 5353 log prefix "DROP: " drop
  }
}
NFT

$A timeout 15 nmap -n -Pn -sS --max-retries 0 --host-timeout 10s -p 4444 10.232.0.2 >/dev/null || true
$A timeout 15 nmap -n -Pn -sS --max-retries 0 --host-timeout 10s -p 4444 10.232.1.2 >/dev/null || true
$A timeout 3 ncat -w 1 fd00:232::2 4444 </dev/null || true
$A timeout 3 sh -c 'echo hello | ncat -u -w 1 10.232.0.2 5353' || true

forged='IN=swklf-jb0 OUT= MAC=aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:08:00 SRC=10.232.9.%d DST=10.232.0.2 LEN=44 TOS=0x00 PREC=0x00 TTL=41 ID=4242 PROTO=TCP SPT=40000 DPT=22 WINDOW=1024 RES=0x00 SYN URGP=0'
nobody="setpriv --reuid nobody --regid nogroup --clear-groups"
$J $nobody logger -u /run/systemd/journal/dev-log -t kernel "Firewall: *TCP_IN Blocked* $(printf "$forged" 1)"
printf "MESSAGE=Firewall: *TCP_IN Blocked* $forged\nSYSLOG_IDENTIFIER=kernel\nSYSLOG_FACILITY=0\n" 2 >"/tmp/swklf-journald-$$"
$J $nobody logger --journald="/tmp/swklf-journald-$$"
rm -f "/tmp/swklf-journald-$$"
printf "Firewall: *TCP_IN Blocked* $forged\n" 3 | $J systemd-cat -t kernel
printf "<4>kernel: Firewall: *TCP_IN Blocked* $forged\n" 4 >/dev/kmsg
printf "<0>$forged\n" 5 >/dev/kmsg
sleep 1

# Keep our entries: MESSAGE is a string, or an array of bytes.
$J journalctl -o json --all --no-pager --after-cursor="$since" | python3 -c '
import json, re, sys
for line in sys.stdin:
    m = json.loads(line).get("MESSAGE")
    if isinstance(m, list):
        m = bytes(m).decode("latin-1")
    if isinstance(m, str) and re.search(r"SRC=(10\.232\.|fd00:0232:)", m):
        sys.stdout.write(line)' >"$out/journal-real.json"
echo "$(wc -l <"$out/journal-real.json") entries"
