package store

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
)

// The child processes these tests start are this test binary again, with an
// environment variable saying what to do.
const (
	envCrashChild = "SCANWARDEN_STORE_CRASH_CHILD"
	envOpenChild  = "SCANWARDEN_STORE_OPEN_CHILD"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(envCrashChild); dir != "" {
		crashChild(dir)
		os.Exit(0)
	}
	if dir := os.Getenv(envOpenChild); dir != "" {
		// Print what Open says and exit: the parent checks the message.
		s, err := Open(dir)
		if err == nil {
			s.Close()
			fmt.Println("opened")
		} else {
			fmt.Println(err)
		}
		os.Exit(0)
	}
	code := m.Run()
	if templateDir != "" { // filled by the benchmarks
		os.RemoveAll(templateDir)
	}
	os.Exit(code)
}

// crashChild saves bans as fast as it can and says "saved ID" after each
// SaveDecision returns, until it is killed.
func crashChild(dir string) {
	s, err := Open(dir)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("open")
	for i := 0; ; i++ {
		d := &decision.Decision{ID: fmt.Sprintf("crash-%06d", i), Kind: decision.Ban,
			Target: decision.HostPrefix(ipv4(uint32(0x0a000000 + i))), Created: time.Now(),
			Expires: time.Now().Add(time.Hour), Reason: "crash test", By: "detector"}
		if err := s.SaveDecision(d); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		// Unbuffered: the line is in the pipe before the next write starts.
		fmt.Println("saved", d.ID)
	}
}

// TestCrashKeepsSavedDecisions kills (SIGKILL) a process that is saving
// decisions, then checks that every decision it reported saved is there and
// in force, and that the dead process's lock did not outlive it.
func TestCrashKeepsSavedDecisions(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envCrashChild+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "open" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("child did not open the store: %q", lines.Text())
	}

	// While it runs, the state directory is taken, and the error names it.
	_, err = Open(dir)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != cmd.Process.Pid {
		t.Errorf("Open while the child runs = %v, want LockedError naming pid %d", err, cmd.Process.Pid)
	}

	var saved []string
	deadline := time.Now().Add(5 * time.Second)
	for len(saved) < 300 && time.Now().Before(deadline) && lines.Scan() {
		if id, ok := strings.CutPrefix(lines.Text(), "saved "); ok {
			saved = append(saved, id)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Lines already in the pipe were printed after their commit too.
	for lines.Scan() {
		if id, ok := strings.CutPrefix(lines.Text(), "saved "); ok {
			saved = append(saved, id)
		}
	}
	io.Copy(io.Discard, out)
	cmd.Wait()
	if len(saved) == 0 {
		t.Fatal("the child saved nothing")
	}

	s, err := Open(dir)
	if err != nil {
		t.Fatalf("reopening after the crash: %v", err)
	}
	defer s.Close()
	for _, id := range saved {
		if _, err := s.Decision(id); err != nil {
			t.Errorf("decision %s was reported saved but is lost: %v", id, err)
		}
	}
	bans, err := s.ActiveBans(time.Now())
	if err != nil || len(bans) < len(saved) {
		t.Errorf("%d active bans after the crash, %v; want at least %d", len(bans), err, len(saved))
	}
	t.Logf("%d decisions reported saved before SIGKILL, all present (%d in the database)", len(saved), len(bans))
}

// TestUnwritableAsUnprivilegedUser runs Open as nobody on a directory owned
// by root, as a user who forgot sudo would. It needs root to drop to nobody;
// as another user, TestUnusableDirectory covers a read-only directory.
func TestUnwritableAsUnprivilegedUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a child as nobody")
	}
	// The child must be able to run the binary: copy it where nobody can.
	tmp, err := os.MkdirTemp("", "scanwarden-store-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(tmp) })
	if err := os.Chmod(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(tmp, "store.test")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(tmp, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{state, filepath.Join(state, "sub")} {
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = append(os.Environ(), envOpenChild+"="+dir)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Skipf("cannot run a child as nobody here: %v: %s", err, out)
		}
		msg := strings.TrimSpace(string(out))
		if !strings.Contains(msg, "is not writable") || !strings.Contains(msg, "run as root or set --state-dir") {
			t.Errorf("Open(%s) as nobody said %q", dir, msg)
		}
		t.Log(msg)
	}
}

func copyFile(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return err
	}
	return dst.Close()
}
