package connwatch

import (
	"errors"
	"os"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// fakeSock builds a struct sock shaped like the kernel's: the fields the
// raw program reads sit in __sk_common, some inside anonymous unions and
// structs, and sk_protocol in sock itself.
func fakeSock(protocolBits btf.Bits) *btf.Struct {
	u16 := &btf.Int{Name: "u16", Size: 2}
	u32 := &btf.Int{Name: "__be32", Size: 4}
	u64 := &btf.Int{Name: "u64", Size: 8}
	in6 := &btf.Struct{Name: "in6_addr", Size: 16, Members: []btf.Member{
		{Name: "in6_u", Type: &btf.Array{Type: &btf.Int{Name: "u8", Size: 1}, Nelems: 16}},
	}}
	common := &btf.Struct{Name: "sock_common", Size: 136, Members: []btf.Member{
		{Name: "", Offset: 0, Type: &btf.Union{Size: 8, Members: []btf.Member{
			{Name: "skc_addrpair", Type: u64},
			{Name: "", Type: &btf.Struct{Size: 8, Members: []btf.Member{
				{Name: "skc_daddr", Offset: 0, Type: u32},
				{Name: "skc_rcv_saddr", Offset: 32, Type: &btf.Typedef{Name: "__be32", Type: u32}},
			}}},
		}}},
		{Name: "", Offset: 12 * 8, Type: &btf.Struct{Size: 4, Members: []btf.Member{
			{Name: "skc_dport", Offset: 0, Type: u16},
			{Name: "skc_num", Offset: 16, Type: u16},
		}}},
		{Name: "skc_family", Offset: 16 * 8, Type: u16},
		{Name: "skc_v6_daddr", Offset: 56 * 8, Type: in6},
		{Name: "skc_v6_rcv_saddr", Offset: 72 * 8, Type: in6},
	}}
	return &btf.Struct{Name: "sock", Size: 800, Members: []btf.Member{
		{Name: "__sk_common", Offset: 0, Type: common},
		{Name: "sk_type", Offset: 512 * 8, Type: u16, BitfieldSize: protocolBits},
		{Name: "sk_protocol", Offset: 514 * 8, Type: u16, BitfieldSize: protocolBits},
	}}
}

func TestSockLayoutOf(t *testing.T) {
	l, err := sockLayoutOf(fakeSock(0))
	if err != nil {
		t.Fatal(err)
	}
	want := sockLayout{
		Protocol: sockField{514, 2}, Family: sockField{16, 2}, Dport: sockField{12, 2},
		Saddr4: sockField{4, 4}, Daddr4: sockField{0, 4},
		Saddr6: sockField{72, 16}, Daddr6: sockField{56, 16},
		commonLo: 0, commonHi: 88,
	}
	if l != want {
		t.Errorf("layout\n got %+v\nwant %+v", l, want)
	}
	// Before Linux 5.6 sk_protocol was an 8-bit bitfield: refused, and
	// the classic tracepoint is used instead.
	if _, err := sockLayoutOf(fakeSock(8)); !errors.Is(err, errNoLayout) {
		t.Errorf("bitfield sk_protocol: err %v, want errNoLayout", err)
	}
	// A struct without the fields.
	if _, err := sockLayoutOf(&btf.Struct{Name: "sock"}); !errors.Is(err, errNoLayout) {
		t.Errorf("empty struct sock: err %v, want errNoLayout", err)
	}
}

// TestKernelSockLayout reads this kernel's layout: with BTF the fields
// must be found where the raw program can read them; without, it must say
// so (and Open then uses the classic tracepoint).
func TestKernelSockLayout(t *testing.T) {
	l, err := loadSockLayout()
	if _, statErr := os.Stat("/sys/kernel/btf/vmlinux"); statErr != nil {
		if err == nil {
			t.Errorf("no kernel BTF (%v), yet a layout: %+v", statErr, l)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v", l)
	if l.Family.Offset >= l.commonHi || l.Daddr6.Offset+16 > l.commonHi || l.commonHi-l.commonLo > maxCommonSpan {
		t.Errorf("layout out of its span: %+v", l)
	}
}
