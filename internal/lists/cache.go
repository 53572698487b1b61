package lists

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/scanwarden/scanwarden/internal/atomicfile"
)

// The cache of a URL feed is its last good list in the plain feed format,
// under a header that says what it is the list of:
//
//	# scanwarden feed cache; written by scanwarden, do not edit
//	# key: <sha256 of the URL and max>
//	# etag: "abc"
//	# last-modified: Mon, 02 Jan 2006 15:04:05 GMT
//	192.0.2.0/24
//
// The key is a hash, not the URL, because a URL may hold an API key. A
// cache made for another URL or max is ignored.
const cacheMagic = "# scanwarden feed cache"

func cacheKey(f Feed) string {
	h := sha256.Sum256([]byte(f.URL + "\x00" + strconv.Itoa(f.Max)))
	return hex.EncodeToString(h[:])
}

func (r *Runner) cachePath(f Feed) string {
	if r.CacheDir == "" || f.URL == "" {
		return ""
	}
	return filepath.Join(r.CacheDir, f.Name+".list")
}

// readCache returns the cached list of f and its validators, if there is
// a usable one.
func (r *Runner) readCache(f Feed, log *slog.Logger) (Result, Validators, bool) {
	path := r.cachePath(f)
	if path == "" {
		return Result{}, Validators{}, false
	}
	data, err := readFileMax(path, MaxBody)
	if err != nil {
		if !os.IsNotExist(err) {
			log.Warn("feed cache not read", "path", path, "err", err)
		}
		return Result{}, Validators{}, false
	}
	if !bytes.HasPrefix(data, []byte(cacheMagic)) {
		log.Warn("feed cache ignored: not a cache file", "path", path)
		return Result{}, Validators{}, false
	}
	var v Validators
	key := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, val, ok := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), ": ")
		if !strings.HasPrefix(sc.Text(), "# ") {
			break
		}
		if ok {
			switch k {
			case "key":
				key = val
			case "etag":
				v.ETag = val
			case "last-modified":
				v.LastModified = val
			}
		}
	}
	if key != cacheKey(f) {
		log.Info("feed cache ignored: made for another URL or max", "path", path)
		return Result{}, Validators{}, false
	}
	res, err := ParseFeed(bytes.NewReader(data), 0)
	if err != nil || res.Bad > 0 {
		log.Warn("feed cache ignored: damaged", "path", path, "err", err, "bad", res.Bad)
		return Result{}, Validators{}, false
	}
	return res, v, true
}

func readFileMax(path string, limit int64) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() || st.Size() > limit {
		return nil, fmt.Errorf("%s: not a regular file of at most %d bytes", path, limit)
	}
	return os.ReadFile(path)
}

// writeCache replaces f's cache atomically (a temporary file renamed over
// it), so a crash leaves the old cache or the new, never half of one.
func (r *Runner) writeCache(f Feed, res Result, v Validators, log *slog.Logger) {
	path := r.cachePath(f)
	if path == "" {
		return
	}
	if err := writeCacheFile(path, f, res, v); err != nil {
		log.Warn("feed cache not written", "path", path, "err", err)
	}
}

func writeCacheFile(path string, f Feed, res Result, v Validators) error {
	var b bytes.Buffer
	b.Grow(len(res.Prefixes) * 18)
	oneLine := strings.NewReplacer("\r", "", "\n", "")
	fmt.Fprintf(&b, "%s; written by scanwarden, do not edit\n# key: %s\n", cacheMagic, cacheKey(f))
	fmt.Fprintf(&b, "# etag: %s\n# last-modified: %s\n", oneLine.Replace(v.ETag), oneLine.Replace(v.LastModified))
	for _, p := range res.Prefixes {
		b.WriteString(p.String())
		b.WriteByte('\n')
	}
	return atomicfile.Write(path, 0o600, func(w io.Writer) error {
		_, err := w.Write(b.Bytes())
		return err
	})
}
