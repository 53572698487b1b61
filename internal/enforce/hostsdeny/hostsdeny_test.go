package hostsdeny

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/scanwarden/scanwarden/internal/enforce"
)

var ctx = context.Background()

// original is a hosts.deny with the awkward parts: comments, a
// continuation line, CRLF, trailing spaces, and no newline at the end.
const original = "# /etc/hosts.deny: list of hosts that are _not_ allowed to access the system.\n" +
	"#\n" +
	"ALL: PARANOID\n" +
	"sshd: 203.0.113.5, \\\n" +
	"      203.0.113.6\n" +
	"in.telnetd: .example.com   \r\n" +
	"\n" +
	"portmap: ALL"

func newEnforcer(t *testing.T, content string, cfg Config) *Enforcer {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "hosts.deny")
	}
	if content != "" {
		if err := os.WriteFile(cfg.Path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	return e
}

func bans(ps ...string) []enforce.Ban {
	var out []enforce.Ban
	for _, p := range ps {
		out = append(out, enforce.Ban{Prefix: netip.MustParsePrefix(p)})
	}
	return out
}

func prefixes(ps ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, p := range ps {
		out = append(out, netip.MustParsePrefix(p))
	}
	return out
}

func read(t *testing.T, e *Enforcer) string {
	t.Helper()
	b, err := os.ReadFile(e.Path())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func listed(t *testing.T, e *Enforcer) []string {
	t.Helper()
	bs, err := e.Bans(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bs {
		if !b.Expires.IsZero() {
			t.Errorf("%v has an expiry", b.Prefix)
		}
		out = append(out, b.Prefix.String())
	}
	return out
}

func apply(t *testing.T, e *Enforcer, add []enforce.Ban, remove []netip.Prefix) {
	t.Helper()
	if err := e.Apply(ctx, add, remove); err != nil {
		t.Fatal(err)
	}
}

func TestPattern(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"192.0.2.7/32", "ALL: 192.0.2.7"},
		{"198.51.100.0/24", "ALL: 198.51.100.0/255.255.255.0"},
		{"198.51.100.77/24", "ALL: 198.51.100.0/255.255.255.0"},
		{"10.0.0.0/8", "ALL: 10.0.0.0/255.0.0.0"},
		{"172.16.0.0/12", "ALL: 172.16.0.0/255.240.0.0"},
		{"192.0.2.128/25", "ALL: 192.0.2.128/255.255.255.128"},
		{"0.0.0.0/0", "ALL: 0.0.0.0/0.0.0.0"},
		{"2001:db8::7/128", "ALL: [2001:db8::7]"},
		{"2001:db8:1::/48", "ALL: [2001:db8:1::]/48"},
		{"2001:db8:1:2:3::/64", "ALL: [2001:db8:1:2::]/64"},
		{"fe80::1/128", "ALL: [fe80::1]"},
		{"::ffff:192.0.2.7/128", "ALL: 192.0.2.7"},
		{"::ffff:192.0.2.0/120", "ALL: 192.0.2.0/255.255.255.0"},
	} {
		p, err := normalize(netip.MustParsePrefix(tc.in))
		if err != nil {
			t.Fatal(err)
		}
		got := render(DefaultLine, p)
		if got != tc.want {
			t.Errorf("%s: %q, want %q", tc.in, got, tc.want)
		}
		back, ok := parseEntry(got, DefaultLine)
		if !ok || back != p {
			t.Errorf("%s: %q reads back as %v %v", tc.in, got, back, ok)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	e := newEnforcer(t, original, Config{})
	if got := read(t, e); got != original {
		t.Fatalf("Setup changed a file without a block:\n%q", got)
	}
	apply(t, e, bans("192.0.2.7/32", "2001:db8::7/128", "198.51.100.0/24", "2001:db8:1::/48"), nil)
	want := original + "\n" +
		"# BEGIN scanwarden: managed block, do not edit\n" +
		"ALL: 192.0.2.7\n" +
		"ALL: [2001:db8::7]\n" +
		"ALL: 198.51.100.0/255.255.255.0\n" +
		"ALL: [2001:db8:1::]/48\n" +
		"# END scanwarden\n"
	if got := read(t, e); got != want {
		t.Fatalf("file:\n%s\nwant:\n%s", got, want)
	}
	if got := listed(t, e); !slices.Equal(got, []string{"192.0.2.7/32", "2001:db8::7/128", "198.51.100.0/24", "2001:db8:1::/48"}) {
		t.Errorf("Bans: %v", got)
	}

	apply(t, e, nil, prefixes("2001:db8::7/128", "198.51.100.0/24"))
	if got := listed(t, e); !slices.Equal(got, []string{"192.0.2.7/32", "2001:db8:1::/48"}) {
		t.Errorf("Bans after removal: %v", got)
	}

	// Lines added around the block by someone else stay.
	data := "ALL: 203.0.113.99\n" + read(t, e) + "sshd: 203.0.113.100\n"
	os.WriteFile(e.Path(), []byte(data), 0o644)
	apply(t, e, bans("192.0.2.8/32"), nil)
	got := read(t, e)
	if !strings.HasPrefix(got, "ALL: 203.0.113.99\n"+original) || !strings.HasSuffix(got, "ALL: 192.0.2.8\n# END scanwarden\nsshd: 203.0.113.100\n") {
		t.Errorf("lines around the block were not kept:\n%s", got)
	}

	if err := e.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(t, e); got != "ALL: 203.0.113.99\n"+original+"\nsshd: 203.0.113.100\n" {
		t.Errorf("after Teardown:\n%q", got)
	}
	if got := listed(t, e); len(got) != 0 {
		t.Errorf("Bans after Teardown: %v", got)
	}
	if err := e.Teardown(ctx); err != nil {
		t.Errorf("second Teardown: %v", err)
	}
}

func TestIdempotent(t *testing.T) {
	e := newEnforcer(t, "ALL: PARANOID\n", Config{})
	apply(t, e, bans("192.0.2.7/32", "192.0.2.7/32", "192.0.2.9/24"), nil)
	before := read(t, e)
	fi1, _ := os.Stat(e.Path())
	ino1 := fi1.Sys().(*syscall.Stat_t).Ino

	// The same again, a removal of what is not there, a v4-mapped and an
	// unmasked spelling of what is there: no change, no write.
	apply(t, e, bans("192.0.2.7/32", "::ffff:192.0.2.7/128", "192.0.2.0/24"), prefixes("203.0.113.1/32"))
	if err := e.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	fi2, _ := os.Stat(e.Path())
	if ino2 := fi2.Sys().(*syscall.Stat_t).Ino; ino2 != ino1 || read(t, e) != before {
		t.Errorf("a no-op rewrote the file:\n%s", read(t, e))
	}
	if got := listed(t, e); !slices.Equal(got, []string{"192.0.2.7/32", "192.0.2.0/24"}) {
		t.Errorf("Bans: %v", got)
	}

	// Removing everything leaves an empty block, still ours.
	apply(t, e, nil, prefixes("192.0.2.7/32", "192.0.2.0/24"))
	want := "ALL: PARANOID\n# BEGIN scanwarden: managed block, do not edit\n# END scanwarden\n"
	if got := read(t, e); got != want {
		t.Errorf("empty block:\n%q", got)
	}
}

func TestCreatesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.deny")
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	e := newEnforcer(t, "", Config{Path: path})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal("Setup did not create the file:", err)
	}
	if fi.Mode().Perm() != 0o644 || fi.Size() != 0 {
		t.Errorf("created %v, %d bytes", fi.Mode(), fi.Size())
	}
	apply(t, e, bans("192.0.2.7/32"), nil)
	want := "# BEGIN scanwarden: managed block, do not edit\nALL: 192.0.2.7\n# END scanwarden\n"
	if got := read(t, e); got != want {
		t.Errorf("file:\n%q", got)
	}
	// Deleted behind our back: recreated by the next Apply.
	os.Remove(path)
	apply(t, e, bans("192.0.2.8/32"), nil)
	if got := listed(t, e); !slices.Equal(got, []string{"192.0.2.8/32"}) {
		t.Errorf("Bans: %v", got)
	}
}

func TestAdoptsBlock(t *testing.T) {
	// A block left by a previous run, written with another Line, with a
	// duplicate, a comment and a line someone added by hand.
	prev := "ALL: PARANOID\n" +
		"# BEGIN scanwarden: managed block, do not edit\n" +
		"sshd: 192.0.2.7\n" +
		"sshd: [2001:db8::7]\n" +
		"sshd: 192.0.2.7\n" +
		"# a note\n" +
		"this is not an entry\n" +
		"# END scanwarden\n" +
		"portmap: ALL\n"
	e := newEnforcer(t, prev, Config{})
	want := "ALL: PARANOID\n" +
		"# BEGIN scanwarden: managed block, do not edit\n" +
		"ALL: 192.0.2.7\n" +
		"ALL: [2001:db8::7]\n" +
		"# a note\n" +
		"this is not an entry\n" +
		"# END scanwarden\n" +
		"portmap: ALL\n"
	if got := read(t, e); got != want {
		t.Errorf("after Setup:\n%s\nwant:\n%s", got, want)
	}
	if got := listed(t, e); !slices.Equal(got, []string{"192.0.2.7/32", "2001:db8::7/128"}) {
		t.Errorf("Bans: %v", got)
	}
	if err := e.Teardown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := read(t, e); got != "ALL: PARANOID\n# a note\nthis is not an entry\nportmap: ALL\n" {
		t.Errorf("after Teardown:\n%q", got)
	}
}

func TestCustomLine(t *testing.T) {
	e := newEnforcer(t, "", Config{Line: "sshd, in.ftpd : $TARGET$ : DENY"})
	apply(t, e, bans("192.0.2.7/32", "2001:db8::/32"), nil)
	if got := read(t, e); !strings.Contains(got, "\nsshd, in.ftpd : 192.0.2.7 : DENY\nsshd, in.ftpd : [2001:db8::]/32 : DENY\n") {
		t.Errorf("file:\n%s", got)
	}
	if got := listed(t, e); !slices.Equal(got, []string{"192.0.2.7/32", "2001:db8::/32"}) {
		t.Errorf("Bans: %v", got)
	}
}

func TestBrokenBlock(t *testing.T) {
	for name, data := range map[string]string{
		"no end":       "ALL: PARANOID\n# BEGIN scanwarden\nALL: 192.0.2.7\n",
		"nested":       "# BEGIN scanwarden\n# BEGIN scanwarden\n# END scanwarden\n",
		"second block": "# BEGIN scanwarden\n# END scanwarden\n# BEGIN scanwarden\n# END scanwarden\n",
	} {
		path := filepath.Join(t.TempDir(), "hosts.deny")
		os.WriteFile(path, []byte(data), 0o644)
		e, _ := New(Config{Path: path})
		err1 := e.Setup(ctx)
		err2 := e.Apply(ctx, bans("192.0.2.8/32"), nil)
		if err1 == nil || err2 == nil || !strings.Contains(err1.Error(), path+":") {
			t.Errorf("%s: Setup %v, Apply %v", name, err1, err2)
		}
		if b, _ := os.ReadFile(path); string(b) != data {
			t.Errorf("%s: the file was changed", name)
		}
	}
}

func TestContinuationBeforeBlock(t *testing.T) {
	e := newEnforcer(t, "sshd: 203.0.113.5 \\\n", Config{})
	apply(t, e, bans("192.0.2.7/32"), nil)
	want := "sshd: 203.0.113.5 \\\n\n# BEGIN scanwarden: managed block, do not edit\nALL: 192.0.2.7\n# END scanwarden\n"
	if got := read(t, e); got != want {
		t.Errorf("file:\n%q", got)
	}
}

func TestKeepsModeAndOwner(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.deny")
	os.WriteFile(path, []byte(original), 0o600)
	os.Chmod(path, 0o640)
	if os.Geteuid() == 0 {
		if err := os.Chown(path, 1234, 5678); err != nil {
			t.Fatal(err)
		}
	}
	e := newEnforcer(t, "", Config{Path: path})
	apply(t, e, bans("192.0.2.7/32"), nil)
	apply(t, e, nil, prefixes("192.0.2.7/32"))
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want 0640", fi.Mode().Perm())
	}
	if st := fi.Sys().(*syscall.Stat_t); os.Geteuid() == 0 && (st.Uid != 1234 || st.Gid != 5678) {
		t.Errorf("owner %d:%d, want 1234:5678", st.Uid, st.Gid)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("left behind in the directory: %v", ents)
	}
}

func TestSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	real := filepath.Join(dir, "real")
	link := filepath.Join(dir, "hosts.deny")
	os.WriteFile(real, []byte(original), 0o644)
	os.Symlink(real, link)
	e, err := New(Config{Path: link})
	if err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"Setup":    e.Setup(ctx),
		"Apply":    e.Apply(ctx, bans("192.0.2.7/32"), nil),
		"Teardown": e.Teardown(ctx),
	} {
		if err == nil || !strings.Contains(err.Error(), "symbolic link") || !strings.Contains(err.Error(), real) {
			t.Errorf("%s through a symlink: %v", name, err)
		}
	}
	if _, err := e.Bans(ctx); err == nil {
		t.Error("Bans through a symlink")
	}
	if fi, _ := os.Lstat(link); fi.Mode()&os.ModeSymlink == 0 {
		t.Error("the symlink was replaced")
	}
	if b, _ := os.ReadFile(real); string(b) != original {
		t.Error("the link's target was changed")
	}
}

func TestNew(t *testing.T) {
	e, err := New(Config{})
	if err != nil || e.Path() != DefaultPath || e.line != DefaultLine {
		t.Errorf("defaults: %v %+v", err, e)
	}
	for _, cfg := range []Config{
		{Path: "hosts.deny"},
		{Line: "ALL: 192.0.2.1"},
		{Line: "ALL: $TARGET$\nALL: ALL"},
		{Line: "ALL: $TARGET$\r"},
		{Line: "# ALL: $TARGET$"},
		{Line: `ALL: $TARGET$ \`},
		{Line: "$TARGET$"},
		{Line: "ALL: $TARGET$\x00"},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// TestAtomic: a reader never sees a partial file while entries come and
// go, and concurrent Apply calls lose nothing.
func TestAtomic(t *testing.T) {
	e := newEnforcer(t, original, Config{})
	var stop = make(chan struct{})
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, err := os.ReadFile(e.Path())
			if err != nil {
				t.Error(err)
				return
			}
			s := string(b)
			if !strings.HasPrefix(s, original) || strings.Count(s, beginMarker) != strings.Count(s, endMarker) ||
				(strings.Contains(s, beginMarker) && !strings.HasSuffix(s, endMarker+"\n")) {
				t.Errorf("a reader saw:\n%q", s)
				return
			}
		}
	}()
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := range 25 {
				p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(w), byte(i), 1}), 32)
				if err := e.Apply(ctx, []enforce.Ban{{Prefix: p}}, nil); err != nil {
					t.Error(err)
				}
				if i%2 == 1 {
					if err := e.Apply(ctx, nil, []netip.Prefix{p}); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	if got := listed(t, e); len(got) != 4*13 {
		t.Errorf("%d entries, want %d", len(got), 4*13)
	}
	ents, _ := os.ReadDir(filepath.Dir(e.Path()))
	if len(ents) != 1 {
		t.Errorf("left behind: %v", ents)
	}
}

// TestConcurrentAppend: a line another program appends between our read
// and our rename is not lost.
func TestConcurrentAppend(t *testing.T) {
	e := newEnforcer(t, original, Config{})
	apply(t, e, bans("192.0.2.7/32"), nil)
	c, st, err := e.read(false)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(e.Path(), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("sshd: 203.0.113.200\n")
	f.Close()
	c.add(netip.MustParsePrefix("192.0.2.8/32"))
	c.canonicalize(e.line)
	if err := e.write(c.render(), st); err != errChanged {
		t.Fatalf("write over a changed file: %v", err)
	}
	apply(t, e, bans("192.0.2.8/32"), nil)
	if got := read(t, e); !strings.HasSuffix(got, "# END scanwarden\nsshd: 203.0.113.200\n") {
		t.Errorf("the appended line was lost:\n%s", got)
	}
}

func TestContextDone(t *testing.T) {
	e := newEnforcer(t, original, Config{})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := e.Apply(cctx, bans("192.0.2.7/32"), nil); err == nil {
		t.Error("Apply with a cancelled context")
	}
	if read(t, e) != original {
		t.Error("written anyway")
	}
}

var _ enforce.Enforcer = (*Enforcer)(nil)

// TestReadOnlyDirectoryWritesInPlace: under systemd's ProtectSystem=strict
// with only the file itself writable, the directory refuses a temporary
// file; the block is then rewritten in place. Root ignores directory
// permissions, so as root the test runs its body in a child process as
// nobody, on a directory nobody cannot write and a file nobody owns.
func TestReadOnlyDirectoryWritesInPlace(t *testing.T) {
	if path := os.Getenv("SW_HOSTSDENY_INPLACE"); path != "" {
		inPlaceBody(t, path)
		return
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.deny")
	os.WriteFile(path, []byte("sshd: 192.0.2.66\n"), 0o644)
	if os.Geteuid() != 0 {
		os.Chmod(dir, 0o555)
		defer os.Chmod(dir, 0o755)
		inPlaceBody(t, path)
	} else {
		os.Chown(path, 65534, 65534)
		os.Chmod(dir, 0o555)
		os.Chmod(filepath.Dir(dir), 0o755)
		defer os.Chmod(dir, 0o755)
		// The test binary lives in a directory only root may enter.
		bin := filepath.Join(t.TempDir(), "hostsdeny.test")
		if data, err := os.ReadFile(os.Args[0]); err != nil || os.WriteFile(bin, data, 0o755) != nil {
			t.Fatalf("copying the test binary: %v", err)
		}
		os.Chmod(filepath.Dir(bin), 0o755)
		os.Chmod(filepath.Dir(filepath.Dir(bin)), 0o755)
		cmd := exec.Command(bin, "-test.run=^TestReadOnlyDirectoryWritesInPlace$", "-test.v")
		cmd.Env = append(os.Environ(), "SW_HOSTSDENY_INPLACE="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("as nobody: %v\n%s", err, out)
		}
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), "ALL: 198.51.100.7") || !strings.Contains(string(b), "sshd: 192.0.2.66") {
		t.Fatalf("after an in-place write:\n%s", b)
	}
}

func inPlaceBody(t *testing.T, path string) {
	if f, err := os.CreateTemp(filepath.Dir(path), "probe-*"); err == nil {
		f.Close()
		os.Remove(f.Name())
		t.Fatal("the directory is writable: the test would not exercise the in-place write")
	}
	e, err := New(Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := e.Setup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.Apply(ctx, []enforce.Ban{{Prefix: netip.MustParsePrefix("198.51.100.7/32")}}, nil); err != nil {
		t.Fatal(err)
	}
}
