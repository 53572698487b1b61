package flowlog

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

func openLog(t *testing.T, opts Options) *Log {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	l, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func appendAll(t *testing.T, l *Log, flows []Flow) {
	t.Helper()
	for i := range flows {
		if err := l.Append(&flows[i]); err != nil {
			t.Fatalf("Append(%+v): %v", flows[i], err)
		}
	}
}

func collect(t *testing.T, l *Log, f Filter) []Flow {
	t.Helper()
	var out []Flow
	if err := l.Query(context.Background(), f, func(fl *Flow) error {
		out = append(out, *fl)
		return nil
	}); err != nil {
		t.Fatalf("Query(%+v): %v", f, err)
	}
	return out
}

// matchFlow is Filter's documentation as code: the oracle for norm.match
// and the block filters.
func (n *norm) matchFlow(f *Flow) bool {
	if n.Proto != 0 && f.Proto != n.Proto {
		return false
	}
	if n.Port != 0 && f.Dst.Port() != n.Port && f.NATDst.Port() != n.Port {
		return false
	}
	if n.Src.IsValid() && !n.Src.Contains(f.Src.Addr()) && !n.Src.Contains(f.NATSrc.Addr()) {
		return false
	}
	if n.Dst.IsValid() && !n.Dst.Contains(f.Dst.Addr()) && !n.Dst.Contains(f.NATDst.Addr()) {
		return false
	}
	if !n.Until.IsZero() && f.Start.After(n.Until) {
		return false
	}
	if !n.Since.IsZero() && !f.End.IsZero() && f.End.Before(n.Since) {
		return false
	}
	return true
}

func filterFlows(flows []Flow, f Filter) []Flow {
	q, _ := f.norm()
	var out []Flow
	for i := range flows {
		if q.matchFlow(&flows[i]) {
			out = append(out, flows[i])
		}
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	flows := append(oddFlows(), randFlows(1, 5000, t0)...)
	l := openLog(t, Options{Dir: dir, BlockFlows: 256, BatchFlows: 2000})
	// The odd flow ending in 2262 goes by the clock: make it that day.
	l.now = func() time.Time { return t0 }
	appendAll(t, l, flows)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	sameFlows(t, collect(t, l, Filter{}), flows)

	// Reopened, and read-only, everything is there.
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, Options{Dir: dir})
	sameFlows(t, collect(t, l2, Filter{}), flows)
	more := randFlows(2, 100, t0.Add(time.Minute))
	appendAll(t, l2, more)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	sameFlows(t, collect(t, ro, Filter{}), append(slices.Clone(flows), more...))
	if err := ro.Append(&flows[0]); !errors.Is(err, ErrReadOnly) {
		t.Errorf("Append on a read-only log: %v", err)
	}
	st := l2.Stats()
	if st.Appended != 100 || st.Written != 100 || st.Pending != 0 || st.Partitions != 1 || st.DiskBytes == 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestFilterSemantics pins what each field of Filter matches.
func TestFilterSemantics(t *testing.T) {
	ap := netip.MustParseAddrPort
	pf := netip.MustParsePrefix
	nat := Flow{Start: t0, End: t0.Add(time.Minute), Proto: 6, Src: ap("10.0.3.7:40000"), Dst: ap("198.51.100.103:6881"),
		NATSrc: ap("203.0.113.5:40000"), NATDst: ap("198.51.100.103:6881")}
	dnat := Flow{Start: t0.Add(time.Hour), End: t0.Add(2 * time.Hour), Proto: 17, Src: ap("192.0.2.1:5000"), Dst: ap("203.0.113.5:53"),
		NATSrc: ap("192.0.2.1:5000"), NATDst: ap("10.0.9.9:5353")}
	open := Flow{Start: t0.Add(-24 * time.Hour), Proto: 6, Src: ap("[2001:db8::1]:1"), Dst: ap("[2001:db8::2]:22"),
		NATSrc: ap("[2001:db8::1]:1"), NATDst: ap("[2001:db8::2]:22")}
	l := openLog(t, Options{})
	appendAll(t, l, []Flow{nat, dnat, open})
	l.Flush()
	cases := []struct {
		name string
		f    Filter
		want []Flow
	}{
		{"all", Filter{}, []Flow{nat, dnat, open}},
		{"internal client", Filter{Src: pf("10.0.3.7/32")}, []Flow{nat}},
		{"its subnet", Filter{Src: pf("10.0.0.0/16")}, []Flow{nat}},
		{"our public address as source", Filter{Src: pf("203.0.113.5/32")}, []Flow{nat}},
		{"our public address as destination", Filter{Dst: pf("203.0.113.5/32")}, []Flow{dnat}},
		{"the forwarded-to server", Filter{Dst: pf("10.0.9.9/32")}, []Flow{dnat}},
		{"destination and port", Filter{Dst: pf("198.51.100.103/32"), Port: 6881}, []Flow{nat}},
		{"port after DNAT", Filter{Port: 5353}, []Flow{dnat}},
		{"port before DNAT", Filter{Port: 53}, []Flow{dnat}},
		{"wrong port", Filter{Dst: pf("198.51.100.103/32"), Port: 6882}, nil},
		{"proto", Filter{Proto: 17}, []Flow{dnat}},
		{"IPv6 prefix", Filter{Src: pf("2001:db8::/32")}, []Flow{open}},
		{"IPv4 prefix does not match IPv6", Filter{Src: pf("0.0.0.0/0")}, []Flow{nat, dnat}},
		// 15:50 to 16:05: nat (15:50-15:51) overlaps, dnat (16:50-17:50)
		// does not; the open flow started the day before and lasts.
		{"window", Filter{Since: t0, Until: t0.Add(15 * time.Minute)}, []Flow{nat, open}},
		{"window touching the end", Filter{Since: t0.Add(time.Minute), Until: t0.Add(time.Minute)}, []Flow{nat, open}},
		{"after", Filter{Since: t0.Add(90 * time.Minute)}, []Flow{dnat, open}},
		{"before the open flow", Filter{Until: t0.Add(-25 * time.Hour)}, nil},
		{"until only", Filter{Until: t0.Add(30 * time.Minute)}, []Flow{nat, open}},
		{"empty range", Filter{Since: t0.Add(time.Hour), Until: t0}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sameFlows(t, collect(t, l, c.f), c.want)
		})
	}
	if got := collect(t, l, Filter{Limit: 2}); len(got) != 2 {
		t.Errorf("Limit 2 gave %d flows", len(got))
	}
	stop := errors.New("stop")
	n := 0
	err := l.Query(context.Background(), Filter{}, func(*Flow) error { n++; return stop })
	if err != stop || n != 1 {
		t.Errorf("fn's error: Query returned %v after %d flows", err, n)
	}
	if err := l.Query(context.Background(), Filter{Src: netip.PrefixFrom(netip.MustParseAddr("10.0.0.1"), 99)}, nil); err == nil {
		t.Error("an invalid prefix was accepted")
	}
}

// TestFilterPruning checks that the block index and filters never hide a
// match: every query gives what a plain scan of the input gives.
func TestFilterPruning(t *testing.T) {
	flows := randFlows(7, 20000, t0)
	l := openLog(t, Options{BlockFlows: 128, BatchFlows: 4096, Partition: time.Hour})
	appendAll(t, l, flows)
	l.Flush()
	r := rand.New(rand.NewPCG(8, 9))
	for i := range 300 {
		var f Filter
		pick := flows[r.IntN(len(flows))]
		switch r.IntN(4) {
		case 0:
			f.Src = netip.PrefixFrom(pick.Src.Addr(), pick.Src.Addr().BitLen())
		case 1:
			f.Src = netip.PrefixFrom(pick.NATSrc.Addr(), pick.NATSrc.Addr().BitLen()-r.IntN(8)).Masked()
		case 2:
			f.Dst = netip.PrefixFrom(pick.Dst.Addr(), pick.Dst.Addr().BitLen())
		case 3:
			f.Dst = netip.PrefixFrom(pick.NATDst.Addr(), pick.NATDst.Addr().BitLen()-r.IntN(8)).Masked()
		}
		if r.IntN(2) == 0 {
			f.Port = pick.Dst.Port()
		}
		if r.IntN(2) == 0 {
			f.Since = pick.Start.Add(-time.Duration(r.Int64N(int64(time.Hour))))
			f.Until = f.Since.Add(time.Duration(r.Int64N(int64(time.Hour))))
		}
		want := filterFlows(flows, f)
		got := collect(t, l, f)
		if len(got) != len(want) {
			t.Fatalf("query %d %+v: %d flows, a scan finds %d", i, f, len(got), len(want))
		}
		sameFlows(t, got, want)
	}
}

func TestPartitionsAndExpire(t *testing.T) {
	dir := t.TempDir()
	day := 24 * time.Hour
	midnight := time.Date(2026, 6, 18, 0, 0, 0, 0, time.UTC)
	l := openLog(t, Options{Dir: dir, Keep: 2 * day})
	var flows []Flow
	for d := range 5 {
		// Flows around each midnight: the one ending after midnight goes
		// to the next day, wherever it started.
		fs := randFlows(uint64(d), 50, midnight.Add(time.Duration(d)*day-30*time.Second))
		for i := range fs {
			fs[i].End = midnight.Add(time.Duration(d)*day + time.Duration(i-25)*time.Second)
		}
		flows = append(flows, fs...)
	}
	appendAll(t, l, flows)
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	ps, err := l.Partitions()
	if err != nil {
		t.Fatal(err)
	}
	// 17 June (25 flows ending before the first midnight), 18 to 22 June.
	if len(ps) != 6 || ps[0].Name != "flows-20260617" || ps[5].Name != "flows-20260622" {
		t.Fatalf("partitions: %+v", ps)
	}
	var total int64
	for i, p := range ps {
		total += p.Flows
		if p.Closed != (i < len(ps)-1) || p.End.Sub(p.Start) != day || p.Bytes == 0 {
			t.Errorf("partition %+v", p)
		}
	}
	if total != int64(len(flows)) || ps[0].Flows != 25 || ps[1].Flows != 50 {
		t.Errorf("flows by partition: %+v", ps)
	}
	sameFlows(t, collect(t, l, Filter{}), flows)
	// Across the boundary: 23:59:50 to 00:00:10 on the second night.
	since := midnight.Add(day - 10*time.Second)
	f := Filter{Since: since, Until: since.Add(20 * time.Second)}
	sameFlows(t, collect(t, l, f), filterFlows(flows, f))

	// Keep 2 days from 22 June 12:00: the periods ending by 20 June
	// 12:00 go, which are 17, 18 and 19 June.
	n, err := l.Expire(midnight.Add(4*day + 12*time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("Expire: %d, %v", n, err)
	}
	ps, _ = l.Partitions()
	if len(ps) != 3 || ps[0].Name != "flows-20260620" {
		t.Fatalf("after Expire: %+v", ps)
	}
	var kept []Flow
	for _, f := range flows {
		if !f.End.Before(midnight.Add(2 * day)) {
			kept = append(kept, f)
		}
	}
	sameFlows(t, collect(t, l, Filter{}), kept)
	// Much later, everything but the newest goes: it is being written.
	if n, err := l.Expire(midnight.Add(100 * day)); err != nil || n != 2 {
		t.Errorf("Expire of all: %d, %v", n, err)
	}
	if files, _ := filepath.Glob(filepath.Join(dir, "flows-*.db")); len(files) != 1 {
		t.Errorf("files left: %v", files)
	}
	lf := openLog(t, Options{Keep: -1})
	appendAll(t, lf, flows[:1])
	if n, err := lf.Expire(midnight.Add(10000 * day)); n != 0 || err != nil {
		t.Errorf("Keep < 0 expired %d, %v", n, err)
	}
}

// TestLateAndFuture: a flow ending before the current partition goes into
// it; one far in the future goes by the clock.
func TestLateAndFuture(t *testing.T) {
	l := openLog(t, Options{})
	l.now = func() time.Time { return t0 }
	fs := randFlows(3, 3, t0)
	fs[1].Start, fs[1].End = t0.Add(-72*time.Hour), t0.Add(-48*time.Hour)
	fs[2].Start, fs[2].End = t0, t0.Add(1000*24*time.Hour)
	appendAll(t, l, fs)
	l.Flush()
	ps, _ := l.Partitions()
	if len(ps) != 1 || ps[0].Name != "flows-20260618" || ps[0].Flows != 3 {
		t.Errorf("partitions %+v", ps)
	}
	if st := l.Stats(); st.Late != 1 {
		t.Errorf("late %d", st.Late)
	}
	sameFlows(t, collect(t, l, Filter{Until: t0.Add(-47 * time.Hour)}), fs[1:2])
}

func TestInvalidFlows(t *testing.T) {
	l := openLog(t, Options{})
	good := oddFlows()[0]
	for _, bad := range []func(*Flow){
		func(f *Flow) { f.Start = time.Time{} },
		func(f *Flow) { f.Start = time.Date(1969, 1, 1, 0, 0, 0, 0, time.UTC) },
		func(f *Flow) { f.End = time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC) },
		func(f *Flow) { f.Outcome = 4 },
		func(f *Flow) { f.Comm = string(make([]byte, MaxStringLen+1)) },
		func(f *Flow) { f.Iface = string(make([]byte, MaxStringLen+1)) },
	} {
		f := good
		bad(&f)
		if err := l.Append(&f); !errors.Is(err, ErrInvalidFlow) {
			t.Errorf("Append(%+v) = %v", f, err)
		}
	}
	if st := l.Stats(); st.Rejected != 6 || st.Appended != 0 {
		t.Errorf("stats %+v", st)
	}
	l.Close()
	if err := l.Append(&good); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestLocked(t *testing.T) {
	dir := t.TempDir()
	openLog(t, Options{Dir: dir})
	_, err := Open(Options{Dir: dir})
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Errorf("second Open: %v", err)
	}
}

// TestFlushEvery: flows reach the disk without Flush.
func TestFlushEvery(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, FlushEvery: 50 * time.Millisecond})
	flows := randFlows(4, 100, t0)
	appendAll(t, l, flows)
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := collect(t, ro, Filter{})
		if len(got) == len(flows) {
			sameFlows(t, got, flows)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d flows on disk after 10s", len(got), len(flows))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReadWhileWriting: a reader sees each flow at most once while the
// writer writes, flushes and seals batches, and in the end all of them.
func TestReadWhileWriting(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, BlockFlows: 64, BatchFlows: 1000, FlushEvery: 5 * time.Millisecond})
	flows := randFlows(5, 20000, t0)
	for i := range flows { // distinct, to count duplicates
		flows[i].OrigBytes = uint64(i)
	}
	ro, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range flows {
			if err := l.Append(&flows[i]); err != nil {
				t.Error(err)
				return
			}
			if i%3000 == 0 {
				l.Flush()
			}
		}
		l.Flush()
	}()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for last := false; !last; {
		select {
		case <-done:
			last = true
		default:
		}
		seen := map[uint64]bool{}
		err := ro.Query(context.Background(), Filter{}, func(f *Flow) error {
			if seen[f.OrigBytes] {
				t.Fatalf("flow %d seen twice", f.OrigBytes)
			}
			seen[f.OrigBytes] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if last && len(seen) != len(flows) {
			t.Fatalf("after the last Flush the reader sees %d of %d flows", len(seen), len(flows))
		}
	}
}

func TestExportImport(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, BlockFlows: 100})
	day1 := randFlows(6, 3000, t0)
	day2 := randFlows(7, 10, t0.Add(24*time.Hour))
	appendAll(t, l, append(slices.Clone(day1), day2...))
	if err := l.Flush(); err != nil {
		t.Fatal(err)
	}
	ps, _ := l.Partitions()
	if len(ps) != 2 {
		t.Fatalf("partitions %+v", ps)
	}
	var buf bytes.Buffer
	if err := l.Export(ps[1].Name, &buf); !errors.Is(err, ErrNotClosed) {
		t.Errorf("Export of the partition being written: %v", err)
	}
	if err := l.Export("flows-20200101", &buf); !errors.Is(err, ErrNotFound) {
		t.Errorf("Export of a missing partition: %v", err)
	}
	buf.Reset()
	if err := l.Export(ps[0].Name, &buf); err != nil {
		t.Fatal(err)
	}
	export := slices.Clone(buf.Bytes())
	t.Logf("export of %d flows: %d bytes (%.1f a flow); partition file %d bytes",
		len(day1), len(export), float64(len(export))/float64(len(day1)), ps[0].Bytes)

	// Straight from the stream.
	var got []Flow
	if err := ScanExport(bytes.NewReader(export), Filter{}, func(f *Flow) error { got = append(got, *f); return nil }); err != nil {
		t.Fatal(err)
	}
	sameFlows(t, got, day1)

	// Imported and queried.
	arch := t.TempDir()
	p, err := Import(arch, bytes.NewReader(export))
	if err != nil {
		t.Fatal(err)
	}
	if p.Name != ps[0].Name || p.Flows != int64(len(day1)) || !p.Start.Equal(ps[0].Start) || !p.End.Equal(ps[0].End) {
		t.Errorf("imported %+v, exported %+v", p, ps[0])
	}
	ro, err := OpenReadOnly(arch)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	sameFlows(t, collect(t, ro, Filter{}), day1)
	pick := day1[17]
	f := Filter{Dst: netip.PrefixFrom(pick.Dst.Addr(), pick.Dst.Addr().BitLen()), Since: pick.Start, Until: pick.Start}
	sameFlows(t, collect(t, ro, f), filterFlows(day1, f))
	rps, _ := ro.Partitions()
	if len(rps) != 1 || !rps[0].Closed || rps[0].Flows != int64(len(day1)) {
		t.Errorf("imported partitions %+v", rps)
	}
	if _, err := Import(arch, bytes.NewReader(export)); err == nil {
		t.Error("Import over an existing partition succeeded")
	}
	// The closed log's newest partition can be exported once no one
	// writes it.
	l.Close()
	ro2, _ := OpenReadOnly(dir)
	defer ro2.Close()
	if err := ro2.Export(ps[1].Name, &bytes.Buffer{}); err != nil {
		t.Errorf("Export of the newest partition after Close: %v", err)
	}

	// A cut or damaged export is refused, and leaves nothing behind.
	for _, bad := range [][]byte{export[:len(export)/2], export[:len(export)-1], []byte("hello"), {}} {
		d := t.TempDir()
		if _, err := Import(d, bytes.NewReader(bad)); err == nil {
			t.Errorf("Import of %d bytes of %d succeeded", len(bad), len(export))
		}
		if files, _ := os.ReadDir(d); len(files) != 0 {
			t.Errorf("failed Import left %v", files)
		}
		if err := ScanExport(bytes.NewReader(bad), Filter{}, func(*Flow) error { return nil }); err == nil {
			t.Errorf("ScanExport of %d bytes of %d succeeded", len(bad), len(export))
		}
	}
}

// FuzzScanExport: an export from elsewhere is hostile input; reading it
// gives flows or an error, never a panic.
func FuzzScanExport(f *testing.F) {
	dir := f.TempDir()
	l, err := Open(Options{Dir: dir, BlockFlows: 16})
	if err != nil {
		f.Fatal(err)
	}
	for _, fl := range append(randFlows(1, 40, t0), randFlows(2, 1, t0.Add(24*time.Hour))...) {
		l.Append(&fl)
	}
	l.Flush()
	var buf bytes.Buffer
	if err := l.Export("flows-20260618", &buf); err != nil {
		f.Fatal(err)
	}
	l.Close()
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		ScanExport(bytes.NewReader(b), Filter{}, func(*Flow) error { return nil })
	})
}

// TestCorruptBlock: a damaged block is skipped, the rest is returned, and
// the error says so.
func TestCorruptBlock(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, BlockFlows: 100})
	flows := randFlows(8, 1000, t0)
	appendAll(t, l, flows)
	l.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, "flows-20260618.db"))
	if err != nil {
		t.Fatal(err)
	}
	var lost int
	if err := db.QueryRow("SELECT n FROM blocks WHERE id = (SELECT min(id) FROM data)").Scan(&lost); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("UPDATE data SET block = CAST(substr(block, 1, 20) || zeroblob(10) || substr(block, 31) AS BLOB) WHERE id = (SELECT min(id) FROM data)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	ro, _ := OpenReadOnly(dir)
	defer ro.Close()
	n := 0
	err = ro.Query(context.Background(), Filter{}, func(*Flow) error { n++; return nil })
	if !errors.Is(err, ErrCorrupt) || n != len(flows)-lost {
		t.Errorf("Query over a damaged block: %d flows, %v", n, err)
	}
	if st := ro.Stats(); st.CorruptBlocks != 1 {
		t.Errorf("stats %+v", st)
	}
}

// TestOpenWithLeftovers: a half-created partition and a damaged newest
// partition do not stop Open, and older data stays.
func TestOpenWithLeftovers(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir})
	old := randFlows(9, 100, t0)
	appendAll(t, l, old)
	l.Close()
	os.WriteFile(filepath.Join(dir, tmpPrefix+"flows-20260619.db"), []byte("half"), 0o640)
	os.WriteFile(filepath.Join(dir, "flows-20260619.db"), []byte("not a database"), 0o640)
	l2, err := Open(Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Close()
	if _, err := os.Stat(filepath.Join(dir, tmpPrefix+"flows-20260619.db")); err == nil {
		t.Error("leftover temporary file kept")
	}
	more := randFlows(10, 10, t0.Add(24*time.Hour))
	for i := range more {
		err := l2.Append(&more[i])
		var we *WriteError
		if err != nil && (!errors.As(err, &we) || !errors.Is(err, ErrCorrupt)) {
			t.Fatalf("Append: %v", err)
		}
	}
	l2.Flush()
	sameFlows(t, collect(t, l2, Filter{}), append(slices.Clone(old), more...))
	if m, _ := filepath.Glob(filepath.Join(dir, "flows-20260619.db.corrupt-*")); len(m) != 1 {
		t.Errorf("damaged partition not moved aside: %v", m)
	}
}

// TestLongFlowsApart: flows lasting over five minutes (or still open) are
// in blocks of their own, so that the others' blocks span a short time.
func TestLongFlowsApart(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, Options{Dir: dir, BlockFlows: 64, BatchFlows: 1024})
	flows := randFlows(13, 5000, t0) // durations up to an hour, a tenth open
	appendAll(t, l, flows)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "flows-20260618.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query("SELECT b.min_start, b.max_end, d.block FROM blocks b JOIN data d ON d.id = b.id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var d decoder
	blocks, long, n := 0, 0, 0
	for rows.Next() {
		var minStart, maxEnd int64
		var blob []byte
		if err := rows.Scan(&minStart, &maxEnd, &blob); err != nil {
			t.Fatal(err)
		}
		recs, _, err := d.decode(blob)
		if err != nil {
			t.Fatal(err)
		}
		kind := recs[0].long()
		for _, r := range recs {
			if r.long() != kind {
				t.Fatalf("block %d mixes short and long flows", blocks)
			}
		}
		if !kind && maxEnd-minStart > int64(10*time.Minute) {
			t.Errorf("block %d of short flows spans %v", blocks, time.Duration(maxEnd-minStart))
		}
		blocks++
		n += len(recs)
		if kind {
			long++
		}
	}
	if n != len(flows) || long == 0 || long == blocks {
		t.Errorf("%d flows in %d blocks, %d of long flows", n, blocks, long)
	}
}
