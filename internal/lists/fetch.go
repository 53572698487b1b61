package lists

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Feed is one blocklist: a URL fetched over HTTP(S), or a local file.
type Feed struct {
	Name     string
	URL      string // http or https; or
	File     string // a path, read directly
	Interval time.Duration
	Max      int // entries kept; 0: all
}

// Source names where the feed comes from, for logs: the file, or the URL
// without its query (which may hold an API key).
func (f *Feed) Source() string {
	if f.File != "" {
		return f.File
	}
	return redact(f.URL)
}

// Validators are what a server said identifies the version it sent, for
// a conditional request next time. For a file, ETag holds its size and
// modification time.
type Validators struct {
	ETag         string
	LastModified string
}

// ErrNotModified says the feed has not changed since the validators were
// taken: the previous list stands.
var ErrNotModified = errors.New("not modified")

// HTTPError is an answer other than 200 or 304.
type HTTPError struct {
	Status int
	// RetryAfter is the server's Retry-After (429, 503), 0 if none.
	RetryAfter time.Duration
}

func (e *HTTPError) Error() string {
	s := fmt.Sprintf("HTTP %d %s", e.Status, http.StatusText(e.Status))
	if e.RetryAfter > 0 {
		s += fmt.Sprintf(" (retry after %v)", e.RetryAfter)
	}
	return s
}

const (
	// MaxBody is the largest feed read, after decompression: the largest
	// public lists are a few MB, and gzip bombs stop here.
	MaxBody = 64 << 20
	// fetchTimeout bounds a whole fetch, body included.
	fetchTimeout = 2 * time.Minute
	maxRedirects = 5
)

// UserAgent is sent with every request, so feed operators know who is
// asking. The daemon may add its version once at start, before fetching.
var UserAgent = "scanwarden (+https://github.com/scanwarden/scanwarden)"

// defaultClient is used when Load is given none: bounded dial, TLS and
// header waits, and a proxy from the environment.
var defaultClient = &http.Client{
	Transport: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 15 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          4,
		ForceAttemptHTTP2:     true,
	},
}

// Load reads the feed once. A file is read directly; a URL is fetched with
// client (nil: a default one) within two minutes, with a conditional
// request when prev has validators, gzip (Content-Encoding or a gzip body)
// undone, at most MaxBody bytes, and redirects only to http(s) and never
// from https down to http.
//
// It returns ErrNotModified (with the validators) when the feed has not
// changed since prev, and otherwise what ParseFeed returns, with the new
// validators. Errors name the feed.
func (f *Feed) Load(ctx context.Context, client *http.Client, prev Validators) (Result, Validators, error) {
	var (
		res Result
		v   Validators
		err error
	)
	switch {
	case f.File != "" && f.URL != "":
		err = errors.New("give a file or a URL, not both")
	case f.File != "":
		res, v, err = f.loadFile(prev)
	case f.URL != "":
		res, v, err = f.fetch(ctx, client, prev)
	default:
		err = errors.New("no file or URL")
	}
	if err != nil && err != ErrNotModified {
		err = fmt.Errorf("feed %q (%s): %w", f.Name, f.Source(), err)
	}
	return res, v, err
}

func (f *Feed) loadFile(prev Validators) (Result, Validators, error) {
	fh, err := os.Open(f.File)
	if err != nil {
		return Result{}, prev, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return Result{}, prev, err
	}
	if !st.Mode().IsRegular() {
		return Result{}, prev, errors.New("not a regular file")
	}
	v := Validators{ETag: fmt.Sprintf("file size=%d mtime=%d", st.Size(), st.ModTime().UnixNano())}
	if v == prev {
		return Result{}, prev, ErrNotModified
	}
	res, err := parseBody(fh, f.Max)
	return res, v, err
}

// parseBody undoes gzip if the data is gzip, bounds it and parses it.
func parseBody(r io.Reader, maxEntries int) (Result, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return Result{}, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		return ParseFeed(&capReader{r: zr, left: MaxBody}, maxEntries)
	}
	return ParseFeed(&capReader{r: br, left: MaxBody}, maxEntries)
}

// capReader fails with ErrTooLarge past its limit, where io.LimitReader
// would end quietly and let a cut list pass for the whole.
type capReader struct {
	r    io.Reader
	left int64
}

func (c *capReader) Read(p []byte) (int, error) {
	if c.left <= 0 {
		// Anything more is too much; check with a one-byte read.
		var b [1]byte
		n, err := c.r.Read(b[:])
		if n > 0 {
			return 0, fmt.Errorf("%w: more than %d MB", ErrTooLarge, MaxBody>>20)
		}
		return 0, err
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

func (f *Feed) fetch(ctx context.Context, client *http.Client, prev Validators) (Result, Validators, error) {
	u, err := url.Parse(f.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Result{}, prev, errors.New("not an http(s) URL")
	}
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.URL, nil)
	if err != nil {
		return Result{}, prev, err
	}
	req.Header.Set("User-Agent", UserAgent)
	if prev.ETag != "" {
		req.Header.Set("If-None-Match", prev.ETag)
	}
	if prev.LastModified != "" {
		req.Header.Set("If-Modified-Since", prev.LastModified)
	}
	resp, err := safeClient(client).Do(req)
	if err != nil {
		return Result{}, prev, unwrapURLError(err)
	}
	defer func() {
		io.CopyN(io.Discard, resp.Body, 4<<10) // lets the connection be reused
		resp.Body.Close()
	}()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotModified:
		if prev == (Validators{}) {
			return Result{}, prev, errors.New("HTTP 304 to a request that was not conditional")
		}
		return Result{}, validators(resp, prev), ErrNotModified
	default:
		return Result{}, prev, &HTTPError{Status: resp.StatusCode, RetryAfter: retryAfter(resp.Header.Get("Retry-After"))}
	}
	if resp.ContentLength > MaxBody {
		return Result{}, prev, fmt.Errorf("%w: %d bytes, more than %d MB", ErrTooLarge, resp.ContentLength, MaxBody>>20)
	}
	res, err := parseBody(resp.Body, f.Max)
	if err != nil {
		return res, prev, err
	}
	return res, validators(resp, Validators{}), nil
}

// validators takes the response's validators, keeping old ones it lacks
// (a 304 need not repeat them).
func validators(resp *http.Response, old Validators) Validators {
	v := old
	if e := resp.Header.Get("ETag"); e != "" && len(e) <= 256 {
		v.ETag = e
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "" && len(lm) <= 64 {
		v.LastModified = lm
	}
	return v
}

// retryAfter reads Retry-After in seconds or as a date; at most a day.
func retryAfter(s string) time.Duration {
	var d time.Duration
	if n, err := strconv.Atoi(s); err == nil && n > 0 {
		d = time.Duration(min(n, 86400)) * time.Second
	} else if t, err := http.ParseTime(s); err == nil {
		d = time.Until(t)
	}
	return min(max(d, 0), 24*time.Hour)
}

// safeClient returns a copy of c (or of the default client) that follows
// redirects only to http(s), never from https to http, at most
// maxRedirects times, before asking c's own policy.
func safeClient(c *http.Client) *http.Client {
	if c == nil {
		c = defaultClient
	}
	cc := *c
	own := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		switch {
		case req.URL.Scheme != "http" && req.URL.Scheme != "https":
			return fmt.Errorf("refusing a redirect to %s: only http and https", req.URL.Scheme+"://")
		case req.URL.Scheme == "http" && via[len(via)-1].URL.Scheme == "https":
			return fmt.Errorf("refusing a redirect from https to http (%s)", redact(req.URL.String()))
		case len(via) > maxRedirects:
			return fmt.Errorf("more than %d redirects", maxRedirects)
		case own != nil:
			return own(req, via)
		}
		return nil
	}
	return &cc
}

// unwrapURLError drops the *url.Error wrapper, whose text repeats the
// whole URL (query included) that the caller already names redacted.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", strings.ToLower(ue.Op), ue.Err)
	}
	return err
}

// redact returns a URL without user information, query or fragment, which
// may hold credentials.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a bad URL)"
	}
	u.User, u.RawQuery, u.Fragment, u.RawFragment = nil, "", "", ""
	return u.String()
}
