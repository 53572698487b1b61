#!/usr/bin/env bash
# Runs every test of scanwarden: formatting and vet, unit and scenario tests,
# the fuzz targets' seed corpora, and — as root — the end-to-end tests that
# drive real nmap, masscan, hping3 and zmap in network namespaces.
#
# As root on Debian/Ubuntu it first installs the tools the tests need.
# Environment: FUZZTIME=30s also fuzzes each target for that long.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -x /usr/local/go/bin/go ]; then PATH=/usr/local/go/bin:$PATH; fi
if ! command -v go >/dev/null; then
	echo "test.sh: Go is not installed (want Go 1.25 or newer in PATH or /usr/local/go)" >&2
	exit 1
fi

tools=(nmap masscan hping3 zmap tcpdump tshark ncat nft ip curl python3)
pkgs=(nmap masscan hping3 zmap tcpdump tshark ncat nftables iproute2 curl python3)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
	missing=()
	for i in "${!tools[@]}"; do
		command -v "${tools[$i]}" >/dev/null || missing+=("${pkgs[$i]}")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		echo "test.sh: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
			{ apt-get update -q >/dev/null && apt-get install -y -q "${missing[@]}" >/dev/null; }
	fi
elif [ "$(id -u)" != 0 ]; then
	echo "test.sh: not root: end-to-end tests (network namespaces, real scanners) will be skipped" >&2
fi

echo "== gofmt, go vet"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change: $unformatted" >&2
	exit 1
fi
go vet ./...

echo "== unit, scenario and end-to-end tests"
go test -count=1 -timeout 60m ./...

if [ -n "${FUZZTIME:-}" ]; then
	echo "== fuzzing, $FUZZTIME per target"
	# Every package with a fuzz target: decoders, log and list parsers,
	# importers.
	for pkg in $(grep -rl --include='*_test.go' '^func Fuzz' internal cmd | xargs -n1 dirname | sort -u | sed 's|^|./|'); do
		for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
			go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" "$pkg"
		done
	done
fi
echo "== all tests passed"
