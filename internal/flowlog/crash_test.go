package flowlog

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The child these tests start is this test binary again (see TestMain).
const (
	envCrashChild = "SWD_FLOWLOG_CRASH_CHILD"
	envCrashBase  = "SWD_FLOWLOG_CRASH_BASE" // the first flow's number
)

// crashChild appends flows numbered in OrigBytes as fast as it can,
// flushing every 1 000 and saying "flushed N" after each Flush returns,
// until it is killed.
func crashChild(dir string) {
	l, err := Open(Options{Dir: dir, FlushEvery: time.Hour, BlockFlows: 128, BatchFlows: 4096})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("open")
	base, _ := strconv.ParseUint(os.Getenv(envCrashBase), 10, 64)
	g := newFlowGen(3, 1000)
	for i := 0; ; i++ {
		var f Flow
		g.next(&f)
		f.OrigBytes = base + uint64(i)
		if err := l.Append(&f); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		if i%1000 == 999 {
			if err := l.Flush(); err != nil {
				fmt.Println("error", err)
				os.Exit(1)
			}
			fmt.Println("flushed", i+1)
		}
	}
}

// TestCrash kills a writer at random moments, three times over: every flow
// flushed before a kill is there after Open, exactly once, and the blocks
// written ahead of their batch are sorted in at Open.
func TestCrash(t *testing.T) {
	dir := t.TempDir()
	var flushed [3]int
	for round, target := range []int{3000, 9000, 20000} {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envCrashChild+"="+dir, fmt.Sprintf("%s=%d", envCrashBase, round*1_000_000))
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
			t.Fatalf("round %d: child did not open the log: %q", round, lines.Text())
		}
		n := 0
		for n < target && lines.Scan() {
			if s, ok := strings.CutPrefix(lines.Text(), "flushed "); ok {
				n, _ = strconv.Atoi(s)
			} else {
				t.Fatalf("child: %s", lines.Text())
			}
		}
		// Kill at a random moment: in an Append, a Flush or a batch's
		// commit.
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		for lines.Scan() { // printed after their Flush returned, too
			if s, ok := strings.CutPrefix(lines.Text(), "flushed "); ok {
				n, _ = strconv.Atoi(s)
			}
		}
		cmd.Wait()
		flushed[round] = n

		l, err := Open(Options{Dir: dir})
		if err != nil {
			t.Fatalf("round %d: Open after the kill: %v", round, err)
		}
		seen := map[uint64]int{}
		err = l.Query(context.Background(), Filter{}, func(f *Flow) error {
			seen[f.OrigBytes]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ps, err := l.Partitions()
		if err != nil {
			t.Fatal(err)
		}
		var counted int64
		for _, p := range ps {
			counted += p.Flows
		}
		if counted != int64(len(seen)) {
			t.Errorf("round %d: partitions count %d flows, a query finds %d", round, counted, len(seen))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		for r := 0; r <= round; r++ {
			for i := range flushed[r] {
				if c := seen[uint64(r*1_000_000+i)]; c != 1 {
					t.Fatalf("round %d: flow %d of round %d, flushed before the kill, is there %d times", round, i, r, c)
				}
			}
		}
		for k, c := range seen {
			if c != 1 {
				t.Fatalf("round %d: flow %d is there %d times", round, k, c)
			}
		}
		t.Logf("round %d: killed after %d flows flushed; %d flows on disk", round, flushed[round], len(seen))
	}
	// Open left no tail blocks.
	files, _ := filepath.Glob(filepath.Join(dir, "flows-*.db"))
	for _, p := range files {
		db, err := sql.Open("sqlite", p)
		if err != nil {
			t.Fatal(err)
		}
		var tails int
		if err := db.QueryRow("SELECT count(*) FROM blocks WHERE tail != 0").Scan(&tails); err != nil || tails != 0 {
			t.Errorf("%s: %d tail blocks after Open, %v", p, tails, err)
		}
		db.Close()
	}
}

// TestTornWrite cuts the write-ahead log inside its last frame, as a power
// cut during a write would: Open works, and what was committed before is
// there.
func TestTornWrite(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, BlockFlows: 128, BatchFlows: 1024})
	old := randFlows(11, 3000, t0)
	appendAll(t, l, old)
	l.Close() // checkpointed into the database file
	l = openLog(t, Options{Dir: dir, BlockFlows: 128, BatchFlows: 1024})
	newer := randFlows(12, 5000, t0.Add(time.Minute))
	appendAll(t, l, newer)
	l.Flush()
	wal := filepath.Join(dir, "flows-20260618.db-wal")
	fi, err := os.Stat(wal)
	if err != nil || fi.Size() < 1000 {
		t.Fatalf("no write-ahead log to tear: %v", err)
	}
	// Copy the files as they are now (as if the power went), then tear.
	crashed := t.TempDir()
	for _, name := range []string{"flows-20260618.db", "flows-20260618.db-wal"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, "-wal") {
			b = b[:len(b)-100]
		}
		os.WriteFile(filepath.Join(crashed, name), b, 0o640)
	}
	l2, err := Open(Options{Dir: crashed})
	if err != nil {
		t.Fatalf("Open after a torn write: %v", err)
	}
	defer l2.Close()
	got := collect(t, l2, Filter{})
	keys := map[string]int{}
	for i := range got {
		keys[flowKey(&got[i])]++
	}
	for i := range old {
		if keys[flowKey(&old[i])] != 1 {
			t.Fatalf("flow %d, written before the torn write, is there %d times", i, keys[flowKey(&old[i])])
		}
	}
	if len(got) >= len(old)+len(newer) {
		t.Errorf("%d flows after tearing the last commit, want fewer than %d", len(got), len(old)+len(newer))
	}
	t.Logf("%d of %d newer flows survived the torn write", len(got)-len(old), len(newer))
}
