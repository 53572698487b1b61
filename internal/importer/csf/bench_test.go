package csf

import (
	"fmt"
	"strings"
	"testing"
)

// BenchmarkConvertServer converts testdata/csf/server, CSF's 130 KB
// csf.conf and a few lists.
func BenchmarkConvertServer(b *testing.B) {
	in, err := ReadDir(fixtures + "/server")
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Convert(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkConvertLargeLists converts a csf.deny of 20,000 blocks (lfd
// keeps that many with LF_IPSET and a raised DENY_IP_LIMIT) against a
// csf.allow of 2,000: each block is checked against the allow lists and the
// blocks before it, which must not cost the product of the two.
func BenchmarkConvertLargeLists(b *testing.B) {
	var deny, allow strings.Builder
	for i := 0; i < 20000; i++ {
		fmt.Fprintf(&deny, "10.%d.%d.%d # lfd: *Port Scan* detected\n", i>>16, i>>8&255, i&255)
	}
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&allow, "172.16.%d.%d\n", i>>8, i&255)
	}
	in := files(tracking, "csf.deny", deny.String(), "csf.allow", allow.String())
	for b.Loop() {
		res, err := Convert(in)
		if err != nil || len(res.Bans) != 20000 {
			b.Fatal(err)
		}
	}
}
