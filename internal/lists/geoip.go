package lists

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// GeoIP answers which country an address is in, and which networks a
// country has, from a MaxMind-format database: GeoLite2/GeoIP2 Country or
// City, or DB-IP's country and city files. The country is the record's
// country.iso_code, or registered_country.iso_code when it has none
// (GeoLite2 leaves country out for anonymous proxies and satellite
// providers).
//
// The file is read into memory rather than mapped: a database updater that
// rewrites the file in place would otherwise change it under a running
// lookup (or, truncating it, crash the process with SIGBUS). Reload swaps
// in a new copy when the file changes; lookups in flight keep the old one.
type GeoIP struct {
	path string
	Log  *slog.Logger // for Watch; nil: slog.Default()

	reload sync.Mutex
	db     atomic.Pointer[geoDB]
}

type geoDB struct {
	r     *maxminddb.Reader
	size  int64
	mtime time.Time

	codesOnce sync.Once
	codes     []string
	codesErr  error
}

// maxGeoDB bounds the file read into memory: GeoLite2-City is about 60 MB,
// DB-IP's city file about 130; a country file is under 10.
const maxGeoDB = 512 << 20

// OpenGeoIP reads the database at path.
func OpenGeoIP(path string) (*GeoIP, error) {
	g := &GeoIP{path: path}
	db, err := openGeoDB(path)
	if err != nil {
		return nil, err
	}
	g.db.Store(db)
	return g, nil
}

func openGeoDB(path string) (*geoDB, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("geoip database: %w", err)
	}
	data, err := readFileMax(path, maxGeoDB)
	if err != nil {
		return nil, fmt.Errorf("geoip database: %w", err)
	}
	r, err := maxminddb.OpenBytes(data)
	if err != nil {
		return nil, fmt.Errorf("geoip database %s: %w", path, err)
	}
	return &geoDB{r: r, size: st.Size(), mtime: st.ModTime()}, nil
}

// countryRecord is the part of a record Country reads.
type countryRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	RegisteredCountry struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"registered_country"`
}

func (c *countryRecord) code() string {
	if c.Country.ISOCode != "" {
		return strings.ToUpper(c.Country.ISOCode)
	}
	return strings.ToUpper(c.RegisteredCountry.ISOCode)
}

// Country returns the ISO 3166 code of a's country, or "" if the database
// does not know it (an IPv6 address in an IPv4-only database, a private
// address, a network without a country).
func (g *GeoIP) Country(a netip.Addr) string {
	var rec countryRecord
	if err := g.db.Load().r.Lookup(a.Unmap().WithZone("")).Decode(&rec); err != nil {
		return ""
	}
	return rec.code()
}

// Networks returns the merged prefixes of the countries with the given
// codes (any case), walking the whole database (a country database takes
// well under a second).
func (g *GeoIP) Networks(codes []string) ([]netip.Prefix, error) {
	want := map[string]bool{}
	for _, c := range codes {
		want[strings.ToUpper(strings.TrimSpace(c))] = true
	}
	if len(want) == 0 {
		return nil, nil
	}
	var ps []netip.Prefix
	err := g.db.Load().walk(func(p netip.Prefix, code string) {
		if want[code] {
			ps = append(ps, p)
		}
	})
	if err != nil {
		return nil, err
	}
	return Merge(ps), nil
}

// walk calls fn for each network of the database with its country code.
// Records are shared by many networks, so each is decoded once.
func (db *geoDB) walk(fn func(netip.Prefix, string)) error {
	decoded := map[uintptr]string{}
	for res := range db.r.Networks() {
		if err := res.Err(); err != nil {
			return fmt.Errorf("geoip database: %w", err)
		}
		code, ok := decoded[res.Offset()]
		if !ok {
			var rec countryRecord
			if err := res.Decode(&rec); err != nil {
				return fmt.Errorf("geoip database: network %v: %w", res.Prefix(), err)
			}
			code = rec.code()
			decoded[res.Offset()] = code
		}
		fn(res.Prefix(), code)
	}
	return nil
}

// Codes returns every country code in the database, sorted, so that a
// configured code that matches nothing (UK for GB, say) can be reported.
// It walks the database once per version of the file.
func (g *GeoIP) Codes() ([]string, error) {
	db := g.db.Load()
	db.codesOnce.Do(func() {
		seen := map[string]bool{}
		db.codesErr = db.walk(func(_ netip.Prefix, code string) {
			if code != "" {
				seen[code] = true
			}
		})
		for c := range seen {
			db.codes = append(db.codes, c)
		}
		slices.Sort(db.codes)
	})
	return slices.Clone(db.codes), db.codesErr
}

// GeoIPInfo describes the database in use.
type GeoIPInfo struct {
	Path     string
	Type     string // database_type: GeoLite2-Country, DBIP-Country-Lite, ...
	Built    time.Time
	Modified time.Time // the file's
}

// Info describes the database in use.
func (g *GeoIP) Info() GeoIPInfo {
	db := g.db.Load()
	return GeoIPInfo{g.path, db.r.Metadata.DatabaseType, db.r.Metadata.BuildTime(), db.mtime}
}

// Reload reads the file again if its size or modification time changed,
// and says whether it did. A file that cannot be read or is not a
// database (an update caught half-written) leaves the one in use in place,
// and the next Reload tries again.
func (g *GeoIP) Reload() (bool, error) {
	g.reload.Lock()
	defer g.reload.Unlock()
	st, err := os.Stat(g.path)
	if err != nil {
		return false, fmt.Errorf("geoip database: %w", err)
	}
	cur := g.db.Load()
	if st.Size() == cur.size && st.ModTime().Equal(cur.mtime) {
		return false, nil
	}
	db, err := openGeoDB(g.path)
	if err != nil {
		return false, err
	}
	g.db.Store(db)
	return true, nil
}

// Watch calls Reload every interval until ctx is done, and onChange after
// each reload that changed the database (to recompute country sets).
// onChange is never called concurrently.
func (g *GeoIP) Watch(ctx context.Context, every time.Duration, onChange func()) {
	log := g.Log
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := g.Reload()
		switch {
		case err != nil:
			log.Warn("geoip database not reloaded; keeping the one in use", "path", g.path, "err", err)
		case changed:
			info := g.Info()
			log.Info("geoip database reloaded", "path", g.path, "type", info.Type, "built", info.Built.UTC())
			if onChange != nil {
				onChange()
			}
		}
	}
}
