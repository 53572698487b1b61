package connwatch

import (
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

func readTestFormat(t *testing.T) (string, format) {
	t.Helper()
	b, err := os.ReadFile("testdata/inet_sock_set_state-6.18.format")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parseFormat(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return string(b), f
}

func TestParseFormat(t *testing.T) {
	_, f := readTestFormat(t)
	want := map[string]field{
		"common_pid": {4, 4, true},
		"skaddr":     {8, 8, false},
		"newstate":   {20, 4, true},
		"dport":      {26, 2, false},
		"protocol":   {30, 2, false},
		"saddr":      {32, 4, false},
		"daddr_v6":   {56, 16, false},
	}
	for name, w := range want {
		if f[name] != w {
			t.Errorf("%s: got %+v, want %+v", name, f[name], w)
		}
	}
	if err := checkFormat(f); err != nil {
		t.Error(err)
	}
}

func TestParseFormatErrors(t *testing.T) {
	for _, text := range []string{
		"\tfield:int x;\toffset:abc;\tsize:4;\tsigned:1;",
		"\tfield:int x;\tsize:4;\tsigned:1;",
		"\tfield:;\toffset:8;\tsize:4;",
		"\tfield:int x;\toffset:8;\tsize:0;",
	} {
		if f, err := parseFormat(text); err == nil {
			t.Errorf("%q: parsed as %v", text, f)
		}
	}
}

func TestCheckFormat(t *testing.T) {
	text, _ := readTestFormat(t)
	for _, tc := range []struct{ name, from, to, want string }{
		{"missing field", "daddr_v6[16]", "dst6[16]", `no field "daddr_v6"`},
		{"wrong size", "size:4;\tsigned:1;\n\tfield:__u16 sport", "size:8;\tsigned:1;\n\tfield:__u16 sport", "newstate"},
		{"misaligned", "dport;\toffset:26;", "dport;\toffset:27;", "not aligned"},
		{"in the common header", "newstate;\toffset:20;", "newstate;\toffset:4;", "outside"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changed := strings.Replace(text, tc.from, tc.to, 1)
			if changed == text {
				t.Fatalf("%q not in the format file", tc.from)
			}
			f, err := parseFormat(changed)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkFormat(f); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error about %s", err, tc.want)
			}
		})
	}
}

// TestProgramFollowsFormat moves every field by 16 bytes and checks that
// the program's context loads move with them: offsets come from the format
// file, not from the kernel this was written on.
func TestProgramFollowsFormat(t *testing.T) {
	_, f := readTestFormat(t)
	moved := format{}
	for name, fl := range f {
		if fl.Offset >= minCtxOffset {
			fl.Offset += 16
		}
		moved[name] = fl
	}
	if err := checkFormat(moved); err != nil {
		t.Fatal(err)
	}
	ctxLoads := func(f format) map[int16]bool {
		m := map[int16]bool{}
		for _, ins := range program(f, 3, 4) {
			if ins.OpCode.Class() == asm.LdXClass && ins.Src == asm.R6 {
				m[ins.Offset] = true
			}
		}
		return m
	}
	orig, got := ctxLoads(f), ctxLoads(moved)
	if len(orig) == 0 || len(orig) != len(got) {
		t.Fatalf("context loads: %v, moved: %v", orig, got)
	}
	for off := range orig {
		if !got[off+16] {
			t.Errorf("load at %d did not move to %d (got %v)", off, off+16, got)
		}
	}
	for _, name := range []string{"newstate", "protocol", "family", "dport", "saddr", "daddr", "saddr_v6", "daddr_v6"} {
		if !orig[int16(f[name].Offset)] {
			t.Errorf("no load of %s at %d", name, f[name].Offset)
		}
	}
}
