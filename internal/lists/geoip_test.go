package lists

import (
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// geoRecord builds a GeoLite2-Country-shaped record; "" leaves a part out.
func geoRecord(country, registered string) mmdbtype.Map {
	m := mmdbtype.Map{
		"continent": mmdbtype.Map{"code": mmdbtype.String("EU"), "geoname_id": mmdbtype.Uint32(6255148)},
	}
	if country != "" {
		m["country"] = mmdbtype.Map{
			"iso_code":   mmdbtype.String(country),
			"geoname_id": mmdbtype.Uint32(2921044),
			"names":      mmdbtype.Map{"en": mmdbtype.String("Somewhere"), "de": mmdbtype.String("Irgendwo")},
		}
	}
	if registered != "" {
		m["registered_country"] = mmdbtype.Map{"iso_code": mmdbtype.String(registered)}
	}
	return m
}

type geoEntry struct {
	network             string
	country, registered string
}

// testGeoEntries use documentation and other reserved ranges, which the
// writer accepts with IncludeReservedNetworks.
var testGeoEntries = []geoEntry{
	{"192.0.2.0/24", "DE", "DE"},
	{"198.51.100.0/25", "", "US"}, // an anonymous proxy: registered country only
	{"198.51.100.128/25", "DE", "DE"},
	{"203.0.113.0/25", "FR", "FR"},
	{"203.0.113.128/25", "FR", "NL"},
	{"100.64.0.0/10", "nl", ""}, // lower case in the data
	{"2001:db8::/32", "DE", "DE"},
	{"2001:db8:1::/48", "FR", "FR"},
	{"3fff::/20", "", ""}, // a record with neither
}

// writeGeoDB writes a MaxMind DB of entries to path.
func writeGeoDB(t testing.TB, path string, ipVersion int, entries []geoEntry) {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoLite2-Country",
		IPVersion:               ipVersion,
		RecordSize:              24,
		IncludeReservedNetworks: true,
		BuildEpoch:              time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC).Unix(),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		_, n, err := net.ParseCIDR(e.network)
		if err != nil {
			t.Fatal(err)
		}
		if ipVersion == 4 && n.IP.To4() == nil {
			continue
		}
		if err := tree.Insert(n, geoRecord(e.country, e.registered)); err != nil {
			t.Fatalf("insert %s: %v", e.network, err)
		}
	}
	tmp := path + ".tmp"
	fh, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tree.WriteTo(fh); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil { // as geoipupdate does
		t.Fatal(err)
	}
}

func TestGeoIPCountry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "GeoLite2-Country.mmdb")
	writeGeoDB(t, path, 6, testGeoEntries)
	g, err := OpenGeoIP(path)
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]string{
		"192.0.2.1":             "DE",
		"::ffff:192.0.2.1":      "DE",
		"198.51.100.1":          "US", // registered_country
		"198.51.100.200":        "DE",
		"203.0.113.200":         "FR", // country wins over registered_country
		"100.64.1.1":            "NL",
		"2001:db8::1":           "DE",
		"2001:db8:1::1":         "FR",
		"fe80::1%eth0":          "",
		"3fff::1":               "",
		"10.0.0.1":              "",
		"2001:db8:ffff:ffff::1": "DE",
	} {
		if got := g.Country(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Country(%s) = %q, want %q", addr, got, want)
		}
	}
	if got := g.Country(netip.Addr{}); got != "" {
		t.Errorf("Country(invalid) = %q", got)
	}
	info := g.Info()
	if info.Type != "GeoLite2-Country" || info.Path != path || !info.Built.Equal(time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("Info = %+v", info)
	}
}

func TestGeoIPNetworks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "country.mmdb")
	writeGeoDB(t, path, 6, testGeoEntries)
	g, err := OpenGeoIP(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		codes []string
		want  []netip.Prefix
	}{
		{[]string{"DE"}, pfx("192.0.2.0/24", "198.51.100.128/25", "2001:db8::/48", "2001:db8:2::/47", "2001:db8:4::/46",
			"2001:db8:8::/45", "2001:db8:10::/44", "2001:db8:20::/43", "2001:db8:40::/42", "2001:db8:80::/41",
			"2001:db8:100::/40", "2001:db8:200::/39", "2001:db8:400::/38", "2001:db8:800::/37", "2001:db8:1000::/36",
			"2001:db8:2000::/35", "2001:db8:4000::/34", "2001:db8:8000::/33")},
		{[]string{"fr"}, pfx("203.0.113.0/24", "2001:db8:1::/48")}, // the two /25s merged
		{[]string{"US", "NL"}, pfx("100.64.0.0/10", "198.51.100.0/25")},
		{[]string{"DE", "US"}, pfx("192.0.2.0/24", "198.51.100.0/24", "2001:db8::/48", "2001:db8:2::/47", "2001:db8:4::/46",
			"2001:db8:8::/45", "2001:db8:10::/44", "2001:db8:20::/43", "2001:db8:40::/42", "2001:db8:80::/41",
			"2001:db8:100::/40", "2001:db8:200::/39", "2001:db8:400::/38", "2001:db8:800::/37", "2001:db8:1000::/36",
			"2001:db8:2000::/35", "2001:db8:4000::/34", "2001:db8:8000::/33")},
		{[]string{"GB"}, []netip.Prefix{}},
		{nil, nil},
	} {
		got, err := g.Networks(tc.codes)
		if err != nil {
			t.Fatalf("%v: %v", tc.codes, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("Networks(%v) =\n%v\nwant\n%v", tc.codes, got, tc.want)
		}
		// Every network's addresses are in the country, and Lookup agrees.
		for _, p := range got {
			if c := g.Country(p.Addr()); !slices.Contains(tc.codes, c) && !slices.Contains(tc.codes, strings.ToLower(c)) {
				t.Errorf("%v is in %q, not %v", p, c, tc.codes)
			}
		}
	}
	codes, err := g.Codes()
	if err != nil || !slices.Equal(codes, []string{"DE", "FR", "NL", "US"}) {
		t.Errorf("Codes = %v, %v", codes, err)
	}
}

func TestGeoIPv4OnlyDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v4.mmdb")
	writeGeoDB(t, path, 4, testGeoEntries)
	g, err := OpenGeoIP(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := g.Country(netip.MustParseAddr("192.0.2.9")); got != "DE" {
		t.Errorf("v4: %q", got)
	}
	if got := g.Country(netip.MustParseAddr("2001:db8::1")); got != "" {
		t.Errorf("v6 in a v4 database: %q", got)
	}
	got, err := g.Networks([]string{"DE"})
	if err != nil || !slices.Equal(got, pfx("192.0.2.0/24", "198.51.100.128/25")) {
		t.Errorf("Networks = %v, %v", got, err)
	}
}

func TestGeoIPOpenErrors(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"empty.mmdb":   "",
		"garbage.mmdb": "this is not a MaxMind DB\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		if _, err := OpenGeoIP(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, err := OpenGeoIP(filepath.Join(dir, "missing.mmdb")); err == nil {
		t.Error("missing: no error")
	}
	if _, err := OpenGeoIP(dir); err == nil {
		t.Error("directory: no error")
	}
}

func TestGeoIPReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "country.mmdb")
	writeGeoDB(t, path, 6, testGeoEntries)
	g, err := OpenGeoIP(path)
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := g.Reload(); changed || err != nil {
		t.Errorf("unchanged file: %v %v", changed, err)
	}

	// The update moves 192.0.2.0/24 to PL.
	next := slices.Clone(testGeoEntries)
	next[0].country = "PL"
	writeGeoDB(t, path, 6, next)
	later := time.Now().Add(time.Minute)
	os.Chtimes(path, later, later)
	if changed, err := g.Reload(); !changed || err != nil {
		t.Fatalf("changed file: %v %v", changed, err)
	}
	if got := g.Country(netip.MustParseAddr("192.0.2.1")); got != "PL" {
		t.Errorf("after reload: %q", got)
	}
	if codes, _ := g.Codes(); !slices.Contains(codes, "PL") {
		t.Errorf("codes after reload: %v", codes)
	}

	// A half-written update is refused, and the database in use stays.
	data, _ := os.ReadFile(path)
	os.WriteFile(path, data[:len(data)/2], 0o600)
	if changed, err := g.Reload(); changed || err == nil {
		t.Errorf("truncated file: %v %v", changed, err)
	}
	if got := g.Country(netip.MustParseAddr("192.0.2.1")); got != "PL" {
		t.Errorf("after a failed reload: %q", got)
	}
	os.Remove(path)
	if changed, err := g.Reload(); changed || err == nil {
		t.Errorf("removed file: %v %v", changed, err)
	}
}

func TestGeoIPWatch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "country.mmdb")
	writeGeoDB(t, path, 6, testGeoEntries)
	g, err := OpenGeoIP(path)
	if err != nil {
		t.Fatal(err)
	}
	g.Log = testLog(t)
	changed := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { g.Watch(ctx, 5*time.Millisecond, func() { changed <- struct{}{} }); close(done) }()
	next := slices.Clone(testGeoEntries)
	next[0].country = "PL"
	writeGeoDB(t, path, 6, next)
	later := time.Now().Add(time.Minute)
	os.Chtimes(path, later, later)
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no change seen")
	}
	cancel()
	<-done
	if got := g.Country(netip.MustParseAddr("192.0.2.1")); got != "PL" {
		t.Errorf("after watch: %q", got)
	}
}

// BenchmarkGeoIPCountry looks an address up:
//
//	go test -run='^$' -bench=GeoIP -benchmem ./internal/lists
func BenchmarkGeoIPCountry(b *testing.B) {
	path := filepath.Join(b.TempDir(), "country.mmdb")
	writeGeoDB(b, path, 6, testGeoEntries)
	g, err := OpenGeoIP(path)
	if err != nil {
		b.Fatal(err)
	}
	a := netip.MustParseAddr("203.0.113.200")
	for b.Loop() {
		if g.Country(a) != "FR" {
			b.Fatal("wrong country")
		}
	}
}

// BenchmarkGeoIPNetworks walks a database the size of GeoLite2-Country
// (about 500 000 networks over some 250 countries) for three of them:
//
//	go test -run='^$' -bench=GeoIPNetworks -benchmem ./internal/lists
func BenchmarkGeoIPNetworks(b *testing.B) {
	path := filepath.Join(b.TempDir(), "big.mmdb")
	writeBigGeoDB(b, path, 500_000)
	g, err := OpenGeoIP(path)
	if err != nil {
		b.Fatal(err)
	}
	var n int
	for b.Loop() {
		ps, err := g.Networks([]string{"AA", "AB", "AC"})
		if err != nil {
			b.Fatal(err)
		}
		n = len(ps)
	}
	b.ReportMetric(float64(n), "prefixes")
}

// writeBigGeoDB writes n networks: /24s (IPv4) and /48s (IPv6) in runs of
// random length, each run given one of 250 country codes.
func writeBigGeoDB(b *testing.B, path string, n int) {
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var records []mmdbtype.Map
	for i := range 250 {
		cc := string([]byte{'A' + byte(i/26), 'A' + byte(i%26)})
		records = append(records, geoRecord(cc, cc))
	}
	rec := records[0]
	for i := range n {
		if rng.IntN(8) == 0 {
			rec = records[rng.IntN(len(records))]
		}
		var ipnet *net.IPNet
		if i%4 == 3 {
			ip := make(net.IP, 16)
			ip[0], ip[1], ip[2], ip[3], ip[4], ip[5] = 0x2a, 0x00, byte(i>>16), byte(i>>8), byte(i), 0
			ipnet = &net.IPNet{IP: ip, Mask: net.CIDRMask(48, 128)}
		} else {
			v := uint32(16<<24) + uint32(i)<<8
			ipnet = &net.IPNet{IP: net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), 0).To4(), Mask: net.CIDRMask(24, 32)}
		}
		if err := tree.Insert(ipnet, rec); err != nil {
			b.Fatal(err)
		}
	}
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	if _, err := tree.WriteTo(fh); err != nil {
		b.Fatal(err)
	}
}
