package lists

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const dropTxt = "; Spamhaus DROP List\n192.0.2.0/24 ; SBL1\n198.51.100.0/25 ; SBL2\n"

var dropPrefixes = pfx("192.0.2.0/24", "198.51.100.0/25")

func gz(t testing.TB, s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func load(t *testing.T, url string, prev Validators) (Result, Validators, error) {
	t.Helper()
	f := Feed{Name: "test", URL: url, Interval: time.Hour}
	return f.Load(t.Context(), nil, prev)
}

func TestLoadHTTP(t *testing.T) {
	var gotUA atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("/drop.txt", func(w http.ResponseWriter, r *http.Request) {
		gotUA.Store(r.Header.Get("User-Agent"))
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, dropTxt)
	})
	// ETag: 304 when If-None-Match matches.
	mux.HandleFunc("/etag.txt", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, dropTxt)
	})
	// Last-Modified: http.ServeContent answers If-Modified-Since.
	mod := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	mux.HandleFunc("/lm.txt", func(w http.ResponseWriter, r *http.Request) {
		http.ServeContent(w, r, "lm.txt", mod, strings.NewReader(dropTxt))
	})
	// Transparent gzip: Content-Encoding, and a gzip body (drop.txt.gz).
	mux.HandleFunc("/ce.txt", func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			t.Errorf("no Accept-Encoding: gzip")
		}
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(gz(t, dropTxt))
	})
	mux.HandleFunc("/drop.txt.gz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/gzip")
		w.Write(gz(t, dropTxt))
	})
	mux.HandleFunc("/html", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "<html>\n<body>\nJust a moment...\n</body>\n</html>\n")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "oops", http.StatusInternalServerError)
	})
	mux.HandleFunc("/429", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "120")
		http.Error(w, "slow down", http.StatusTooManyRequests)
	})
	mux.HandleFunc("/cut", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		io.WriteString(w, dropTxt) // and the connection closes early
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	t.Run("200", func(t *testing.T) {
		res, v, err := load(t, srv.URL+"/drop.txt", Validators{})
		if err != nil || !slices.Equal(res.Prefixes, dropPrefixes) {
			t.Fatalf("%v, %v", res.Prefixes, err)
		}
		if v != (Validators{}) {
			t.Errorf("validators %+v from a server that sent none", v)
		}
		if ua, _ := gotUA.Load().(string); !strings.HasPrefix(ua, "scanwarden") {
			t.Errorf("User-Agent %q", ua)
		}
	})
	t.Run("304 with ETag", func(t *testing.T) {
		res, v, err := load(t, srv.URL+"/etag.txt", Validators{})
		if err != nil || v.ETag != `"v1"` || len(res.Prefixes) != 2 {
			t.Fatalf("first: %v %+v %v", res.Prefixes, v, err)
		}
		res, v2, err := load(t, srv.URL+"/etag.txt", v)
		if !errors.Is(err, ErrNotModified) || v2 != v || res.Prefixes != nil {
			t.Fatalf("second: %v %+v %v", res.Prefixes, v2, err)
		}
	})
	t.Run("304 with Last-Modified", func(t *testing.T) {
		_, v, err := load(t, srv.URL+"/lm.txt", Validators{})
		if err != nil || v.LastModified != "Wed, 01 May 2024 12:00:00 GMT" {
			t.Fatalf("first: %+v %v", v, err)
		}
		if _, _, err := load(t, srv.URL+"/lm.txt", v); !errors.Is(err, ErrNotModified) {
			t.Fatalf("second: %v", err)
		}
	})
	for _, path := range []string{"/ce.txt", "/drop.txt.gz"} {
		t.Run("gzip "+path, func(t *testing.T) {
			res, _, err := load(t, srv.URL+path, Validators{})
			if err != nil || !slices.Equal(res.Prefixes, dropPrefixes) {
				t.Fatalf("%v, %v", res.Prefixes, err)
			}
		})
	}
	for _, tc := range []struct {
		path string
		want error
		text string
	}{
		{"/html", ErrNotAList, "not a blocklist"},
		{"/empty", ErrEmpty, "empty input"},
		{"/500", nil, "HTTP 500 Internal Server Error"},
		{"/429", nil, "HTTP 429 Too Many Requests (retry after 2m0s)"},
		{"/cut", io.ErrUnexpectedEOF, "unexpected EOF"},
		{"/missing", nil, "HTTP 404"},
	} {
		t.Run("fails "+tc.path, func(t *testing.T) {
			res, _, err := load(t, srv.URL+tc.path, Validators{})
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v, want %v / %q", err, tc.want, tc.text)
			}
			if !strings.HasPrefix(err.Error(), `feed "test" (http://127.0.0.1:`) {
				t.Errorf("error does not name the feed: %v", err)
			}
			if res.Prefixes != nil {
				t.Errorf("prefixes with an error: %v", res.Prefixes)
			}
		})
	}
	var he *HTTPError
	if _, _, err := load(t, srv.URL+"/429", Validators{}); !errors.As(err, &he) || he.Status != 429 || he.RetryAfter != 2*time.Minute {
		t.Errorf("429: %v", err)
	}
}

func TestLoadTooLarge(t *testing.T) {
	line := "# " + strings.Repeat("x", 4000) + "\n"
	mux := http.NewServeMux()
	// A body that streams past MaxBody (chunked: no Content-Length).
	mux.HandleFunc("/stream", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "192.0.2.1\n")
		for range MaxBody/len(line) + 10 {
			if _, err := io.WriteString(w, line); err != nil {
				return
			}
		}
	})
	// A Content-Length that says so at once.
	mux.HandleFunc("/declared", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", fmt.Sprint(MaxBody+1))
		io.WriteString(w, "192.0.2.1\n")
	})
	// A gzip bomb: small on the wire, too large unpacked.
	bomb := gz(t, "192.0.2.1\n"+strings.Repeat(line, MaxBody/len(line)+10))
	mux.HandleFunc("/bomb", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(bomb)
	})
	mux.HandleFunc("/bomb.gz", func(w http.ResponseWriter, r *http.Request) { w.Write(bomb) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	for _, path := range []string{"/stream", "/declared", "/bomb", "/bomb.gz"} {
		_, _, err := load(t, srv.URL+path, Validators{})
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: err = %v, want too large", path, err)
		}
	}
	if len(bomb) > 1<<20 {
		t.Errorf("the bomb is %d bytes", len(bomb))
	}
}

func TestLoadRedirects(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/to-file", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
	})
	mux.HandleFunc("/to-ftp", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "ftp://example.com/list", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/to-list", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/list", http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/loop", http.StatusFound)
	})
	mux.HandleFunc("/list", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, dropTxt) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	res, _, err := load(t, srv.URL+"/to-list", Validators{})
	if err != nil || !slices.Equal(res.Prefixes, dropPrefixes) {
		t.Errorf("http redirect: %v %v", res.Prefixes, err)
	}
	for path, want := range map[string]string{
		"/to-file": "refusing a redirect to file://: only http and https",
		"/to-ftp":  "refusing a redirect to ftp://",
		"/loop":    "more than 5 redirects",
	} {
		if _, _, err := load(t, srv.URL+path, Validators{}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", path, err, want)
		}
	}

	// https to http: refused, even with the caller's own client.
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, srv.URL+"/list", http.StatusFound)
	}))
	defer tls.Close()
	f := Feed{Name: "tls", URL: tls.URL + "/x", Interval: time.Hour}
	client := tls.Client()
	if _, _, err := f.Load(t.Context(), client, Validators{}); err == nil || !strings.Contains(err.Error(), "refusing a redirect from https to http") {
		t.Errorf("https to http: %v", err)
	}
	if client.CheckRedirect != nil {
		t.Error("Load changed the caller's client")
	}
}

func TestLoadRedactsURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, _, err := load(t, srv.URL+"/list?key=SECRET", Validators{})
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("err = %v", err)
	}
	u := strings.Replace(srv.URL, "http://", "http://user:SECRET@", 1) + "/x?k=SECRET#SECRET"
	f := Feed{URL: u}
	if strings.Contains(f.Source(), "SECRET") {
		t.Errorf("Source() = %q", f.Source())
	}
	// A connection error quotes no URL either.
	srv.Close()
	_, _, err = load(t, srv.URL+"/list?key=SECRET", Validators{})
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadTimeout(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	f := Feed{Name: "slow", URL: srv.URL, Interval: time.Hour}
	if _, _, err := f.Load(ctx, nil, Validators{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(path, []byte(dropTxt), 0o600); err != nil {
		t.Fatal(err)
	}
	f := Feed{Name: "local", File: path, Interval: time.Hour, Max: 1}
	res, v, err := f.Load(t.Context(), nil, Validators{})
	if err != nil || !slices.Equal(res.Prefixes, pfx("192.0.2.0/24")) || res.Dropped != 1 {
		t.Fatalf("%v %+v %v", res.Prefixes, res, err)
	}
	if _, _, err := f.Load(t.Context(), nil, v); !errors.Is(err, ErrNotModified) {
		t.Errorf("unchanged file: %v", err)
	}
	later := time.Now().Add(time.Minute)
	if err := os.WriteFile(path, []byte("203.0.113.0/24\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, later, later)
	res, _, err = f.Load(t.Context(), nil, v)
	if err != nil || !slices.Equal(res.Prefixes, pfx("203.0.113.0/24")) {
		t.Errorf("changed file: %v %v", res.Prefixes, err)
	}

	gzPath := filepath.Join(dir, "list.txt.gz")
	os.WriteFile(gzPath, gz(t, dropTxt), 0o600)
	f = Feed{Name: "gz", File: gzPath, Interval: time.Hour}
	if res, _, err := f.Load(t.Context(), nil, Validators{}); err != nil || !slices.Equal(res.Prefixes, dropPrefixes) {
		t.Errorf("gzip file: %v %v", res.Prefixes, err)
	}

	for _, f := range []Feed{
		{Name: "dir", File: dir},
		{Name: "missing", File: filepath.Join(dir, "nope")},
		{Name: "both", File: path, URL: "http://127.0.0.1/"},
		{Name: "neither"},
		{Name: "scheme", URL: "ftp://127.0.0.1/x"},
	} {
		if _, _, err := f.Load(t.Context(), nil, Validators{}); err == nil || !strings.Contains(err.Error(), `feed "`+f.Name+`"`) {
			t.Errorf("%s: err = %v", f.Name, err)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"":        0,
		"30":      30 * time.Second,
		"-5":      0,
		"9999999": 24 * time.Hour,
		"soon":    0,
		time.Now().Add(time.Hour).UTC().Format(http.TimeFormat): time.Hour,
		"Mon, 02 Jan 2006 15:04:05 GMT":                         0,
	} {
		got := retryAfter(in)
		if got > want || got < want-2*time.Second {
			t.Errorf("retryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}
