package flowlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// A partition is one SQLite file, flows-YYYYMMDD.db (or
// flows-YYYYMMDDTHHMM.db when the period does not start at midnight),
// named by the UTC start of its period.
const (
	partPrefix = "flows-"
	partSuffix = ".db"
	tmpPrefix  = ".tmp-"
	// applicationID marks the file as a scanwarden flow log partition
	// ("SWFL"), apart from the state database ("SWDN") and other programs'.
	applicationID = 0x5357464c
	schemaVersion = 1
	// pageSize: blocks are ~10-40 KB, so with SQLite's default of 4 KB
	// each is a chain of overflow pages; 16 KB pages make the chains a
	// quarter as long.
	pageSize    = 16384
	busyTimeout = 5 * time.Second
)

// schema of a partition. Times are Unix nanoseconds; addresses in the index
// are 17-byte keys (family, 16-byte form) so that a prefix is a key range.
//
// The index (blocks) is apart from the filters and the data so that reading
// it for every block of a day reads a few megabytes, not the blobs; and the
// filters are apart from the data because a query reads a filter for every
// block in its time range, but the data only of the blocks that pass.
//
// meta holds the period ('start', 'end'), 'created', the block 'format',
// and 'flows', the count of flows, kept in step by every write so that
// listing partitions need not add up their blocks.
const schema = `
CREATE TABLE meta (key TEXT PRIMARY KEY, value ANY NOT NULL) STRICT;
CREATE TABLE blocks (
	id        INTEGER PRIMARY KEY, -- in order of writing
	batch     INTEGER NOT NULL,    -- the flows sorted together (Options.BatchFlows)
	tail      INTEGER NOT NULL,    -- 1: written before its batch was complete; replaced when it is
	n         INTEGER NOT NULL,
	min_start INTEGER NOT NULL,
	max_end   INTEGER NOT NULL,    -- 9223372036854775807 if a flow is still open
	src_lo    BLOB NOT NULL,
	src_hi    BLOB NOT NULL,
	nsrc_lo   BLOB,                -- NULL: no flow with a translated source
	nsrc_hi   BLOB,
	size      INTEGER NOT NULL     -- bytes of data and filter
) STRICT;
CREATE INDEX blocks_end ON blocks (max_end);
CREATE INDEX blocks_start ON blocks (min_start);
CREATE INDEX blocks_tail ON blocks (batch) WHERE tail != 0;
CREATE TABLE filters (id INTEGER PRIMARY KEY, bloom BLOB NOT NULL) STRICT;
CREATE TABLE data (id INTEGER PRIMARY KEY, block BLOB NOT NULL) STRICT;
`

// partName is the name of the partition starting at start (UTC).
func partName(start time.Time) string {
	start = start.UTC()
	switch {
	case start.Hour() == 0 && start.Minute() == 0 && start.Second() == 0 && start.Nanosecond() == 0:
		return partPrefix + start.Format("20060102")
	case start.Second() == 0 && start.Nanosecond() == 0:
		return partPrefix + start.Format("20060102T1504")
	}
	return partPrefix + start.Format("20060102T150405")
}

// parsePartName reads a file name back: the partition's name and start.
func parsePartName(file string) (string, time.Time, bool) {
	name, ok := strings.CutSuffix(file, partSuffix)
	if !ok {
		return "", time.Time{}, false
	}
	stamp, ok := strings.CutPrefix(name, partPrefix)
	if !ok {
		return "", time.Time{}, false
	}
	for _, layout := range []string{"20060102", "20060102T1504", "20060102T150405"} {
		if len(stamp) != len(layout) {
			continue
		}
		if t, err := time.Parse(layout, stamp); err == nil {
			return name, t, true
		}
	}
	return "", time.Time{}, false
}

// dsn is the data source name for modernc.org/sqlite (driver "sqlite").
//
// synchronous=NORMAL: in WAL mode a commit survives the process being
// killed; only a power cut can take back the commits since the last
// checkpoint (at most a few seconds of flows, like FlushEvery itself). FULL
// would cost an fsync per block batch, for a log whose newest seconds are
// in memory anyway.
func dsn(path string, readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		q.Add("_pragma", "synchronous(NORMAL)")
		q.Add("_pragma", "journal_size_limit(67108864)")
		q.Set("_txlock", "immediate")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

func openDB(path string, readOnly bool, conns int) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(path, readOnly))
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// partMeta is what a partition file says about itself.
type partMeta struct {
	start, end int64
}

// readMeta checks that db is a partition this code can read and returns its
// period.
func readMeta(ctx context.Context, db *sql.DB, path string) (partMeta, error) {
	var app, version int64
	if err := db.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		return partMeta{}, dbErr(path, err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return partMeta{}, dbErr(path, err)
	}
	switch {
	case app != applicationID:
		return partMeta{}, fmt.Errorf("flowlog: %s is %w: not a flow log partition (application_id %#x)", path, ErrCorrupt, app)
	case version > schemaVersion:
		return partMeta{}, fmt.Errorf("flowlog: %s has format version %d, this scanwarden reads up to %d: upgrade", path, version, schemaVersion)
	}
	var m partMeta
	rows, err := db.QueryContext(ctx, "SELECT key, value FROM meta WHERE key IN ('start', 'end')")
	if err != nil {
		return m, dbErr(path, err)
	}
	defer rows.Close()
	seen := 0
	for rows.Next() {
		var k string
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			return m, dbErr(path, err)
		}
		if k == "start" {
			m.start = v
		} else {
			m.end = v
		}
		seen++
	}
	if err := rows.Err(); err != nil {
		return m, dbErr(path, err)
	}
	if seen != 2 || m.end <= m.start {
		return m, fmt.Errorf("flowlog: %s is %w: its period is missing", path, ErrCorrupt)
	}
	return m, nil
}

// createPart makes a partition file for [start, end) in dir: built under a
// temporary name and renamed into place, so that a crash leaves the whole
// file or none (Open removes leftovers).
func createPart(dir, name string, start, end int64) error {
	final := filepath.Join(dir, name+partSuffix)
	if _, err := os.Stat(final); err == nil {
		return fmt.Errorf("flowlog: creating partition %s: it exists", final)
	}
	tmp := filepath.Join(dir, tmpPrefix+name+partSuffix)
	err := buildPartFile(tmp, start, end)
	if err == nil {
		err = os.Rename(tmp, final)
	}
	if err != nil {
		removeDBFiles(tmp)
		return fmt.Errorf("flowlog: creating partition %s: %w", final, err)
	}
	return syncDir(dir)
}

// buildPartFile creates an empty partition file at path.
func buildPartFile(path string, start, end int64) error {
	removeDBFiles(path)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return err
	}
	f.Close()
	db, err := openDB(path, false, 1)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf("PRAGMA page_size = %d", pageSize)); err != nil {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, s := range []string{
		schema,
		fmt.Sprintf("PRAGMA application_id = %d", applicationID),
		fmt.Sprintf("PRAGMA user_version = %d", schemaVersion),
	} {
		if _, err := tx.Exec(s); err != nil {
			return err
		}
	}
	_, err = tx.Exec("INSERT INTO meta (key, value) VALUES ('start', ?), ('end', ?), ('created', ?), ('format', ?), ('flows', 0)",
		start, end, time.Now().UnixNano(), blockVersion)
	if err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	return db.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// removeDBFiles removes a database and its WAL and shared-memory files.
func removeDBFiles(path string) error {
	var errs []error
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listParts lists the partition files in dir, oldest first.
func listParts(dir string) ([]partFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("flowlog: reading %s: %w", dir, err)
	}
	var ps []partFile
	for _, e := range ents {
		if name, start, ok := parsePartName(e.Name()); ok && e.Type().IsRegular() {
			ps = append(ps, partFile{name: name, start: start.UnixNano()})
		}
	}
	slices.SortFunc(ps, func(a, b partFile) int { return int(min(max(a.start-b.start, -1), 1)) })
	return ps, nil
}

type partFile struct {
	name  string
	start int64
}

// dbErr adds the file to an SQLite error and calls out corruption. nil
// stays nil.
func dbErr(path string, err error) error {
	if err == nil {
		return nil
	}
	var e *sqlite.Error
	if errors.As(err, &e) {
		switch e.Code() & 0xff {
		case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
			return fmt.Errorf("flowlog: %s is %w: %w", path, ErrCorrupt, err)
		}
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("flowlog: %s: disk full: %w", path, err)
	}
	return fmt.Errorf("flowlog: %s: %w", path, err)
}
