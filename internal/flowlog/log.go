package flowlog

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/scanwarden/scanwarden/internal/pidlock"
)

// Options configure a Log. The zero value of each field means its default.
type Options struct {
	// Dir holds the partitions. Open creates it (0750).
	Dir string
	// Partition is the period of one partition file, aligned to UTC
	// multiples of it from the Unix epoch (so 24h partitions start at
	// midnight UTC). A whole number of minutes. Default 24h.
	Partition time.Duration
	// Keep is how long Expire keeps a partition after its period ended.
	// Default 180 days; negative: for ever.
	Keep time.Duration
	// FlushEvery is how long an appended flow may stay in memory only.
	// Default 5s.
	FlushEvery time.Duration
	// BlockFlows is the number of flows in a stored block, the unit a
	// query reads and decodes. Default 1024, at most 16384.
	BlockFlows int
	// BatchFlows is the number of flows sorted by source together before
	// they are cut into blocks: the larger, the fewer blocks a query for
	// one source reads, at 136 bytes of memory a flow. Flows lasting over
	// five minutes are batched apart, a quarter as many. Memory: at most
	// six batches (two filling, one queued, one being written, a spare of
	// each kind), ~40 MB at the default. Default 65536, at least
	// BlockFlows.
	BatchFlows int
}

// Defaults, and why.
const (
	// DefaultPartition: a day, the unit operators ask about and retention
	// is counted in; 180 files for the default Keep.
	DefaultPartition = 24 * time.Hour
	// DefaultKeep: 180 days. Connection logs kept by access providers
	// for abuse handling commonly cover six months; set Keep to what
	// the law where the router runs asks for.
	DefaultKeep = 180 * 24 * time.Hour
	// DefaultFlushEvery: a crash loses at most this much.
	DefaultFlushEvery = 5 * time.Second
	// DefaultBlockFlows: measured on the benchmark mix, blocks of 1 024
	// flows take 24.2 bytes a flow against 23.5 for 4 096 (3 % more), and
	// a query for one source or address decodes a quarter as much.
	DefaultBlockFlows = 1024
	// DefaultBatchFlows: ~9 MB a batch; a source's flows in one batch are
	// in one or two blocks.
	DefaultBatchFlows = 65536
)

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" {
		return o, errors.New("flowlog: no directory given")
	}
	if o.Partition == 0 {
		o.Partition = DefaultPartition
	}
	if o.Keep == 0 {
		o.Keep = DefaultKeep
	}
	if o.FlushEvery <= 0 {
		o.FlushEvery = DefaultFlushEvery
	}
	if o.BlockFlows <= 0 {
		o.BlockFlows = DefaultBlockFlows
	}
	if o.BatchFlows <= 0 {
		o.BatchFlows = DefaultBatchFlows
	}
	switch {
	case o.Partition < time.Minute || o.Partition%time.Minute != 0:
		return o, fmt.Errorf("flowlog: partition period %v is not a whole number of minutes", o.Partition)
	case o.BlockFlows > maxBlockFlows:
		return o, fmt.Errorf("flowlog: %d flows a block, at most %d", o.BlockFlows, maxBlockFlows)
	case o.BatchFlows < o.BlockFlows:
		o.BatchFlows = o.BlockFlows
	}
	return o, nil
}

// Errors callers may branch on.
var (
	ErrClosed   = errors.New("flowlog: log is closed")
	ErrReadOnly = errors.New("flowlog: log is open read-only")
	// ErrNotClosed: Export of the partition being written.
	ErrNotClosed = errors.New("partition is still being written")
	ErrNotFound  = errors.New("no such partition")
)

// LockedError says that another process writes to the directory.
type LockedError struct {
	Dir string
	PID int // as the holder wrote it into the lock file; 0 if unknown
}

func (e *LockedError) Error() string {
	who := "another process"
	if e.PID > 0 {
		who += fmt.Sprintf(" (pid %d)", e.PID)
	}
	return fmt.Sprintf("flowlog: %s is being written by %s; open it read-only or stop that process", e.Dir, who)
}

const lockName = "flowlog.lock"

// Log is a flow log directory, open for writing (Open: one goroutine may
// Append, any may Query) or read-only (OpenReadOnly).
type Log struct {
	dir  string
	opts Options
	ro   bool
	lock *os.File
	now  func() time.Time // tests replace it

	cat catalog

	// The writer: see writer.go. mu serialises Append, Flush, Close and
	// the flush timer.
	mu          sync.Mutex
	closed      bool
	cur         *partRef // the partition being appended to
	nextBatch   int64
	bs          [2]*batch // filling: short flows, long flows
	jobs        chan job
	free        [2]chan *batch
	wdone       chan struct{}
	stop        chan struct{}
	tdone       chan struct{}
	initialPart *wpart // from recover, for the writer goroutine

	errMu    sync.Mutex
	asyncErr error
	errSet   atomic.Bool

	st counters
}

type counters struct {
	appended, rejected, written, dropped, late, corrupt, writeErrors atomic.Int64
}

// Stats are the log's counters since Open.
type Stats struct {
	Appended      int64 // flows Append accepted
	Rejected      int64 // flows Append refused as invalid
	Written       int64 // flows committed to disk
	Pending       int64 // flows in memory only
	Dropped       int64 // flows lost to write errors
	Late          int64 // flows that ended before the partition they went to (clock steps, reordering)
	CorruptBlocks int64 // blocks that failed to decode, in queries and recovery
	WriteErrors   int64
	Partitions    int
	DiskBytes     int64 // all partition files, with their write-ahead logs
}

// Open opens dir for writing, creating it if needed. Only one process may
// write a directory: Open takes dir/flowlog.lock and fails with a
// *LockedError if another holds it.
//
// After a crash, SQLite's write-ahead log brings every partition back to its
// last commit (a torn last write is dropped, older data is untouched), Open
// removes half-created partition files and rewrites the blocks written
// ahead of a batch's completion into sorted ones. A partition it cannot
// read does not make it fail: the newest is moved aside (writing goes on in
// a new one), and the first Append or Flush reports the problem as a
// *WriteError.
func Open(opts Options) (*Log, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	dir := filepath.Clean(opts.Dir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("flowlog: creating %s: %w", dir, err)
	}
	lock, err := acquireLock(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: opts, lock: lock, now: time.Now}
	l.cat.init(dir)
	if err := l.recover(); err != nil {
		l.cat.closeAll()
		releaseLock(lock)
		return nil, err
	}
	l.startWriter()
	return l, nil
}

// OpenReadOnly opens a flow log directory for queries while (or after)
// another process writes it, or one made by Import.
func OpenReadOnly(dir string) (*Log, error) {
	dir = filepath.Clean(dir)
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("flowlog: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("flowlog: %s is not a directory (an export? Import it, or read it with ScanExport)", dir)
	}
	opts, _ := Options{Dir: dir}.withDefaults()
	l := &Log{dir: dir, opts: opts, ro: true, now: time.Now, closed: true}
	l.cat.init(dir)
	return l, nil
}

// Dir is the log's directory.
func (l *Log) Dir() string { return l.dir }

// Close writes what is in memory, closes the files and releases the
// directory. It is idempotent.
func (l *Log) Close() error {
	var err error
	if !l.ro {
		err = l.stopWriter()
	}
	l.cat.closeAll()
	if l.lock != nil {
		releaseLock(l.lock)
		l.lock = nil
	}
	return err
}

// Stats returns the counters and the directory's size.
func (l *Log) Stats() Stats {
	s := Stats{
		Appended: l.st.appended.Load(), Rejected: l.st.rejected.Load(), Written: l.st.written.Load(),
		Dropped: l.st.dropped.Load(), Late: l.st.late.Load(), CorruptBlocks: l.st.corrupt.Load(),
		WriteErrors: l.st.writeErrors.Load(),
	}
	s.Pending = s.Appended - s.Written - s.Dropped
	if ps, err := listParts(l.dir); err == nil {
		s.Partitions = len(ps)
		for _, p := range ps {
			s.DiskBytes += fileBytes(filepath.Join(l.dir, p.name+partSuffix))
		}
	}
	return s
}

// fileBytes is the size of a database with its WAL.
func fileBytes(path string) int64 {
	var n int64
	for _, p := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// Partition describes one partition file.
type Partition struct {
	Name       string    // flows-20260618: for Export
	Start, End time.Time // the period; flows are placed by when they ended
	Flows      int64
	Bytes      int64 // on disk, with the write-ahead log
	// Closed: no more flows will be written to it, so it can be
	// exported. Every partition but the newest is closed; the newest is
	// when no process holds the directory for writing.
	Closed bool
}

// Partitions lists the partitions, oldest first.
func (l *Log) Partitions() ([]Partition, error) {
	ctx := context.Background()
	parts, err := l.cat.refresh(ctx)
	if err != nil {
		return nil, err
	}
	var out []Partition
	for i, p := range parts {
		closed := i < len(parts)-1 || l.writerGone()
		info, err := l.cat.info(ctx, p, closed)
		if errors.Is(err, os.ErrNotExist) {
			continue // expired meanwhile
		}
		if err != nil {
			return out, err
		}
		out = append(out, Partition{Name: p.name, Start: nanoTime(info.start), End: nanoTime(info.end),
			Flows: info.flows, Bytes: fileBytes(p.path()), Closed: closed})
	}
	return out, nil
}

// writerGone reports whether no process writes the directory.
func (l *Log) writerGone() bool {
	if !l.ro {
		return false
	}
	f, err := os.OpenFile(filepath.Join(l.dir, lockName), os.O_RDONLY, 0)
	if err != nil {
		return true
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return false
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}

// Expire drops the partitions whose period ended more than Keep before now:
// each is one file removed, whatever it holds. The partition being written
// is never dropped.
func (l *Log) Expire(now time.Time) (int, error) {
	if l.ro {
		return 0, ErrReadOnly
	}
	if l.opts.Keep < 0 {
		return 0, nil
	}
	reply := make(chan expireResult, 1)
	if err := l.send(job{kind: jobExpire, cutoff: now.Add(-l.opts.Keep).UnixNano(), expired: reply}); err != nil {
		return 0, err
	}
	r := <-reply
	return r.n, r.err
}

type expireResult struct {
	n   int
	err error
}

// expire runs in the writer goroutine, so no write is under way.
func (l *Log) expire(cutoff int64, keep string) (int, error) {
	ctx := context.Background()
	parts, err := l.cat.refresh(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for i, p := range parts {
		if p.name == keep || i == len(parts)-1 {
			continue
		}
		info, err := l.cat.info(ctx, p, true)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			errs = append(errs, err)
			continue
		}
		// A partition too damaged to say its period ends where the next
		// one starts.
		end := info.end
		if err != nil {
			end = parts[i+1].start
		}
		if end > cutoff {
			continue
		}
		if err := l.cat.remove(p); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

func acquireLock(dir string) (*os.File, error) {
	f, holder, err := pidlock.Acquire(filepath.Join(dir, lockName))
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, pidlock.ErrHeld):
		return nil, &LockedError{Dir: dir, PID: holder}
	}
	return nil, fmt.Errorf("flowlog: lock file: %w", err)
}

func releaseLock(f *os.File) {
	f.Truncate(0)
	f.Close()
}
