package attribute

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFormatCommand(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nmap\x00-sS\x0010.0.0.0/24\x00", "nmap -sS 10.0.0.0/24"},
		{"sh\x00-c\x00echo a\nb\x1b[31m", `sh -c echo a\nb\x1b[31m`},
		{"a\\b\x00\xff", `a\\b \xff`},
		{"", ""},
		{"\x00\x00", ""},
		{"héllo", "héllo"},
	}
	for _, tt := range tests {
		if got := formatCommand([]byte(tt.in)); got != tt.want {
			t.Errorf("formatCommand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long := formatCommand([]byte(strings.Repeat("é", 300)))
	if len(long) > maxCommand || !strings.HasSuffix(long, "…") || !strings.HasPrefix(long, "éé") {
		t.Errorf("long command: %d bytes, %q", len(long), long)
	}
}

func TestNetInodes(t *testing.T) {
	raw := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
		"   6: 00000000:0006 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 912345 2 0000000000000000 0\n"
	if got := netInodes([]byte(raw), rawInodeCol); !slices.Equal(got, []uint32{912345}) {
		t.Errorf("raw: %v", got)
	}
	packet := "sk               RefCnt Type Proto  Iface R Rmem   User   Inode\n" +
		"0000000000000000 3      3    0003   2     1 0      0      54321\n" +
		"0000000000000000 3      3    0003   2     1 0      0      0\n\n"
	if got := netInodes([]byte(packet), packetInodeCol); !slices.Equal(got, []uint32{54321}) {
		t.Errorf("packet: %v", got)
	}
	if got := netInodes(nil, 8); got != nil {
		t.Errorf("empty: %v", got)
	}
}

// fakeProc lays out a /proc with one process per entry of socks.
func fakeProc(t *testing.T, socks map[int][]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, links := range socks {
		dir := filepath.Join(root, strconv.Itoa(pid))
		must(t, os.MkdirAll(filepath.Join(dir, "fd"), 0o755))
		for i, l := range links {
			must(t, os.Symlink(l, filepath.Join(dir, "fd", strconv.Itoa(i))))
		}
		must(t, os.WriteFile(filepath.Join(dir, "cmdline"), []byte("scan\x00--fast\x00"), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "status"), []byte("Name:\tscan\nUid:\t4242\t0\t0\t0\nGid:\t0\n"), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "cgroup"), []byte("0::/system.slice/scan.service\n"), 0o644))
	}
	return root
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestInodeOwners(t *testing.T) {
	root := fakeProc(t, map[int][]string{
		100: {"socket:[11]", "/dev/null", "socket:[12]"},
		200: {"socket:[12]", "pipe:[13]"},
	})
	o := inodeOwners{proc: root, interval: time.Hour}
	now := time.Now()
	if got := o.lookup(12, now); !slices.Equal(got, []int{100, 200}) {
		t.Errorf("lookup(12) = %v, want [100 200]", got)
	}
	if got := o.lookup(13, now); got != nil {
		t.Errorf("lookup(13) (a pipe) = %v", got)
	}
	// Process 100 closes socket 11; the cache must not report it, and the
	// rate limit must stop a second full scan within the interval.
	must(t, os.Remove(filepath.Join(root, "100", "fd", "0")))
	must(t, os.MkdirAll(filepath.Join(root, "300", "fd"), 0o755))
	must(t, os.Symlink("socket:[14]", filepath.Join(root, "300", "fd", "0")))
	if got := o.lookup(11, now.Add(time.Second)); got != nil {
		t.Errorf("lookup(11) after close = %v", got)
	}
	if got := o.lookup(14, now.Add(time.Second)); got != nil {
		t.Errorf("lookup(14) within the rescan interval = %v, want nothing (rate-limited)", got)
	}
	if got := o.lookup(14, now.Add(2*time.Hour)); !slices.Equal(got, []int{300}) {
		t.Errorf("lookup(14) after the interval = %v, want [300]", got)
	}
}

func TestReadActor(t *testing.T) {
	root := fakeProc(t, map[int][]string{100: {"socket:[11]"}})
	a := New(Options{Proc: root})
	a.mu.Lock()
	got := a.readActor(100)
	a.mu.Unlock()
	want := Actor{PID: 100, User: "4242", UID: 4242, Command: "scan --fast", Cgroup: "/system.slice/scan.service", Unit: "scan.service"}
	if u := got.User; u != "4242" {
		want.User = u // uid 4242 may have a name on this machine
	}
	if got != want {
		t.Errorf("readActor = %+v\nwant %+v", got, want)
	}
}
