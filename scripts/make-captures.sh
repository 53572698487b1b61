#!/usr/bin/env bash
# make-captures.sh — regenerate the real packet captures under testdata/captures/.
#
# Every capture is made by running a REAL tool (nmap, masscan, hping3, zmap, curl, ncat) between
# network namespaces that this script creates and deletes again, and is recorded with tcpdump
# (or dumpcap) on the TARGET side, snaplen 128. Nothing leaves the namespaces: all addresses are in
# 10.77.0.0/16 and fd00:77::/64, and no namespace has a link to the host.
#
# Topology (all names start with "swcap-"):
#
#   swcap-scan   swcap-s0 02:77:00:00:00:01  10.77.0.1/24 fd00:77::1/64   the scanner
#                                            10.77.0.61-64 (extra, for the distributed scan)
#   swcap-client swcap-c0 02:77:00:00:00:03  10.77.0.3/24 fd00:77::3/64   benign clients
#   swcap-target swcap-t0 02:77:00:00:00:02  10.77.0.2/24 fd00:77::2/64   the target (captures here)
#                                            10.77.1.10, .20, .30 (extra, live hosts of the sweep)
#   swcap-lan    swcap-br0, a bridge joining the three veth pairs (no addresses, IPv6 off)
#   for variant-raw only: tun devices swcap-tun-s (10.77.9.1) in swcap-scan and swcap-tun-t
#   (10.77.9.2) in swcap-target, joined by a small relay process living in swcap-lan.
#
# Target services: TCP 22 (ncat -lk), TCP 80 (HTTP/1.0, python), TCP 443 (HTTPS, python,
# self-signed), UDP 53 (python echo). All other ports are closed: Linux answers RST (TCP) or a
# rate-limited ICMP port unreachable (UDP). Some captures add an nftables table "inet swcap" in the
# target that silently drops ports (no reject), and remove it again afterwards. 10.77.1.0/24 is
# routed to the target from the scanner and the client.
#
# Captures (file: what made it; expected verdict for the source, scan type, class). The scanner is
# 10.77.0.1 unless said otherwise, the benign client 10.77.0.3, the target 10.77.0.2.
#   nmap-syn-top1000.pcap   nmap -n -Pn -sS -T4 --top-ports 1000 10.77.0.2       scan, syn, vertical
#   nmap-connect.pcap       nmap -n -Pn -sT -T4 --top-ports 200 10.77.0.2        scan, connect, vertical
#   nmap-fin.pcap           nmap -n -Pn -sF -T4 --top-ports 100 10.77.0.2        scan, fin, vertical
#   nmap-null.pcap          nmap -n -Pn -sN -T4 --top-ports 100 10.77.0.2        scan, null, vertical
#   nmap-xmas.pcap          nmap -n -Pn -sX -T4 --top-ports 100 10.77.0.2        scan, xmas, vertical
#   nmap-ack.pcap           nmap -n -Pn -sA -T4 --top-ports 100 10.77.0.2        scan, ack, vertical
#   nmap-maimon.pcap        nmap -n -Pn -sM -T4 --top-ports 100 10.77.0.2        scan, maimon, vertical
#   nmap-window.pcap        nmap -n -Pn -sW -T4 --top-ports 100 10.77.0.2        scan, window, vertical
#   nmap-udp.pcap           nmap -n -Pn -sU -T4 --top-ports 30 --max-retries 1   scan, udp, vertical
#   nmap-syn-ipv6.pcap      nmap -n -Pn -6 -sS -T4 --top-ports 100 fd00:77::2    scan, syn, vertical
#   masscan-syn.pcap        masscan 10.77.0.2 -p1-1000 --rate 2000 --wait 1 ...  scan, syn, vertical
#   hping3-syn.pcap         hping3 -n -S -p ++1 -c 200 -i u2000 10.77.0.2        scan, syn, vertical
#   zmap-syn.pcap           zmap -p 22 ... 10.77.1.0/24 (3 live hosts)           scan, syn, horizontal
#   nmap-syn-filtered.pcap  nmap -n -Pn -sS -T4 --top-ports 200, all but 22/80/443 dropped
#                                                                                scan, syn, vertical
#   nmap-syn-slow.pcap      nmap -n -Pn -sS --scan-delay 1s --max-retries 0 -p 1-40
#                                                                                scan, syn, vertical (slow)
#   nmap-decoy.pcap         nmap -n -Pn -sS -T4 --top-ports 100 -D 10.77.0.50,10.77.0.51,ME
#                                                                                scan, syn, vertical, decoy group
#   distributed-syn.pcap    4 x nmap -sS -S 10.77.0.6x -e swcap-s0 -p <25 ports> scan, syn, distributed
#   benign-web.pcap         5 x curl --rate 20/s, 200 HTTP + 50 HTTPS requests   benign
#   benign-monitor.pcap     bash /dev/tcp to 22, 80, 443 every 2 s for 20 s      benign
#   benign-one-closed.pcap  curl to closed 8080, once                            benign
#   benign-retry-filtered.pcap      2 x ncat -w 8 to dropped 587, 4 SYNs each    benign
#   benign-bittorrent-retries.pcap  4 x ncat -w 4 to dropped 6881, 3 SYNs each   benign
#   benign-retry-linear.pcap        1 x ncat -w 8 to dropped 587, 7 SYNs         benign
#   variant-sll2.pcap (+.gz) nmap -n -Pn -sS -T4 -p 1-50, tcpdump -i any         scan, syn, vertical
#   variant-sll.pcap        same, tcpdump -i any -y LINUX_SLL                    scan, syn, vertical
#   variant.pcapng          same, dumpcap (pcapng) on swcap-t0                   scan, syn, vertical
#   variant-raw.pcap        same over the tun link, tcpdump on swcap-tun-t (RAW) scan, syn, vertical
# See testdata/captures/README.md for the full table with packet counts.
#
# Between captures the script ends what would spill into the next one (see quiesce). Captures are
# written to a temporary directory first and copied into place only when complete. Set
# SWCAP_TOOL_LOG=FILE to keep the tools' output (it is deleted otherwise).
#
# --big N writes big.pcap (for benchmarks, never committed) into the -o directory, which must be
# given and must lie outside testdata/: a capture of exactly N packets taken while masscan
# full-range sweeps, distributed nmap scans, zmap sweeps and benign curl traffic run in rounds
# (N=1000000: about 5 rounds, a minute or two, ~70 MB).
set -euo pipefail

readonly PROG=${0##*/}
SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd -- "$SCRIPT_DIR/.." && pwd)
readonly SCRIPT_DIR REPO_DIR

readonly NS_SCAN=swcap-scan NS_TGT=swcap-target NS_CLI=swcap-client NS_LAN=swcap-lan
readonly ALL_NS=("$NS_SCAN" "$NS_TGT" "$NS_CLI" "$NS_LAN")
readonly IF_SCAN=swcap-s0 IF_TGT=swcap-t0 IF_CLI=swcap-c0 BRIDGE=swcap-br0
readonly TUN_SCAN=swcap-tun-s TUN_TGT=swcap-tun-t
readonly MAC_SCAN=02:77:00:00:00:01 MAC_TGT=02:77:00:00:00:02 MAC_CLI=02:77:00:00:00:03
readonly SCAN4=10.77.0.1 TGT4=10.77.0.2 CLI4=10.77.0.3
readonly SCAN6=fd00:77::1 TGT6=fd00:77::2 CLI6=fd00:77::3
readonly DIST4=(10.77.0.61 10.77.0.62 10.77.0.63 10.77.0.64)
readonly SWEEP_NET=10.77.1.0/24 SWEEP_LIVE=(10.77.1.10 10.77.1.20 10.77.1.30)
readonly TUN_SCAN4=10.77.9.1 TUN_TGT4=10.77.9.2
readonly SNAP=128

# name:file:description, in the order they are made.
readonly CAPTURES=(
	"nmap-syn-top1000:nmap-syn-top1000.pcap:nmap SYN scan, top 1000 TCP ports"
	"nmap-connect:nmap-connect.pcap:nmap connect() scan, top 200 ports"
	"nmap-fin:nmap-fin.pcap:nmap FIN scan, top 100 ports"
	"nmap-null:nmap-null.pcap:nmap NULL scan, top 100 ports"
	"nmap-xmas:nmap-xmas.pcap:nmap XMAS scan, top 100 ports"
	"nmap-ack:nmap-ack.pcap:nmap ACK scan, top 100 ports"
	"nmap-maimon:nmap-maimon.pcap:nmap Maimon (FIN/ACK) scan, top 100 ports"
	"nmap-window:nmap-window.pcap:nmap Window scan, top 100 ports"
	"nmap-udp:nmap-udp.pcap:nmap UDP scan, top 30 ports (ICMP rate-limited)"
	"nmap-syn-ipv6:nmap-syn-ipv6.pcap:nmap SYN scan over IPv6, top 100 ports"
	"masscan-syn:masscan-syn.pcap:masscan SYN scan, ports 1-1000"
	"hping3-syn:hping3-syn.pcap:hping3 SYN probes to ports 1-200 (port increment)"
	"zmap-syn:zmap-syn.pcap:zmap horizontal sweep of port 22 over 10.77.1.0/24"
	"nmap-syn-filtered:nmap-syn-filtered.pcap:nmap SYN scan, top 200, target drops closed ports"
	"nmap-syn-slow:nmap-syn-slow.pcap:nmap SYN scan, 1 probe/s, ports 1-40"
	"nmap-decoy:nmap-decoy.pcap:nmap SYN scan with two spoofed decoys"
	"distributed-syn:distributed-syn.pcap:4 sources, 25 disjoint ports each, one target"
	"benign-web:benign-web.pcap:curl, 250 HTTP/HTTPS requests over parallel connections"
	"benign-monitor:benign-monitor.pcap:monitoring checks of 22/80/443 every 2 s"
	"benign-one-closed:benign-one-closed.pcap:one connection attempt to a closed port"
	"benign-retry-filtered:benign-retry-filtered.pcap:2 connects to dropped 587, with SYN retransmissions"
	"benign-bittorrent-retries:benign-bittorrent-retries.pcap:4 connects to dropped 6881, 3 SYNs each"
	"benign-retry-linear:benign-retry-linear.pcap:1 connect to dropped 587, SYN timing of Linux >= 6.18"
	"variant-sll2:variant-sll2.pcap:short SYN scan, tcpdump -i any (LINUX_SLL2); also variant-sll2.pcap.gz"
	"variant-sll:variant-sll.pcap:short SYN scan, tcpdump -i any -y LINUX_SLL"
	"variant-pcapng:variant.pcapng:short SYN scan, dumpcap pcapng"
	"variant-raw:variant-raw.pcap:short SYN scan over a tun link (LINKTYPE_RAW)"
)

usage() {
	cat <<EOF
Usage: $PROG [-o DIR] [NAME...]
       $PROG --big N -o DIR
       $PROG -h

Regenerate the packet captures used as test fixtures by running real scanners and clients
between network namespaces (swcap-*) and capturing on the target side. Must be run as root.

  -o DIR     write captures to DIR (default: testdata/captures/ of this repository)
  --big N    write only DIR/big.pcap, a capture of exactly N packets of mixed scans and benign
             traffic, for benchmarks (e.g. N=1000000, takes a minute or two, ~70 MB). -o is
             required and must not point into testdata/: big.pcap is never committed.
  -h         this help
  NAME...    make only these captures (default: all)

Captures:
EOF
	local c name file desc
	for c in "${CAPTURES[@]}"; do
		IFS=: read -r name file desc <<<"$c"
		printf '  %-26s %-32s %s\n' "$name" "$file" "$desc"
	done
}

die() {
	echo "$PROG: $*" >&2
	exit 1
}
log() { echo "[$PROG] $*" >&2; }

# --- arguments ------------------------------------------------------------------------------

OUT=""
BIG=""
WANT=()
while (($#)); do
	case $1 in
	-h | --help) usage; exit 0 ;;
	-o) (($# >= 2)) || die "-o needs a directory"; OUT=$2; shift 2 ;;
	-o*) OUT=${1#-o}; shift ;;
	--big) (($# >= 2)) || die "--big needs a packet count"; BIG=$2; shift 2 ;;
	--big=*) BIG=${1#--big=}; shift ;;
	--) shift; WANT+=("$@"); break ;;
	-*) die "unknown option $1 (see -h)" ;;
	*) WANT+=("$1"); shift ;;
	esac
done

if [[ -n $BIG ]]; then
	[[ $BIG =~ ^[1-9][0-9]*$ ]] || die "--big wants a positive packet count, not '$BIG'"
	[[ -n $OUT ]] || die "--big needs -o DIR (outside testdata/; big.pcap is never committed)"
	((${#WANT[@]} == 0)) || die "--big makes only big.pcap; do not name captures with it"
fi
for w in "${WANT[@]}"; do
	found=""
	for c in "${CAPTURES[@]}"; do [[ ${c%%:*} == "$w" ]] && found=1; done
	[[ -n $found ]] || die "unknown capture '$w' (see -h for the list)"
done

if ((EUID != 0)); then
	echo "$PROG: must be run as root: it creates network namespaces, runs raw-socket scanners and" >&2
	echo "captures packets. Try: sudo $0 $*" >&2
	exit 1
fi

for tool in ip nft tcpdump dumpcap nmap masscan hping3 zmap ncat curl python3 openssl timeout gzip; do
	command -v "$tool" >/dev/null || die "missing tool: $tool"
done

OUT=${OUT:-$REPO_DIR/testdata/captures}
mkdir -p -- "$OUT"
OUT=$(cd -- "$OUT" && pwd -P)
if [[ -n $BIG ]]; then
	testdata=$(cd -- "$REPO_DIR/testdata" 2>/dev/null && pwd -P || echo "$REPO_DIR/testdata")
	[[ $OUT/ != "$testdata"/* ]] || die "big.pcap must not be written under $testdata; choose another -o"
fi

# --- cleanup --------------------------------------------------------------------------------

WORK=$(mktemp -d /tmp/swcap.XXXXXX)
cd -- "$WORK" # tools that drop files in their working directory (masscan's paused.conf) drop them here
TOOL_LOG=$WORK/tools.log
PIDS=()     # background processes we started
CAP_PID=""

kill_ns_procs() { # every process left in one of our namespaces was started by us
	local ns=$1 pid
	ip netns list 2>/dev/null | grep -qw -- "^$ns" || return 0
	for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -TERM "$pid" 2>/dev/null || true; done
	sleep 0.2
	for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
}

teardown_ns() {
	local ns
	for ns in "${ALL_NS[@]}"; do kill_ns_procs "$ns"; done
	for ns in "${ALL_NS[@]}"; do
		if ip netns list 2>/dev/null | grep -qE "^$ns( |$)"; then ip netns del "$ns" 2>/dev/null || true; fi
	done
}

cleanup() {
	local rc=$? pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
	teardown_ns
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	if ((rc != 0)) && [[ -s $TOOL_LOG ]]; then
		echo "--- last lines of the tool log ---" >&2
		tail -n 30 "$TOOL_LOG" >&2
	fi
	if [[ -n ${SWCAP_TOOL_LOG:-} && -e $TOOL_LOG ]]; then cp -- "$TOOL_LOG" "$SWCAP_TOOL_LOG" || true; fi
	rm -rf -- "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# --- helpers --------------------------------------------------------------------------------

nsx() { # nsx NS CMD... — run in a namespace
	local ns=$1; shift
	ip netns exec "$ns" "$@"
}

# bounded SECS NS CMD... — run a tool in a namespace, killed after SECS. A non-zero exit is fatal,
# except a timeout (a warning: the capture still holds what happened until then).
bounded() {
	local secs=$1 ns=$2 rc=0; shift 2
	printf "\n+ [%s] %s\n" "$ns" "$*" >>"$TOOL_LOG"
	timeout --foreground -s INT -k 5 "$secs" ip netns exec "$ns" "$@" </dev/null >>"$TOOL_LOG" 2>&1 || rc=$?
	case $rc in
	0) ;;
	124 | 137) log "warning: '$1' hit its ${secs}s time limit" ;;
	*) die "'$*' in $ns failed with exit status $rc" ;;
	esac
}
# Like bounded, but the command's own failure is expected (e.g. a connect to a dropped port).
bounded_may_fail() {
	local secs=$1 ns=$2 rc=0; shift 2
	printf "\n+ [%s] %s (may fail)\n" "$ns" "$*" >>"$TOOL_LOG"
	timeout --foreground -s INT -k 5 "$secs" ip netns exec "$ns" "$@" </dev/null >>"$TOOL_LOG" 2>&1 || rc=$?
	echo "  exit status $rc" >>"$TOOL_LOG"
}
scan() { bounded "$1" "$NS_SCAN" "${@:2}"; }

bg_start() { # bg_start NS CMD... — start a long-running helper, remember its pid
	local ns=$1; shift
	printf "\n+ [%s] %s &\n" "$ns" "$*" >>"$TOOL_LOG"
	ip netns exec "$ns" "$@" </dev/null >>"$TOOL_LOG" 2>&1 &
	PIDS+=($!)
}

# cap_start FILE [KIND] — start capturing on the target side and wait until the capture is live.
# KIND: veth (tcpdump on swcap-t0, Ethernet), any (tcpdump -i any, LINUX_SLL2),
# any-sll (tcpdump -i any -y LINUX_SLL), pcapng (dumpcap on swcap-t0), tun (tcpdump on the tun).
cap_start() {
	local file=$1 kind=${2:-veth} err=$WORK/capture.err i
	: >"$err"
	case $kind in
	veth) ip netns exec "$NS_TGT" tcpdump -i "$IF_TGT" -s "$SNAP" -n -U -Z root -w "$file" 2>"$err" & ;;
	any) ip netns exec "$NS_TGT" tcpdump -i any -s "$SNAP" -n -U -Z root -w "$file" 2>"$err" & ;;
	any-sll) ip netns exec "$NS_TGT" tcpdump -i any -y LINUX_SLL -s "$SNAP" -n -U -Z root -w "$file" 2>"$err" & ;;
	tun) ip netns exec "$NS_TGT" tcpdump -i "$TUN_TGT" -s "$SNAP" -n -U -Z root -w "$file" 2>"$err" & ;;
	pcapng) ip netns exec "$NS_TGT" dumpcap -i "$IF_TGT" -s "$SNAP" -w "$file" 2>"$err" & ;;
	*) die "cap_start: unknown kind $kind" ;;
	esac
	CAP_PID=$!
	PIDS+=("$CAP_PID")
	for ((i = 0; i < 100; i++)); do
		grep -qE 'listening on|Capturing on' "$err" && break
		kill -0 "$CAP_PID" 2>/dev/null || die "capture failed to start: $(cat "$err")"
		sleep 0.1
	done
	((i < 100)) || die "capture did not become ready: $(cat "$err")"
	sleep 0.5
}

# cap_stop — wait for late answers, then stop the capture cleanly so the file is complete.
cap_stop() {
	sleep 1
	kill -0 "$CAP_PID" 2>/dev/null || die "the capture stopped before its end: $(cat "$WORK/capture.err")"
	kill -TERM "$CAP_PID"
	wait "$CAP_PID" || die "the capture failed: $(cat "$WORK/capture.err")"
	CAP_PID=""
}

fw_drop() { # fw_drop RULE... — an nftables table in the target that silently drops
	local rules=("$@") r
	{
		echo "table inet swcap {"
		echo "  chain input {"
		echo "    type filter hook input priority filter; policy accept;"
		for r in "${rules[@]}"; do echo "    $r"; done
		echo "  }"
		echo "}"
	} | tee -a "$TOOL_LOG" | ip netns exec "$NS_TGT" nft -f -
}
fw_clear() { ip netns exec "$NS_TGT" nft delete table inet swcap 2>/dev/null || true; }

# --- the python helper: HTTP(S) server, UDP echo, tun relay -----------------------------------

write_helper() {
	cat >"$WORK/helper.py" <<'PY'
import fcntl, http.server, os, select, socket, socketserver, ssl, struct, sys

def http_server(port, root, cert=None, key=None):
    ctx = None
    if cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=root, **kw)
        wbufsize = 65536  # headers and body in one segment, as real servers do
        def log_message(self, *a):
            pass

    class Server(http.server.ThreadingHTTPServer):
        address_family = socket.AF_INET6
        daemon_threads = True
        def server_bind(self):  # dual stack, and no getfqdn() lookup
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            socketserver.TCPServer.server_bind(self)
            self.server_name, self.server_port = "swcap-target", port
        def finish_request(self, request, client_address):
            request.settimeout(5)
            if ctx:
                try:
                    request = ctx.wrap_socket(request, server_side=True)
                except OSError:
                    return
            try:
                self.RequestHandlerClass(request, client_address, self)
            finally:
                if ctx:
                    request.close()
        def handle_error(self, request, client_address):
            pass

    Server(("::", port), Handler).serve_forever()

def udp_echo(port):
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    while True:
        data, addr = s.recvfrom(4096)
        s.sendto(data, addr)

def tun_open(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    IFF_TUN, IFF_NO_PI, TUNSETIFF = 0x0001, 0x1000, 0x400454CA
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd

def tun_relay(a, b):
    fa, fb = tun_open(a), tun_open(b)
    peer = {fa: fb, fb: fa}
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select([fa, fb], [], [])
        for fd in ready:
            pkt = os.read(fd, 65535)
            try:
                os.write(peer[fd], pkt)
            except OSError:
                pass

mode = sys.argv[1]
if mode == "http":
    http_server(int(sys.argv[2]), *sys.argv[3:])
elif mode == "udpecho":
    udp_echo(int(sys.argv[2]))
elif mode == "tunrelay":
    tun_relay(sys.argv[2], sys.argv[3])
PY
}

# --- the lab ----------------------------------------------------------------------------------

ns_sysctls() { # quiet IPv6 (no router solicitations, no RA), set before interfaces exist
	local ns=$1
	nsx "$ns" sysctl -qw net.ipv6.conf.all.accept_ra=0 net.ipv6.conf.default.accept_ra=0 \
		net.ipv6.conf.all.router_solicitations=0 net.ipv6.conf.default.router_solicitations=0
}

setup_lab() {
	log "building namespaces ${ALL_NS[*]}"
	teardown_ns # leftovers of an earlier, killed run
	local ns
	for ns in "${ALL_NS[@]}"; do
		ip netns add "$ns"
		nsx "$ns" ip link set lo up
		ns_sysctls "$ns"
	done
	nsx "$NS_LAN" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
	ip -n "$NS_LAN" link add "$BRIDGE" type bridge stp_state 0 forward_delay 0 mcast_snooping 0
	ip -n "$NS_LAN" link set "$BRIDGE" up

	# veth pairs are created inside swcap-lan, the host namespace never sees them.
	local pair end mac brport
	for pair in "$NS_SCAN,$IF_SCAN,$MAC_SCAN,swcap-br-s" "$NS_TGT,$IF_TGT,$MAC_TGT,swcap-br-t" \
		"$NS_CLI,$IF_CLI,$MAC_CLI,swcap-br-c"; do
		IFS=, read -r ns end mac brport <<<"$pair"
		ip -n "$NS_LAN" link add "$brport" type veth peer name "$end" netns "$ns"
		ip -n "$NS_LAN" link set "$brport" master "$BRIDGE" up
		ip -n "$ns" link set "$end" address "$mac"
	done

	ip -n "$NS_SCAN" addr add "$SCAN4/24" dev "$IF_SCAN"
	ip -n "$NS_SCAN" addr add "$SCAN6/64" dev "$IF_SCAN" nodad
	local a
	for a in "${DIST4[@]}"; do ip -n "$NS_SCAN" addr add "$a/24" dev "$IF_SCAN"; done
	ip -n "$NS_TGT" addr add "$TGT4/24" dev "$IF_TGT"
	ip -n "$NS_TGT" addr add "$TGT6/64" dev "$IF_TGT" nodad
	for a in "${SWEEP_LIVE[@]}"; do ip -n "$NS_TGT" addr add "$a/32" dev "$IF_TGT"; done
	ip -n "$NS_CLI" addr add "$CLI4/24" dev "$IF_CLI"
	ip -n "$NS_CLI" addr add "$CLI6/64" dev "$IF_CLI" nodad
	for ns in "$NS_SCAN:$IF_SCAN" "$NS_TGT:$IF_TGT" "$NS_CLI:$IF_CLI"; do
		ip -n "${ns%%:*}" link set "${ns#*:}" up
	done
	# The sweep's /24 is routed to the target, so the scanner's kernel can answer the SYN/ACKs of
	# zmap's live hosts with RST, as on any real scanner host (without a route it stays silent and
	# the target retransmits its SYN/ACKs for a minute).
	ip -n "$NS_SCAN" route add "$SWEEP_NET" via "$TGT4"
	ip -n "$NS_CLI" route add "$SWEEP_NET" via "$TGT4"

	# Services of the target.
	write_helper
	mkdir -p "$WORK/www"
	printf '<!doctype html><title>swcap</title><p>hello from the target\n' >"$WORK/www/index.html"
	openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=swcap-target \
		-keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1 || die "openssl req failed"
	bg_start "$NS_TGT" ncat -lk --recv-only -p 22
	bg_start "$NS_TGT" python3 "$WORK/helper.py" http 80 "$WORK/www"
	bg_start "$NS_TGT" python3 "$WORK/helper.py" http 443 "$WORK/www" "$WORK/cert.pem" "$WORK/key.pem"
	bg_start "$NS_TGT" python3 "$WORK/helper.py" udpecho 53
	local i
	for ((i = 0; i < 100; i++)); do
		[[ $(nsx "$NS_TGT" ss -Hltn 'sport = :22 or sport = :80 or sport = :443' | wc -l) -ge 4 &&
			$(nsx "$NS_TGT" ss -Hlun 'sport = :53' | wc -l) -ge 1 ]] && break
		sleep 0.1
	done
	((i < 100)) || die "target services did not start"
	# Check reachability once, then let link-up noise (MLD, ND) die down before the first capture.
	nsx "$NS_SCAN" ncat -z -w 2 "$TGT4" 22 || die "scanner cannot reach $TGT4"
	nsx "$NS_CLI" ncat -z -w 2 "$TGT4" 22 || die "client cannot reach $TGT4"
	nsx "$NS_SCAN" ncat -z -w 2 "$TGT6" 22 || die "scanner cannot reach $TGT6"
	nsx "$NS_CLI" ncat -z -w 2 "$TGT6" 22 || die "client cannot reach $TGT6"
	sleep 3
}

TUN_RELAY_PID=""
setup_tun() { # a point-to-point raw-IP link between scanner and target, for variant-raw
	local out=$WORK/tunrelay.out i
	ip netns exec "$NS_LAN" python3 "$WORK/helper.py" tunrelay "$TUN_SCAN" "$TUN_TGT" >"$out" 2>&1 &
	TUN_RELAY_PID=$!
	PIDS+=("$TUN_RELAY_PID")
	for ((i = 0; i < 50; i++)); do
		grep -q ready "$out" && break
		sleep 0.1
	done
	grep -q ready "$out" || die "tun relay did not start: $(cat "$out")"
	ip -n "$NS_LAN" link set "$TUN_SCAN" netns "$NS_SCAN"
	ip -n "$NS_LAN" link set "$TUN_TGT" netns "$NS_TGT"
	nsx "$NS_SCAN" sysctl -qw "net.ipv6.conf.$TUN_SCAN.disable_ipv6=1"
	nsx "$NS_TGT" sysctl -qw "net.ipv6.conf.$TUN_TGT.disable_ipv6=1"
	ip -n "$NS_SCAN" addr add "$TUN_SCAN4" peer "$TUN_TGT4/32" dev "$TUN_SCAN"
	ip -n "$NS_TGT" addr add "$TUN_TGT4" peer "$TUN_SCAN4/32" dev "$TUN_TGT"
	ip -n "$NS_SCAN" link set "$TUN_SCAN" up
	ip -n "$NS_TGT" link set "$TUN_TGT" up
	nsx "$NS_SCAN" ncat -z -w 2 "$TUN_TGT4" 22 || die "no traffic over the tun link"
	sleep 0.5
}
teardown_tun() {
	kill -TERM "$TUN_RELAY_PID" 2>/dev/null || true
	wait "$TUN_RELAY_PID" 2>/dev/null || true
	TUN_RELAY_PID=""
}

# --- the captures -----------------------------------------------------------------------------
# Each cap_<name> FILE writes one capture file. Scanner is 10.77.0.1, client 10.77.0.3, target
# 10.77.0.2; target open ports: TCP 22, 80, 443, UDP 53.

readonly NMAP=(nmap -n -Pn)

cap_nmap_syn_top1000() { cap_start "$1"; scan 120 "${NMAP[@]}" -sS -T4 --top-ports 1000 "$TGT4"; cap_stop; }
cap_nmap_connect() { cap_start "$1"; scan 120 "${NMAP[@]}" -sT -T4 --top-ports 200 "$TGT4"; cap_stop; }
stealth() { cap_start "$2"; scan 120 "${NMAP[@]}" "$1" -T4 --top-ports 100 "$TGT4"; cap_stop; }
cap_nmap_fin() { stealth -sF "$1"; }
cap_nmap_null() { stealth -sN "$1"; }
cap_nmap_xmas() { stealth -sX "$1"; }
cap_nmap_ack() { stealth -sA "$1"; }
cap_nmap_maimon() { stealth -sM "$1"; }
cap_nmap_window() { stealth -sW "$1"; }
cap_nmap_udp() {
	# Linux rate-limits ICMP port unreachable (1/s after a burst of 6), so most probes of closed
	# ports go unanswered; UDP 53 answers (echo). Bounded at 90 s.
	cap_start "$1"; scan 90 "${NMAP[@]}" -sU -T4 --top-ports 30 --max-retries 1 "$TGT4"; cap_stop
}
cap_nmap_syn_ipv6() { cap_start "$1"; scan 120 "${NMAP[@]}" -6 -sS -T4 --top-ports 100 "$TGT6"; cap_stop; }
# masscan 1.3.2 with libpcap 1.10 (TPACKET_V3) notices the end of its --wait only when a packet
# arrives on its adapter; on a silent link it hangs. While it runs, a ticker in the client namespace
# sends a UDP datagram to the scanner every 0.2 s: unicast through the bridge, so the target (and
# its capture) never sees it. Started before the capture so its ARP exchange is not captured.
TICKER_PID=""
ticker_start() {
	bg_start "$NS_CLI" bash -c "while :; do echo tick >/dev/udp/$SCAN4/9; sleep 0.2; done"
	TICKER_PID=${PIDS[-1]}
	sleep 0.5
}
ticker_stop() { kill -TERM "$TICKER_PID" 2>/dev/null || true; wait "$TICKER_PID" 2>/dev/null || true; }
cap_masscan_syn() {
	ticker_start
	cap_start "$1"
	scan 60 masscan "$TGT4" -p1-1000 --rate 2000 --wait 1 \
		--adapter "$IF_SCAN" --adapter-ip "$SCAN4" --router-mac "$MAC_TGT"
	cap_stop
	ticker_stop
}
cap_hping3_syn() {
	# -p ++1: destination port 1, incremented for every packet sent; 200 packets 2 ms apart.
	cap_start "$1"; bounded_may_fail 30 "$NS_SCAN" hping3 -n -S -p ++1 -c 200 -i u2000 "$TGT4"; cap_stop
}
cap_zmap_syn() {
	# zmap sends to the target's MAC for every address of the /24; the target owns three of them
	# (10.77.1.10/.20/.30), which answer SYN/ACK on port 22; the others are dropped unanswered.
	cap_start "$1"
	scan 60 zmap -p 22 -i "$IF_SCAN" -S "$SCAN4" -G "$MAC_TGT" -b /dev/null -r 1000 -c 2 \
		--disable-syslog -q -o - "$SWEEP_NET"
	cap_stop
}
cap_nmap_syn_filtered() {
	fw_drop 'tcp dport != { 22, 80, 443 } drop'
	cap_start "$1"; scan 150 "${NMAP[@]}" -sS -T4 --top-ports 200 "$TGT4"; cap_stop
	fw_clear
}
cap_nmap_syn_slow() {
	cap_start "$1"; scan 90 "${NMAP[@]}" -sS --scan-delay 1s --max-retries 0 -p 1-40 "$TGT4"; cap_stop
}
cap_nmap_decoy() {
	cap_start "$1"; scan 120 "${NMAP[@]}" -sS -T4 --top-ports 100 -D 10.77.0.50,10.77.0.51,ME "$TGT4"; cap_stop
}
cap_distributed_syn() {
	cap_start "$1"
	local i pids=() rc=0
	for i in 0 1 2 3; do
		scan 120 "${NMAP[@]}" -sS -T4 -S "${DIST4[i]}" -e "$IF_SCAN" -p "$((i * 25 + 1))-$((i * 25 + 25))" "$TGT4" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i" || rc=$?; done
	((rc == 0)) || die "one of the distributed scans failed"
	cap_stop
}
cap_benign_web() {
	# Five concurrent clients, each fetching 50 pages at 20 requests/s: four over HTTP, one over
	# HTTPS. The server speaks HTTP/1.0 and closes every connection, so that is 250 connections to
	# two open ports within about 3 s.
	cap_start "$1"
	bounded 90 "$NS_CLI" bash -c "pids=(); for c in 1 2 3 4; do
			curl -s --rate 20/s \"http://$TGT4/?client=\$c&page=[1-50]\" >/dev/null & pids+=(\$!); done
		curl -s -k --rate 20/s \"https://$TGT4/?client=5&page=[1-50]\" >/dev/null & pids+=(\$!)
		for p in \"\${pids[@]}\"; do wait \$p || exit; done"
	cap_stop
}
cap_benign_monitor() {
	# 10 rounds, 2 s apart, each opening (and at once closing) a new connection to 22, 80 and 443,
	# with bash's /dev/tcp: no process start-up per check, so the rhythm stays regular.
	cap_start "$1"
	bounded 60 "$NS_CLI" bash -c "for r in {1..10}; do for p in 22 80 443; do exec 3<>/dev/tcp/$TGT4/\$p && exec 3>&-; done; sleep 2; done"
	cap_stop
}
cap_benign_one_closed() {
	cap_start "$1"; bounded_may_fail 10 "$NS_CLI" curl -s -m 5 "http://$TGT4:8080/"; cap_stop
}
# client_sysctl NAME VALUE — set a sysctl in the client namespace; client_sysctl_restore undoes all.
CLIENT_SYSCTL_SAVED=()
client_sysctl() {
	local old
	old=$(nsx "$NS_CLI" sysctl -n "$1" 2>/dev/null) || return 0 # absent on this kernel: fine
	CLIENT_SYSCTL_SAVED+=("$1=$old")
	nsx "$NS_CLI" sysctl -qw "$1=$2"
}
client_sysctl_restore() {
	local kv
	for kv in "${CLIENT_SYSCTL_SAVED[@]}"; do nsx "$NS_CLI" sysctl -qw "$kv"; done
	CLIENT_SYSCTL_SAVED=()
}
# Linux >= 6.18 retransmits the first 4 SYNs after 1 s each (tcp_syn_linear_timeouts=4) before
# backing off; older kernels, i.e. most clients out there, double from 1 s: SYNs at 0, 1, 3, 7,
# 15 s. The two "retries" captures use the classic schedule (linear timeouts off, where the knob
# exists); benign-retry-linear shows the new one.
cap_benign_retry_filtered() {
	# Two connects to 587, silently dropped; each lasts 8 s, so the SYN goes out at 0 s and is
	# retransmitted at about 1, 3 and 7 s: 4 SYNs per attempt, 8 in all, two source ports.
	client_sysctl net.ipv4.tcp_syn_linear_timeouts 0
	fw_drop 'tcp dport 587 drop'
	cap_start "$1"
	bounded_may_fail 15 "$NS_CLI" ncat -w 8 "$TGT4" 587
	sleep 2
	bounded_may_fail 15 "$NS_CLI" ncat -w 8 "$TGT4" 587
	cap_stop
	fw_clear
	client_sysctl_restore
}
cap_benign_retry_linear() {
	# One connect to dropped 587 for 8 s with this kernel's default SYN timing; on Linux >= 6.18
	# that is SYNs at 0, 1, 2, 3, 4, 5 and 7 s: 7 packets, one attempt.
	fw_drop 'tcp dport 587 drop'
	cap_start "$1"
	bounded_may_fail 15 "$NS_CLI" ncat -w 8 "$TGT4" 587
	cap_stop
	fw_clear
}
cap_benign_bittorrent_retries() {
	# Four connects to 6881, silently dropped, with tcp_syn_retries=2 in the client namespace:
	# each attempt is 3 SYNs (0, 1, 3 s) from a new source port; attempts 6 s apart.
	client_sysctl net.ipv4.tcp_syn_retries 2
	client_sysctl net.ipv4.tcp_syn_linear_timeouts 0
	fw_drop 'tcp dport 6881 drop'
	cap_start "$1"
	local i
	for i in 1 2 3 4; do
		bounded_may_fail 10 "$NS_CLI" ncat -w 4 "$TGT4" 6881
		((i == 4)) || sleep 2
	done
	cap_stop
	fw_clear
	client_sysctl_restore
}
short_scan() { scan 60 "${NMAP[@]}" -sS -T4 -p 1-50 "$@"; }
cap_variant_sll2() {
	cap_start "$1" any; short_scan "$TGT4"; cap_stop
	gzip -n -9 -c "$1" >"$1.gz"
}
cap_variant_sll() { cap_start "$1" any-sll; short_scan "$TGT4"; cap_stop; }
cap_variant_pcapng() { cap_start "$1" pcapng; short_scan "$TGT4"; cap_stop; }
cap_variant_raw() {
	setup_tun
	cap_start "$1" tun; short_scan -e "$TUN_SCAN" "$TUN_TGT4"; cap_stop
	teardown_tun
}

# quiesce — after a capture, end what would spill into the next one: half-open connections whose
# SYN/ACKs the target would retransmit for a minute (to nmap's decoys, which never answer), and
# neighbour resolutions still in progress for them.
quiesce() {
	nsx "$NS_TGT" ss -K -H state syn-recv >/dev/null 2>&1 || true
	local ns
	for ns in "$NS_SCAN" "$NS_TGT" "$NS_CLI"; do
		ip -n "$ns" neigh flush nud incomplete >/dev/null 2>&1 || true
		ip -n "$ns" neigh flush nud failed >/dev/null 2>&1 || true
	done
}

# --- big.pcap ---------------------------------------------------------------------------------

make_big() {
	local n=$1 file=$WORK/big.pcap err=$WORK/capture.err round=0 deadline=$((SECONDS + 3600)) i
	log "big.pcap: capturing $n packets of mixed scans and benign traffic"
	: >"$err"
	ip netns exec "$NS_TGT" tcpdump -i "$IF_TGT" -s "$SNAP" -n -B 65536 -c "$n" -Z root -w "$file" 2>"$err" &
	CAP_PID=$!
	PIDS+=("$CAP_PID")
	for ((i = 0; i < 100; i++)); do grep -q 'listening on' "$err" && break; sleep 0.1; done
	grep -q 'listening on' "$err" || die "capture did not start: $(cat "$err")"
	ticker_start
	while kill -0 "$CAP_PID" 2>/dev/null; do
		((SECONDS < deadline)) || die "big.pcap: gave up after an hour"
		round=$((round + 1))
		log "big.pcap: round $round"
		local pids=()
		# benign: 1000 web requests over new connections
		bounded_may_fail 120 "$NS_CLI" curl -s -k --parallel --parallel-max 8 \
			"http://$TGT4/?round=$round&page=[1-800]" "https://$TGT4/?round=$round&page=[1-200]" -o /dev/null &
		pids+=($!)
		# distributed: 4 sources, top 1000 each
		for i in 0 1 2 3; do
			bounded_may_fail 120 "$NS_SCAN" "${NMAP[@]}" -sS -T4 -S "${DIST4[i]}" -e "$IF_SCAN" --top-ports 1000 "$TGT4" &
			pids+=($!)
		done
		# vertical full-range sweep, then a horizontal one
		bounded_may_fail 120 "$NS_SCAN" masscan "$TGT4" -p0-65535 --rate 20000 --wait 1 \
			--adapter "$IF_SCAN" --adapter-ip "$SCAN4" --router-mac "$MAC_TGT"
		bounded_may_fail 60 "$NS_SCAN" zmap -p 80 -i "$IF_SCAN" -S "$SCAN4" -G "$MAC_TGT" -b /dev/null \
			-r 2000 -c 1 --disable-syslog -q -o /dev/null "$SWEEP_NET"
		for i in "${pids[@]}"; do wait "$i" || true; done
	done
	ticker_stop
	wait "$CAP_PID" || true
	CAP_PID=""
}

# --- main -------------------------------------------------------------------------------------

count_packets() { tcpdump -nr "$1" 2>/dev/null | wc -l; }

setup_lab
SECONDS=0
if [[ -n $BIG ]]; then
	make_big "$BIG"
	install -m 0644 "$WORK/big.pcap" "$OUT/big.pcap"
	log "wrote $OUT/big.pcap: $(count_packets "$OUT/big.pcap") packets, $(du -h "$OUT/big.pcap" | cut -f1)"
	exit 0
fi

made=0
for c in "${CAPTURES[@]}"; do
	IFS=: read -r name file _ <<<"$c"
	if ((${#WANT[@]})); then
		hit=""
		for w in "${WANT[@]}"; do [[ $w == "$name" ]] && hit=1; done
		[[ -n $hit ]] || continue
	fi
	start=$SECONDS
	"cap_${name//-/_}" "$WORK/$file"
	quiesce
	for f in "$WORK/$file" "$WORK/$file.gz"; do
		[[ -e $f ]] || continue
		install -m 0644 "$f" "$OUT/${f##*/}"
		chown --reference="$OUT" "$OUT/${f##*/}" 2>/dev/null || true
	done
	packets=$(count_packets "$OUT/$file")
	((packets > 0)) || die "$file holds no packets"
	log "$(printf '%-34s %6s packets %6s bytes %3ss' "$file" "$packets" "$(stat -c %s "$OUT/$file")" \
		$((SECONDS - start)))"
	made=$((made + 1))
done
log "made $made capture(s) in $OUT in ${SECONDS}s"
