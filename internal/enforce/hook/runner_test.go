package hook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func newRunner(t *testing.T, log *slog.Logger, hooks ...Hook) *Runner {
	t.Helper()
	r, err := NewRunner(hooks, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.Close(ctx)
	})
	return r
}

func readRecord(t *testing.T, path string) record {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the hook left no record: %v", err)
	}
	var rec record
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestHostileValues runs a real program with values full of shell syntax
// and checks that each arrives as exactly one argument, byte for byte, and
// that nothing was run.
func TestHostileValues(t *testing.T) {
	var rnd [6]byte
	rand.Read(rnd[:])
	pwned := "/tmp/pwned-" + hex.EncodeToString(rnd[:])
	t.Cleanup(func() { os.Remove(pwned) })

	hostile := []string{
		"two words",
		"it's",
		`say "hi"`,
		"a; touch " + pwned,
		"a | touch " + pwned,
		"true && touch " + pwned,
		"$(touch " + pwned + ")",
		"`touch " + pwned + "`",
		"line1\nline2",
		"cr\rlf",
		"*",
		"--option=evil",
		"-rf",
		"nul\x00byte",
		"",
		"$TARGET$ $(id) ${HOME} %s %n \\ \t ' \"",
		"\xff\xfe invalid UTF-8",
	}
	dir := t.TempDir()
	for i, val := range hostile {
		out := filepath.Join(dir, "rec"+strconv.Itoa(i))
		h := helperHook(t, "record", out,
			"$REASON$", "--host=$HOST$", "[$TARGET$]", "$PORT$", "$MODE$", "$PROTO$",
			"$DURATION$", "$ACTION$", "$FOO$", "$$", "$REASON$$HOST$")
		h.Order = OrderBefore
		r := newRunner(t, nil, h)
		ev := sample
		ev.Reason, ev.Host = val, val
		r.Before(context.Background(), ev)

		rec := readRecord(t, out)
		v := strings.ReplaceAll(val, "\x00", "\uFFFD")
		host := v
		if val == "" {
			host = "192.0.2.7" // $HOST$ is the address when there is no name
		}
		want := []string{self(t), helperArg, "record", out,
			v, "--host=" + host, "[192.0.2.7]", "31337", "stcp", "tcp",
			"1h0m0s", "ban", "$FOO$", "$$", v + host}
		if got := toStrings(rec.Argv); !slices.Equal(got, want) {
			t.Errorf("value %q: argv\n%q\nwant\n%q", val, got, want)
		}
		if env := toStrings(rec.Env); !slices.Contains(env, "SCANWARDEN_REASON="+v) || !slices.Contains(env, "SCANWARDEN_HOST="+host) {
			t.Errorf("value %q: environment %q", val, env)
		}
		if st := r.Stats(); st.Run != 1 || st.Failed != 0 {
			t.Errorf("value %q: stats %+v", val, st)
		}
	}
	if _, err := os.Stat(pwned); err == nil {
		t.Fatalf("%s exists: a value reached a shell", pwned)
	}
}

// TestProcessSetting checks what a hook gets besides its arguments.
func TestProcessSetting(t *testing.T) {
	out := filepath.Join(t.TempDir(), "rec")
	h := helperHook(t, "record", out)
	h.Order = OrderBefore
	r := newRunner(t, nil, h)
	r.Before(context.Background(), sample)
	rec := readRecord(t, out)

	want := []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C",
		"SCANWARDEN_TARGET=192.0.2.7", "SCANWARDEN_PORT=31337", "SCANWARDEN_MODE=stcp",
		"SCANWARDEN_PROTO=tcp", "SCANWARDEN_REASON=Vertical SYN scan of 1000 ports",
		"SCANWARDEN_DURATION=1h0m0s", "SCANWARDEN_ACTION=ban", "SCANWARDEN_HOST=scanner.example",
	}
	if env := toStrings(rec.Env); !slices.Equal(env, want) {
		t.Errorf("environment %q\nwant %q", env, want)
	}
	if rec.Cwd != "/" {
		t.Errorf("working directory %q", rec.Cwd)
	}
	if rec.Stdin != "" {
		t.Errorf("stdin %q", rec.Stdin)
	}
	if rec.Pgid != rec.Pid {
		t.Errorf("the hook is not its own process group leader: pid %d pgid %d", rec.Pid, rec.Pgid)
	}
}

func TestOnActions(t *testing.T) {
	dir := t.TempDir()
	onBan := helperHook(t, "mark", "0s", filepath.Join(dir, "ban"))
	onBan.Order = OrderBefore
	onUnban := helperHook(t, "mark", "0s", filepath.Join(dir, "unban"))
	onUnban.Order, onUnban.On = OrderBefore, []string{ActionUnban}
	r := newRunner(t, nil, onBan, onUnban)

	ev := sample
	ev.Action = ActionUnban
	r.Before(context.Background(), ev)
	if _, err := os.Stat(filepath.Join(dir, "ban")); err == nil {
		t.Error("the ban hook ran on an unban")
	}
	if _, err := os.Stat(filepath.Join(dir, "unban")); err != nil {
		t.Error("the unban hook did not run")
	}
}

func TestTimeoutKillsGroup(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "grandchild")
	for _, tc := range []struct {
		name string
		h    Hook
	}{
		{"sleep", Hook{Argv: []string{"/bin/sleep", "60"}}},
		{"grandchild", helperHook(t, "fork-sleep", pidfile)},
		{"ignores SIGTERM", helperHook(t, "ignore-term", filepath.Join(dir, "ready"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			h.Order, h.Timeout = OrderBefore, 200*time.Millisecond
			r := newRunner(t, nil, h)
			start := time.Now()
			r.Before(context.Background(), sample)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Before returned after %v; the timeout is 200ms", d)
			}
			if st := r.Stats(); st.Run != 1 || st.TimedOut != 1 || st.Failed != 1 {
				t.Errorf("stats %+v", st)
			}
		})
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal("the hook did not start its grandchild:", err)
	}
	pid, _ := strconv.Atoi(string(b))
	waitDead(t, pid)
}

// TestLeftoversKilled: a hook that exits leaving a child in its process
// group does not leak the child.
func TestLeftoversKilled(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "child")
	h := Hook{Argv: []string{"/bin/sh", "-c", `/bin/sleep 60 & echo $! > "$1"`, "sh", pidfile}, Order: OrderBefore}
	r := newRunner(t, nil, h)
	r.Before(context.Background(), sample)
	if st := r.Stats(); st.Run != 1 || st.Failed != 0 {
		t.Errorf("stats %+v", st)
	}
	b, err := os.ReadFile(pidfile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitDead(t, pid)
}

func TestBeforeCancelled(t *testing.T) {
	h := Hook{Argv: []string{"/bin/sleep", "60"}, Order: OrderBefore}
	r := newRunner(t, nil, h, h)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	r.Before(ctx, sample)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Before returned after %v", d)
	}
	if st := r.Stats(); st.Run != 1 || st.TimedOut != 0 || st.Failed != 1 {
		t.Errorf("stats %+v: want one run killed, the second skipped", st)
	}
}

// TestBeforeAndAfter: Before waits for the before-hooks and runs nothing
// else; After waits for nothing.
func TestBeforeAndAfter(t *testing.T) {
	dir := t.TempDir()
	before := helperHook(t, "mark", "300ms", filepath.Join(dir, "before"))
	before.Order = OrderBefore
	after := helperHook(t, "mark", "1s", filepath.Join(dir, "after"))
	r := newRunner(t, nil, before, after)

	r.Before(context.Background(), sample)
	if _, err := os.Stat(filepath.Join(dir, "before")); err != nil {
		t.Fatal("Before returned before its hook ended")
	}
	if st := r.Stats(); st.Run != 1 || st.Running != 0 {
		t.Fatalf("Before ran more than the before-hook: %+v", st)
	}
	start := time.Now()
	r.After(sample)
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("After took %v", d)
	}
	if _, err := os.Stat(filepath.Join(dir, "after")); err == nil {
		t.Error("After waited for its hook")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "after")); err != nil {
		t.Error("Close did not wait for the after-hook")
	}
	if st := r.Stats(); st.Run != 2 || st.Failed != 0 || st.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestAfterNeverBlocks floods After with hooks that sleep.
func TestAfterNeverBlocks(t *testing.T) {
	r := newRunner(t, nil, Hook{Argv: []string{"/bin/sleep", "30"}})
	const events = 5000
	var slowest time.Duration
	start := time.Now()
	for i := range events {
		ev := sample
		ev.Target = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 32)
		t0 := time.Now()
		r.After(ev)
		slowest = max(slowest, time.Since(t0))
	}
	if total := time.Since(start); total > 2*time.Second {
		t.Errorf("%d After calls took %v (slowest %v)", events, total, slowest)
	}
	// Let the workers take their jobs.
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats().Running < maxRunning && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	st := r.Stats()
	if st.Running != maxRunning {
		t.Errorf("%d hooks running, want %d", st.Running, maxRunning)
	}
	if p := r.peak.Load(); p > maxRunning {
		t.Errorf("%d hooks ran at once, the limit is %d", p, maxRunning)
	}
	if min := uint64(events - maxQueued - maxRunning); st.Dropped < min {
		t.Errorf("dropped %d, want at least %d", st.Dropped, min)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := r.Close(ctx); err != context.DeadlineExceeded {
		t.Errorf("Close: %v, want the deadline", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
	st = r.Stats()
	if st.Running != 0 || st.Run+st.Dropped != events {
		t.Errorf("after Close: %+v (run+dropped should be %d)", st, events)
	}
	r.After(sample) // after Close: dropped, no panic
	if r.Stats().Dropped != st.Dropped+1 {
		t.Error("an event after Close was not counted as dropped")
	}
}

// syncBuffer is a log destination safe for the runner's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) records(t *testing.T) []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(s.b.Bytes()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		m := map[string]any{}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func TestOutputLogged(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	fail := helperHook(t, "spew", "10000", "3")
	fail.Order = OrderBefore
	r := newRunner(t, log, fail)
	r.Before(context.Background(), sample)

	recs := buf.records(t)
	if len(recs) != 1 {
		t.Fatalf("log: %v", recs)
	}
	m := recs[0]
	if m["level"] != "WARN" || m["status"] != "exit status 3" || m["target"] != "192.0.2.7" {
		t.Errorf("log record %v", m)
	}
	if m["stdout"] != strings.Repeat("o", outputLimit) || m["stderr"] != strings.Repeat("e", outputLimit) {
		t.Errorf("output not kept to %d bytes: %d, %d", outputLimit, len(m["stdout"].(string)), len(m["stderr"].(string)))
	}
	if m["stdout_truncated_bytes"] != float64(10000-outputLimit) {
		t.Errorf("truncation not counted: %v", m["stdout_truncated_bytes"])
	}
	if st := r.Stats(); st.Failed != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestDropsLogged(t *testing.T) {
	old := dropReportEvery
	dropReportEvery = 50 * time.Millisecond
	t.Cleanup(func() { dropReportEvery = old })

	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	r := newRunner(t, log, Hook{Argv: []string{"/bin/sleep", "30"}})
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		r.Close(ctx)
	}()
	for range maxQueued + maxRunning + 100 {
		r.After(sample)
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		for _, m := range buf.records(t) {
			if strings.HasPrefix(m["msg"].(string), "hook runs dropped") {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("drops were not logged")
}

func TestMissingProgram(t *testing.T) {
	h := Hook{Argv: []string{"/nonexistent/scanwarden-hook"}, Order: OrderBefore}
	r := newRunner(t, nil, h)
	r.Before(context.Background(), sample)
	if st := r.Stats(); st.Run != 1 || st.Failed != 1 {
		t.Errorf("stats %+v", st)
	}
}
