package store

import (
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// openTest opens a store in a fresh directory with the clock at t0.
func openTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s.now = func() time.Time { return t0 }
	t.Cleanup(func() { s.Close() })
	return s
}

func pragma(t *testing.T, path, name string) int64 {
	t.Helper()
	return sqlInt(t, path, "PRAGMA "+name)
}

// sqlInt runs a query returning one integer on the file at path, beside
// the store.
func sqlInt(t *testing.T, path, query string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var v int64
	if err := db.QueryRow(query).Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestOpenMigratesAndReopens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "nested")
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SaveDecision(ban("192.0.2.1/32", t0, time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("state directory mode %v is open to others", fi.Mode())
	}
	path := filepath.Join(dir, DBName)
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm()&0o007 != 0 {
		t.Errorf("database file: %v, mode %v", err, fi.Mode())
	}
	if v := pragma(t, path, "user_version"); v != int64(len(migrations)) {
		t.Errorf("user_version = %d, want %d", v, len(migrations))
	}
	if v := pragma(t, path, "application_id"); v != applicationID {
		t.Errorf("application_id = %#x, want %#x", v, applicationID)
	}
	// Reopening runs no migration again and keeps the data.
	for range 2 {
		s, err := Open(dir)
		if err != nil {
			t.Fatalf("reopen: %v", err)
		}
		ds, err := s.Decisions(pfx("192.0.2.1/32"), 0)
		if err != nil || len(ds) != 1 {
			t.Fatalf("after reopen: %v, %d decisions", err, len(ds))
		}
		st, err := s.Stats()
		if err != nil || st.SchemaVersion != len(migrations) || st.Decisions != 1 || st.DBBytes == 0 {
			t.Fatalf("stats after reopen: %+v, %v", st, err)
		}
		s.Close()
	}
}

func TestFutureSchemaRefused(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := sql.Open("sqlite", filepath.Join(dir, DBName))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()

	_, err = Open(dir)
	var ve *VersionError
	if !errors.As(err, &ve) || ve.Have != 99 || ve.Max != len(migrations) {
		t.Fatalf("Open = %v, want a VersionError for 99", err)
	}
	if !strings.Contains(err.Error(), "newer scanwarden") {
		t.Errorf("message does not say why: %v", err)
	}
	t.Log(err)
	// The refusal released the lock and changed nothing.
	if v := pragma(t, filepath.Join(dir, DBName), "user_version"); v != 99 {
		t.Errorf("user_version changed to %d", v)
	}
}

func TestCorruptOrForeignDatabase(t *testing.T) {
	t.Run("garbage", func(t *testing.T) {
		dir := t.TempDir()
		junk := []byte(strings.Repeat("this is not a database\n", 400))
		if err := os.WriteFile(filepath.Join(dir, DBName), junk, 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(dir)
		if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "move it aside") {
			t.Fatalf("Open = %v, want ErrCorrupt saying what to do", err)
		}
		t.Log(err)
	})
	t.Run("another program's", func(t *testing.T) {
		dir := t.TempDir()
		db, err := sql.Open("sqlite", filepath.Join(dir, DBName))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec("CREATE TABLE customers (name TEXT)"); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = Open(dir)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("Open = %v, want ErrCorrupt", err)
		}
		t.Log(err)
		// Refusing changed nothing in the other program's file.
		db, _ = sql.Open("sqlite", filepath.Join(dir, DBName))
		defer db.Close()
		var mode string
		if err := db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "delete" {
			t.Errorf("journal mode of the refused file is %q, %v", mode, err)
		}
	})
}

func TestLockRefusesSecondOpen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() {
		t.Fatalf("second Open = %v, want LockedError naming pid %d", err, os.Getpid())
	}
	if !strings.Contains(err.Error(), "in use by another scanwarden daemon") {
		t.Errorf("unclear message: %v", err)
	}
	t.Log(err)
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestUnusableDirectory(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct{ dir, want string }{
		"a file":         {file, "is not a directory"},
		"under a file":   {filepath.Join(file, "state"), "part of the path is a file"},
		"empty dir name": {"", "no state directory"},
	}
	if os.Geteuid() != 0 {
		ro := filepath.Join(base, "ro")
		if err := os.Mkdir(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(ro, 0o700) })
		cases["read-only dir"] = struct{ dir, want string }{ro, "is not writable"}
		cases["under a read-only dir"] = struct{ dir, want string }{filepath.Join(ro, "state"), "is not writable"}
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			s, err := Open(c.dir)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--state-dir") {
				t.Fatalf("Open = %v, want it to say %q and what to do", err, c.want)
			}
			if strings.Contains(c.want, "not writable") && !errors.Is(err, ErrNotWritable) {
				t.Errorf("not ErrNotWritable: %v", err)
			}
			t.Log(err)
		})
	}
}

// TestConcurrentUse runs writers and readers at once (run it with -race).
func TestConcurrentUse(t *testing.T) {
	s := openTest(t)
	const writers, readers, each = 4, 4, 50
	var wg sync.WaitGroup
	errc := make(chan error, writers+readers)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				d := ban(addr4(10, byte(w), byte(i), 1)+"/32", t0.Add(time.Duration(i)*time.Second), time.Hour)
				if err := s.SaveDecision(d); err != nil {
					errc <- err
					return
				}
				f := finding(addr4(10, byte(w), byte(i), 1), t0)
				if err := s.SaveFinding(f); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	for range readers {
		wg.Go(func() {
			for range each {
				if _, err := s.ActiveBans(t0); err != nil {
					errc <- err
					return
				}
				if _, err := s.Grep(mustAddr("10.1.2.1"), 10); err != nil {
					errc <- err
					return
				}
				if _, err := s.Stats(); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	bans, err := s.ActiveBans(t0)
	if err != nil || len(bans) != writers*each {
		t.Fatalf("ActiveBans: %d, %v; want %d", len(bans), err, writers*each)
	}
}

func TestDuplicateDecisionIsNoOp(t *testing.T) {
	s := openTest(t)
	d := ban("192.0.2.7/32", t0, time.Hour)
	for range 2 {
		if err := s.SaveDecision(d); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := s.Decisions(d.Target, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("%d decisions, %v", len(ds), err)
	}
}

func TestInvalidInputs(t *testing.T) {
	s := openTest(t)
	bad := []*decision.Decision{
		{Kind: decision.Ban, Target: pfx("192.0.2.1/32"), Created: t0},
		{ID: "x", Kind: "explode", Target: pfx("192.0.2.1/32"), Created: t0},
		{ID: "x", Kind: decision.Ban, Created: t0},
		{ID: "x", Kind: decision.Ban, Target: pfx("192.0.2.1/32")},
		{ID: "x", Kind: decision.Ban, Target: pfx("192.0.2.1/32"), Created: t0, Expires: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, d := range bad {
		if err := s.SaveDecision(d); err == nil {
			t.Errorf("SaveDecision(%+v) succeeded", d)
		}
	}
	if err := s.AddListEntry("deny", pfx("10.0.0.0/8"), "", "cli", t0); err == nil {
		t.Error("AddListEntry to an unknown list succeeded")
	}
	if _, err := s.Finding("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Finding(nope) = %v, want ErrNotFound", err)
	}
	if _, err := s.Decision("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Decision(nope) = %v, want ErrNotFound", err)
	}
}

// TestMigrationSteps adds a step to the schema's history: an old database is
// upgraded in place, a failing step leaves no trace, and the older code then
// refuses the upgraded file.
func TestMigrationSteps(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	save(t, s, ban("192.0.2.1/32", t0, 0))
	s.Close()
	path := filepath.Join(dir, DBName)
	orig := migrations
	t.Cleanup(func() { migrations = orig })

	migrations = append(orig[:len(orig):len(orig)], "CREATE TABLE half_done (x INTEGER); CREATE TABLE broken (")
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "migrating schema to version") {
		t.Fatalf("Open with a broken step = %v", err)
	}
	if v := pragma(t, path, "user_version"); v != int64(len(orig)) {
		t.Errorf("user_version after a failed step = %d, want %d", v, len(orig))
	}
	if n := sqlInt(t, path, "SELECT count(*) FROM sqlite_schema WHERE name = 'half_done'"); n != 0 {
		t.Errorf("a failed step left part of itself")
	}

	migrations = append(orig[:len(orig):len(orig)], "CREATE TABLE later (x INTEGER)")
	s, err = Open(dir)
	if err != nil {
		t.Fatalf("upgrading: %v", err)
	}
	if ds, err := s.Decisions(pfx("192.0.2.1/32"), 0); err != nil || len(ds) != 1 {
		t.Errorf("data after upgrade: %d decisions, %v", len(ds), err)
	}
	s.Close()
	if v := pragma(t, path, "user_version"); v != int64(len(orig)+1) {
		t.Errorf("user_version after upgrade = %d", v)
	}

	migrations = orig
	var ve *VersionError
	if _, err := Open(dir); !errors.As(err, &ve) {
		t.Errorf("older code opening the upgraded file: %v, want VersionError", err)
	}
}
