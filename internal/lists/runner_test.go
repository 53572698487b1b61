package lists

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// script serves a sequence of answers, one a request; the last repeats.
type script struct {
	mu    sync.Mutex
	steps []http.HandlerFunc
	n     int
	inm   []string // If-None-Match of each request
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	step := s.steps[min(s.n, len(s.steps)-1)]
	s.n++
	s.inm = append(s.inm, r.Header.Get("If-None-Match"))
	s.mu.Unlock()
	step(w, r)
}

func (s *script) requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func body(text, etag string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if etag != "" {
			w.Header().Set("ETag", etag)
			if r.Header.Get("If-None-Match") == etag {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
		io.WriteString(w, text)
	}
}

func status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", code) }
}

// recorder collects callbacks and checks they never overlap or carry an
// empty list.
type recorder struct {
	t       *testing.T
	mu      sync.Mutex
	lists   [][]netip.Prefix
	inside  atomic.Int32
	updates chan struct{}
}

func newRecorder(t *testing.T) *recorder {
	return &recorder{t: t, updates: make(chan struct{}, 100)}
}

func (rc *recorder) onUpdate(name string, r Result) {
	if rc.inside.Add(1) != 1 {
		rc.t.Errorf("OnUpdate called concurrently for %s", name)
	}
	defer rc.inside.Add(-1)
	if len(r.Prefixes) == 0 {
		rc.t.Errorf("OnUpdate(%s) with an empty list", name)
	}
	time.Sleep(2 * time.Millisecond) // give an overlap the chance to show
	rc.mu.Lock()
	rc.lists = append(rc.lists, r.Prefixes)
	rc.mu.Unlock()
	rc.updates <- struct{}{}
}

func (rc *recorder) wait(n int) {
	rc.t.Helper()
	for range n {
		select {
		case <-rc.updates:
		case <-time.After(5 * time.Second):
			rc.t.Fatalf("no update after %v", rc.got())
		}
	}
}

func (rc *recorder) got() [][]netip.Prefix {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.lists)
}

func startRunner(t *testing.T, r *Runner) (stop func()) {
	r.Log = testLog(t)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Run did not return")
		}
	}
}

func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func fastFeed(url string) Feed {
	return Feed{Name: "f", URL: url, Interval: 15 * time.Millisecond}
}

func TestRunnerKeepsListOnFailure(t *testing.T) {
	// Fails first, then serves A; then every kind of failure; then B.
	sc := &script{steps: []http.HandlerFunc{
		status(500),
		body("192.0.2.0/24\n", ""),
		status(503),
		body("", ""),                          // empty body
		body("<html>\n<body>\n</body>\n", ""), // garbage
		body("0.0.0.0/1\n128.0.0.0/1\n", ""),  // every entry refused
		body("198.51.100.0/24\n", ""),         // B
	}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	rc := newRecorder(t)
	r := &Runner{Feeds: []Feed{fastFeed(srv.URL)}, OnUpdate: rc.onUpdate, RetryMin: time.Millisecond, RetryMax: 5 * time.Millisecond}
	stop := startRunner(t, r)
	rc.wait(2)
	stop()
	got := rc.got()
	if len(got) != 2 || !slices.Equal(got[0], pfx("192.0.2.0/24")) || !slices.Equal(got[1], pfx("198.51.100.0/24")) {
		t.Errorf("updates %v", got)
	}
	if sc.requests() < 7 {
		t.Errorf("%d requests", sc.requests())
	}
	st := r.Status()
	if len(st) != 1 || st[0].Prefixes != 1 || st[0].Loaded.IsZero() || st[0].Name != "f" {
		t.Errorf("status %+v", st)
	}
}

func TestRunnerEmptyFeedIsNotAFailure(t *testing.T) {
	// A feed that lists nothing (comments only) is a list: the callback
	// gets it, once.
	sc := &script{steps: []http.HandlerFunc{body("192.0.2.1\n", ""), body("# nothing today\n", "")}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	var mu sync.Mutex
	var got [][]netip.Prefix
	r := &Runner{Feeds: []Feed{fastFeed(srv.URL)}, OnUpdate: func(_ string, r Result) {
		mu.Lock()
		got = append(got, r.Prefixes)
		mu.Unlock()
	}}
	stop := startRunner(t, r)
	for sc.requests() < 5 {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if len(got) != 2 || len(got[0]) != 1 || got[1] == nil || len(got[1]) != 0 {
		t.Errorf("updates %v", got)
	}
}

func TestRunnerNotModified(t *testing.T) {
	sc := &script{steps: []http.HandlerFunc{body("192.0.2.0/24\n", `"a"`)}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	rc := newRecorder(t)
	r := &Runner{Feeds: []Feed{fastFeed(srv.URL)}, OnUpdate: rc.onUpdate}
	stop := startRunner(t, r)
	rc.wait(1)
	for sc.requests() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if got := rc.got(); len(got) != 1 {
		t.Errorf("updates %v: a 304 must not call back", got)
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.inm[0] != "" || sc.inm[1] != `"a"` || sc.inm[2] != `"a"` {
		t.Errorf("If-None-Match %q", sc.inm)
	}
}

func TestRunnerUnchangedListNotRepeated(t *testing.T) {
	sc := &script{steps: []http.HandlerFunc{body("192.0.2.0/24\n", "")}}
	srv := httptest.NewServer(sc)
	defer srv.Close()
	rc := newRecorder(t)
	r := &Runner{Feeds: []Feed{fastFeed(srv.URL)}, OnUpdate: rc.onUpdate}
	stop := startRunner(t, r)
	for sc.requests() < 4 {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if got := rc.got(); len(got) != 1 {
		t.Errorf("updates %v", got)
	}
}

func TestRunnerManyFeeds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.TrimPrefix(r.URL.Path, "/")+"\n")
	}))
	defer srv.Close()
	var mu sync.Mutex
	got := map[string][]netip.Prefix{}
	inside := map[string]*atomic.Int32{"a": {}, "b": {}, "c": {}}
	r := &Runner{OnUpdate: func(name string, res Result) {
		if inside[name].Add(1) != 1 {
			t.Errorf("concurrent callbacks for %s", name)
		}
		defer inside[name].Add(-1)
		mu.Lock()
		got[name] = res.Prefixes
		mu.Unlock()
	}}
	for name, addr := range map[string]string{"a": "192.0.2.1", "b": "192.0.2.2", "c": "2001:db8::1"} {
		r.Feeds = append(r.Feeds, Feed{Name: name, URL: srv.URL + "/" + addr, Interval: time.Hour})
	}
	stop := startRunner(t, r)
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == 3 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if !slices.Equal(got["a"], pfx("192.0.2.1/32")) || !slices.Equal(got["c"], pfx("2001:db8::1/128")) || len(got) != 3 {
		t.Errorf("got %v", got)
	}
}

func TestRunnerCache(t *testing.T) {
	dir := t.TempDir()
	sc := &script{steps: []http.HandlerFunc{body("192.0.2.0/24\n198.51.100.7\n", `"v7"`)}}
	srv := httptest.NewServer(sc)
	url := srv.URL + "/drop.txt?key=SECRET"
	feed := Feed{Name: "drop", URL: url, Interval: time.Hour}

	rc := newRecorder(t)
	stop := startRunner(t, &Runner{Feeds: []Feed{feed}, OnUpdate: rc.onUpdate, CacheDir: dir})
	rc.wait(1)
	stop()
	data, err := os.ReadFile(filepath.Join(dir, "drop.list"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "SECRET") || !strings.Contains(string(data), "# etag: \"v7\"\n") ||
		!strings.HasSuffix(string(data), "192.0.2.0/24\n198.51.100.7/32\n") {
		t.Errorf("cache file:\n%s", data)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "drop.list")); fi.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v", fi.Mode())
	}

	// Restart with the server answering 304: the list comes from the cache,
	// and the request was conditional.
	rc = newRecorder(t)
	stop = startRunner(t, &Runner{Feeds: []Feed{feed}, OnUpdate: rc.onUpdate, CacheDir: dir})
	rc.wait(1)
	for sc.requests() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if got := rc.got(); len(got) != 1 || !slices.Equal(got[0], pfx("192.0.2.0/24", "198.51.100.7/32")) {
		t.Errorf("from cache: %v", got)
	}
	if sc.inm[1] != `"v7"` {
		t.Errorf("If-None-Match after restart %q", sc.inm[1])
	}

	// Restart with the server gone: still the list, from the cache.
	srv.Close()
	rc = newRecorder(t)
	stop = startRunner(t, &Runner{Feeds: []Feed{feed}, OnUpdate: rc.onUpdate, CacheDir: dir, RetryMin: time.Hour})
	rc.wait(1)
	stop()

	// Another URL or max: the cache is not used.
	for _, other := range []Feed{{Name: "drop", URL: url + "x", Interval: time.Hour}, {Name: "drop", URL: url, Max: 1, Interval: time.Hour}} {
		rc = newRecorder(t)
		r := &Runner{Feeds: []Feed{other}, OnUpdate: rc.onUpdate, CacheDir: dir, RetryMin: time.Hour}
		stop = startRunner(t, r)
		for r.Status()[0].Failures == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		stop()
		if got := rc.got(); len(got) != 0 {
			t.Errorf("cache of another feed used: %v", got)
		}
	}

	// A damaged cache is ignored.
	os.WriteFile(filepath.Join(dir, "drop.list"), []byte("garbage\n"), 0o600)
	rc = newRecorder(t)
	r := &Runner{Feeds: []Feed{feed}, OnUpdate: rc.onUpdate, CacheDir: dir, RetryMin: time.Hour}
	stop = startRunner(t, r)
	for r.Status()[0].Failures == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if got := rc.got(); len(got) != 0 {
		t.Errorf("damaged cache used: %v", got)
	}
	if st := r.Status()[0]; st.LastError == "" || st.Prefixes != 0 || st.Next.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("status %+v", st)
	}
}

func TestRunnerCheck(t *testing.T) {
	for _, feeds := range [][]Feed{
		{{Name: "", URL: "http://x/", Interval: time.Hour}},
		{{Name: "../x", URL: "http://x/", Interval: time.Hour}},
		{{Name: ".x", URL: "http://x/", Interval: time.Hour}},
		{{Name: "a", URL: "http://x/", Interval: time.Hour}, {Name: "a", File: "/x", Interval: time.Hour}},
		{{Name: "a", Interval: time.Hour}},
		{{Name: "a", URL: "http://x/", File: "/x", Interval: time.Hour}},
		{{Name: "a", URL: "http://x/"}},
	} {
		if err := (&Runner{Feeds: feeds}).Run(t.Context()); err == nil {
			t.Errorf("%+v: no error", feeds)
		}
	}
}

func TestBackoff(t *testing.T) {
	r := &Runner{}
	f := Feed{Interval: 12 * time.Hour}
	var got []time.Duration
	for n := 1; n <= 9; n++ {
		got = append(got, r.backoff(f, n, errors.New("x")))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour, time.Hour}
	if !slices.Equal(got, want) {
		t.Errorf("backoff %v", got)
	}
	if d := r.backoff(Feed{Interval: 5 * time.Minute}, 9, errors.New("x")); d != 5*time.Minute {
		t.Errorf("capped by interval: %v", d)
	}
	he := &HTTPError{Status: 429, RetryAfter: 3 * time.Hour}
	if d := r.backoff(f, 1, &wrapped{he}); d != 3*time.Hour {
		t.Errorf("Retry-After: %v", d)
	}
	for range 100 {
		if d := jitter(time.Hour); d < 54*time.Minute || d > 66*time.Minute {
			t.Fatalf("jitter %v", d)
		}
	}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "feed: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }
