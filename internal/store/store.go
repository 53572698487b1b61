// Package store keeps the daemon's persistent state in one SQLite database
// under the state directory (/var/lib/scanwarden): findings with their
// evidence, every decision (bans with their expiry, lifts, allows and the
// "watch" decisions that were not acted on), the allow and ignore lists as
// changed at run time, and the history `explain` and `grep` read. It owns the
// schema, its migrations, and the answer to "which bans are in force now".
//
// It knows nothing of packets, detection internals or firewalls: it stores
// findings in their stable JSON form (report.JSONFinding) and decisions as
// the policy made them; reconciling the kernel with ActiveBans is the
// daemon's job.
//
// The database is modernc.org/sqlite (pure Go) in WAL mode with
// synchronous=FULL: a decision is on disk when SaveDecision returns, so it
// survives kill -9 and power loss. Writes go through one connection, so
// they are serialised in Go and never meet SQLITE_BUSY from each other;
// reads use a small pool of read-only connections and run concurrently with
// the writer under WAL. A Store is safe for concurrent use.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// File names inside the state directory.
const (
	DBName   = "scanwarden.db"
	LockName = "scanwarden.lock"
)

// Why these settings:
//   - synchronous=FULL: in WAL mode NORMAL is already safe against a crash
//     of the process (kill -9), but a power cut can take back the last
//     commits. The store is where bans survive a reboot (the kernel's sets
//     do not), and decisions are rare (the policy caps bans per minute), so
//     an fsync per commit (~1 ms on SSD) is cheap insurance.
//   - busy_timeout=5s: our own writers never wait on each other (one
//     connection), but a checkpoint, WAL recovery or an operator's sqlite3
//     shell can hold a lock briefly.
//   - readers: WAL lets them run beside the writer; four is plenty for the
//     control socket, and bounds memory.
const (
	busyTimeout = 5 * time.Second
	maxReaders  = 4
)

// Errors callers may branch on. They are wrapped with the path and what to
// do about it; test with errors.Is or errors.As.
var (
	// ErrNotWritable: the state directory cannot be created or written.
	ErrNotWritable = errors.New("not writable")
	// ErrCorrupt: the database file is damaged or is not a scanwarden
	// database.
	ErrCorrupt = errors.New("corrupt or not a scanwarden database")
	// ErrNotFound: no finding or decision with that ID.
	ErrNotFound = errors.New("not found")
)

// LockedError says that another process holds the state directory's lock:
// two daemons must not share one state (both would enforce, and each would
// lift the other's bans on reconcile).
type LockedError struct {
	Dir string
	PID int // the holder, as it wrote itself into the lock file; 0 if unknown
}

func (e *LockedError) Error() string {
	who := "another scanwarden daemon"
	if e.PID > 0 {
		who = fmt.Sprintf("%s (pid %d)", who, e.PID)
	}
	return fmt.Sprintf("store: state directory %s is in use by %s; stop it first or set --state-dir", e.Dir, who)
}

// VersionError says that the database was written by a newer scanwarden.
// Opening it with older code could misread or damage it, so Open refuses.
type VersionError struct {
	Path      string
	Have, Max int
}

func (e *VersionError) Error() string {
	return fmt.Sprintf("store: %s has schema version %d, but this scanwarden understands up to version %d: "+
		"it was written by a newer scanwarden; upgrade, or move the state directory aside", e.Path, e.Have, e.Max)
}

// Store is the open state database. Methods are safe for concurrent use.
type Store struct {
	dir, path string
	w         *sql.DB // one connection: all writes, serialised
	r         *sql.DB // read-only connections
	lock      *os.File
	now       func() time.Time // for Prune and Stats; tests replace it

	// Prepared statements. With modernc.org/sqlite, parsing a statement
	// costs more than running a small one: before they were prepared once,
	// sqlite3_prepare was 40 % of SaveDecision's time. The writer's are
	// prepared at open (preparing later would need the one connection,
	// which a transaction may hold); the readers' on first use.
	wstmts map[string]*sql.Stmt
	rstmts sync.Map // query → *sql.Stmt

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the state in dir: it creates dir (0750),
// takes dir/scanwarden.lock so that no other daemon uses the same state,
// opens dir/scanwarden.db and brings its schema up to date.
func Open(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: no state directory given; set --state-dir")
	}
	dir = filepath.Clean(dir)
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	lock, err := acquireLock(dir)
	if err != nil {
		return nil, err
	}
	s := &Store{dir: dir, path: filepath.Join(dir, DBName), lock: lock, now: time.Now}
	if err := s.open(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// Close closes the database and releases the lock. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		s.rstmts.Range(func(_, st any) bool {
			errs = append(errs, st.(*sql.Stmt).Close())
			return true
		})
		for _, st := range s.wstmts {
			errs = append(errs, st.Close())
		}
		if s.r != nil {
			errs = append(errs, s.r.Close())
		}
		if s.w != nil {
			// The last connection to close checkpoints the WAL into the
			// database, so a clean stop leaves one file.
			errs = append(errs, s.w.Close())
		}
		if s.lock != nil {
			s.lock.Truncate(0)
			errs = append(errs, s.lock.Close()) // releases the flock
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// prepareDir creates dir if missing and checks that we can write in it.
func prepareDir(dir string) error {
	fi, err := os.Stat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("store: state directory %s exists but is not a directory; remove it or set --state-dir", dir)
	case err == nil:
	case errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("store: cannot use state directory %s: part of the path is a file, not a directory (%w); set --state-dir", dir, err)
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o750); err != nil {
			if errors.Is(err, syscall.ENOTDIR) {
				return fmt.Errorf("store: cannot create state directory %s: part of the path is a file, not a directory (%w); set --state-dir", dir, err)
			}
			return notWritable(dir, err)
		}
	default:
		return notWritable(dir, err)
	}
	// Try it rather than ask access(2): only a real write sees everything
	// that can refuse one (read-only mounts, ACLs, SELinux, capabilities
	// such as CAP_DAC_OVERRIDE that access(2) ignores for non-root users).
	f, err := os.CreateTemp(dir, ".write-test-*")
	if err != nil {
		return notWritable(dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

func notWritable(dir string, err error) error {
	return fmt.Errorf("store: state directory %s is %w: %w; run as root or set --state-dir", dir, ErrNotWritable, err)
}

// open opens both pools, checks what the file is, and migrates.
func (s *Store) open() error {
	// Create the file ourselves so it is not world-readable: it holds
	// customers' addresses. SQLite gives the -wal and -shm files the
	// database's mode.
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS) {
			return notWritable(s.dir, err)
		}
		return fmt.Errorf("store: opening %s: %w", s.path, err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return fmt.Errorf("store: opening %s: %w", s.path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("store: %s is not a regular file; move it aside", s.path)
	}

	s.w, err = sql.Open("sqlite", s.dsn(false))
	if err != nil {
		return fmt.Errorf("store: opening %s: %w", s.path, err)
	}
	s.w.SetMaxOpenConns(1)
	s.w.SetMaxIdleConns(1)
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)
	if err := s.checkFile(); err != nil {
		return err
	}
	if err := s.setWAL(); err != nil {
		return err
	}
	if err := s.migrate(); err != nil {
		return err
	}
	s.wstmts = map[string]*sql.Stmt{}
	for _, q := range writeQueries() {
		st, err := s.w.Prepare(q)
		if err != nil {
			return s.openErr(err)
		}
		s.wstmts[q] = st
	}

	s.r, err = sql.Open("sqlite", s.dsn(true))
	if err != nil {
		return fmt.Errorf("store: opening %s: %w", s.path, err)
	}
	s.r.SetMaxOpenConns(maxReaders)
	s.r.SetMaxIdleConns(maxReaders)
	s.r.SetConnMaxLifetime(0)
	s.r.SetConnMaxIdleTime(0)
	if err := s.r.Ping(); err != nil {
		return s.openErr(err)
	}
	return nil
}

func (s *Store) dsn(readOnly bool) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
	} else {
		// journal_mode is set by setWAL once the file is known to be
		// ours: it is a lasting change to the file.
		q.Add("_pragma", "synchronous(FULL)")
		// One writer connection, so IMMEDIATE costs nothing and makes an
		// outside writer (a sqlite3 shell) wait at BEGIN under
		// busy_timeout rather than fail at the first write.
		q.Set("_txlock", "immediate")
	}
	// A file: URI, so that any character in the path is escaped.
	return "file:" + (&url.URL{Path: s.path}).EscapedPath() + "?" + q.Encode()
}

// checkFile makes sure the file is a database we may use: SQLite at all,
// ours or empty, and not from a newer scanwarden. It changes nothing.
func (s *Store) checkFile() error {
	ctx := context.Background()
	var app, version, objects int64
	if err := s.w.QueryRowContext(ctx, "PRAGMA application_id").Scan(&app); err != nil {
		return s.openErr(err)
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return s.openErr(err)
	}
	if err := s.w.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&objects); err != nil {
		return s.openErr(err)
	}
	switch {
	case app == applicationID && version > int64(len(migrations)):
		return &VersionError{Path: s.path, Have: int(version), Max: len(migrations)}
	case app == applicationID, app == 0 && version == 0 && objects == 0:
		return nil
	case app == 0:
		return fmt.Errorf("store: %s is %w: it has tables but not scanwarden's mark; move it aside or set --state-dir", s.path, ErrCorrupt)
	}
	return fmt.Errorf("store: %s is %w: it belongs to another program (application_id %#x); move it aside or set --state-dir",
		s.path, ErrCorrupt, app)
}

// setWAL switches the file to WAL journal mode (a lasting setting of the
// file, so once is enough for every connection).
func (s *Store) setWAL() error {
	var mode string
	if err := s.w.QueryRow("PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return s.openErr(err)
	}
	if mode != "wal" {
		return fmt.Errorf("store: %s: SQLite could not switch to WAL journal mode (it is %q); "+
			"is the state directory on a network file system? set --state-dir to a local one", s.path, mode)
	}
	return nil
}

// openErr turns an error from opening into one that says what to do.
func (s *Store) openErr(err error) error {
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("store: database %s is %w (%w); move it aside to start with an empty state (its bans are then forgotten) or restore a backup",
			s.path, ErrCorrupt, err)
	case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
		return notWritable(s.dir, err)
	case sqlite3.SQLITE_BUSY:
		return fmt.Errorf("store: database %s is locked by another process (a sqlite3 shell?): %w", s.path, err)
	}
	return fmt.Errorf("store: opening %s: %w", s.path, err)
}

// wrap adds context to an error from a query, calling out corruption.
func (s *Store) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch sqliteCode(err) {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB:
		return fmt.Errorf("store: %s: database %s is %w: %w", op, s.path, ErrCorrupt, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// sqliteCode is the primary SQLite result code of err, or 0.
func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code() & 0xff
	}
	return 0
}

// write runs fn in one write transaction (BEGIN IMMEDIATE on the writer
// connection) and commits it; the commit is on disk when write returns.
func (s *Store) write(op string, fn func(tx *sql.Tx) error) error {
	tx, err := s.w.BeginTx(context.Background(), nil)
	if err != nil {
		return s.wrap(op, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return s.wrap(op, err)
	}
	return s.wrap(op, tx.Commit())
}

// txExec runs a statement in a write transaction, prepared if it is one of
// writeQueries.
func (s *Store) txExec(tx *sql.Tx, q string, args ...any) (sql.Result, error) {
	if st := s.wstmts[q]; st != nil {
		return tx.Stmt(st).Exec(args...)
	}
	return tx.Exec(q, args...)
}

func (s *Store) txQueryRow(tx *sql.Tx, q string, args ...any) *sql.Row {
	if st := s.wstmts[q]; st != nil {
		return tx.Stmt(st).QueryRow(args...)
	}
	return tx.QueryRow(q, args...)
}

// query runs a read on a reader connection, preparing it on first use.
// Every query text comes from a small fixed set (IN lists have one length
// per family), so the cache stays small.
func (s *Store) query(q string, args ...any) (*sql.Rows, error) {
	st, err := s.rstmt(q)
	if err != nil {
		return nil, err
	}
	return st.Query(args...)
}

func (s *Store) queryRow(q string, args ...any) *sql.Row {
	st, err := s.rstmt(q)
	if err != nil {
		return s.r.QueryRow(q, args...) // reports the same error through Scan
	}
	return st.QueryRow(args...)
}

func (s *Store) rstmt(q string) (*sql.Stmt, error) {
	if st, ok := s.rstmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.r.Prepare(q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.rstmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}
