package flowlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// How writing works. Append copies a flow into the current batch (a slice
// of rec): short flows into one of BatchFlows, long ones (see longFlow)
// into one of a quarter of that, which fills over many short batches, so
// that long blocks are few and sorted over a wide range. A full batch goes
// to the writer goroutine, which sorts it by source, cuts it into blocks
// and commits them in one transaction. So that a flow is on disk within
// FlushEvery even when batches fill slowly, a timer hands the part of a
// batch not yet written to the writer as "tail" blocks; the batch's final
// commit deletes its tail blocks in the same transaction as it adds the
// sorted ones, so a reader sees each flow exactly once.
//
// A flow goes to the partition of its end time (its start if still open):
// the newest partition, since flows end in about the order they arrive. A
// flow ending before that partition began (a clock step, reordering) goes
// there too, counted as late, so that only the newest partition is ever
// written and the others are closed. One ending after it rolls over to
// the partition of its time, unless that is more than maxSkew ahead of the
// clock (then it goes by the clock).
const maxSkew = time.Hour

// Kinds of batch.
const (
	shortFlows = 0
	longFlows  = 1
)

// batch is the flows sorted together.
type batch struct {
	kind   int
	part   partRef
	id     int64
	recs   []rec
	st     strTable
	queued int       // recs[:queued] are handed to the writer as tails (Append's)
	since  time.Time // when recs[queued] was appended (Append's)
	onDisk int       // how many are committed as tails (the writer's)
}

type partRef struct {
	name       string
	start, end int64
}

type jobKind uint8

const (
	jobTail jobKind = iota
	jobSeal
	jobSync
	jobExpire
)

type job struct {
	kind    jobKind
	b       *batch
	recs    []rec    // jobTail: the flows to write
	strs    []string // jobTail: the batch's strings so far
	done    chan struct{}
	cutoff  int64
	expired chan expireResult
}

// WriteError reports a failed write after the flows concerned were
// accepted: Append and Flush return it once, for the failures since the
// last report.
type WriteError struct {
	Err     error
	Dropped int64 // flows lost, all failures included
}

func (e *WriteError) Error() string {
	return fmt.Sprintf("flowlog: writing flows (%d lost so far): %v", e.Dropped, e.Err)
}

func (e *WriteError) Unwrap() error { return e.Err }

// Append adds a flow. It returns an error wrapping ErrInvalidFlow if the
// flow cannot be stored (it is then counted as rejected), ErrClosed after
// Close, or a *WriteError for an earlier write that failed (the flow given
// was accepted). It copies the flow. It blocks only when the writer is a
// full batch behind.
func (l *Log) Append(f *Flow) error {
	if l.ro {
		return ErrReadOnly
	}
	if err := f.check(); err != nil {
		l.st.rejected.Add(1)
		return err
	}
	start, key := f.Start.UnixNano(), f.Start.UnixNano()
	kind := longFlows
	if !f.End.IsZero() {
		key = f.End.UnixNano()
		if key-start <= longFlow {
			kind = shortFlows
		}
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	b := l.batchFor(key, kind)
	if key < b.part.start {
		l.st.late.Add(1)
	}
	n := len(b.recs)
	b.recs = b.recs[:n+1]
	b.recs[n].fill(f, b.st.add)
	if n == b.queued {
		b.since = time.Now()
	}
	if n+1 == cap(b.recs) {
		l.sealLocked(kind)
	}
	l.mu.Unlock()
	l.st.appended.Add(1)
	return l.takeErr()
}

// Flush writes every flow appended so far and waits for the commit. It
// returns a *WriteError if a write failed since the last report.
func (l *Log) Flush() error {
	if l.ro {
		return ErrReadOnly
	}
	done := make(chan struct{})
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.queueTailsLocked()
	l.jobs <- job{kind: jobSync, done: done}
	l.mu.Unlock()
	<-done
	return l.takeErr()
}

// batchFor returns the batch of the kind for a flow with partition key
// key: the current one if the flow belongs to its partition and it has
// room, else a new one, rolling over to a new partition if need be.
func (l *Log) batchFor(key int64, kind int) *batch {
	b := l.bs[kind]
	if b != nil && key < b.part.end && !b.st.full() {
		return b
	}
	if l.cur == nil || key >= l.cur.end {
		if now := l.now().UnixNano(); key > now+int64(maxSkew) {
			key = now
		}
		if l.cur == nil || key >= l.cur.end {
			l.sealLocked(shortFlows)
			l.sealLocked(longFlows)
			l.cur, l.nextBatch = l.newRef(key, l.cur), 1
		}
	}
	if b != nil && b.part.name == l.cur.name && !b.st.full() {
		return b // a flow from the future, gone by the clock
	}
	l.sealLocked(kind)
	size := l.opts.BatchFlows
	if kind == longFlows {
		size = max(size/4, l.opts.BlockFlows)
	}
	select {
	case b = <-l.free[kind]:
	default:
		b = &batch{kind: kind, recs: make([]rec, 0, size)}
	}
	b.part, b.id = *l.cur, l.nextBatch
	l.nextBatch++
	b.recs, b.queued, b.onDisk = b.recs[:0], 0, 0
	b.st.reset()
	l.bs[kind] = b
	return b
}

// newRef is the partition for key, after prev.
func (l *Log) newRef(key int64, prev *partRef) *partRef {
	p := int64(l.opts.Partition)
	start := key - key%p
	end := start + p
	if prev != nil && start < prev.end {
		start = prev.end
	}
	return &partRef{name: partName(nanoTime(start)), start: start, end: end}
}

func (l *Log) sealLocked(kind int) {
	b := l.bs[kind]
	l.bs[kind] = nil
	if b == nil {
		return
	}
	if len(b.recs) == 0 {
		select {
		case l.free[kind] <- b:
		default:
		}
		return
	}
	l.jobs <- job{kind: jobSeal, b: b}
}

// queueTailsLocked hands the flows not yet on disk to the writer.
func (l *Log) queueTailsLocked() {
	for _, b := range l.bs {
		if b == nil || len(b.recs) == b.queued {
			continue
		}
		l.jobs <- job{kind: jobTail, b: b, recs: b.recs[b.queued:len(b.recs)], strs: b.st.strs}
		b.queued = len(b.recs)
	}
}

// send queues a job unless the log is closed.
func (l *Log) send(j job) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	l.jobs <- j
	return nil
}

// takeErr returns the write error since the last report, once.
func (l *Log) takeErr() error {
	if !l.errSet.Load() { // the common case: one atomic load
		return nil
	}
	l.errMu.Lock()
	defer l.errMu.Unlock()
	err := l.asyncErr
	l.asyncErr = nil
	l.errSet.Store(false)
	if err == nil {
		return nil
	}
	return &WriteError{Err: err, Dropped: l.st.dropped.Load()}
}

func (l *Log) setErr(err error) {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	l.st.writeErrors.Add(1)
	if l.asyncErr == nil {
		l.asyncErr = err
	}
	l.errSet.Store(true)
}

func (l *Log) startWriter() {
	// One batch queued behind the one being written: enough to keep the
	// writer busy, and the bound on memory (Options.BatchFlows).
	l.jobs = make(chan job, 1)
	l.free = [2]chan *batch{make(chan *batch, 1), make(chan *batch, 1)}
	l.wdone = make(chan struct{})
	l.stop = make(chan struct{})
	l.tdone = make(chan struct{})
	w := &writer{l: l, enc: newEncoder(), p: l.initialPart}
	l.initialPart = nil
	go w.run()
	go l.flushTimer()
}

func (l *Log) flushTimer() {
	defer close(l.tdone)
	tick := max(l.opts.FlushEvery/5, time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		l.mu.Lock()
		if !l.closed {
			for _, b := range l.bs {
				if b != nil && len(b.recs) > b.queued && time.Since(b.since) >= l.opts.FlushEvery-tick {
					l.queueTailsLocked()
					break
				}
			}
		}
		l.mu.Unlock()
	}
}

func (l *Log) stopWriter() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.sealLocked(shortFlows)
	l.sealLocked(longFlows)
	l.closed = true
	close(l.jobs)
	l.mu.Unlock()
	close(l.stop)
	<-l.tdone
	<-l.wdone
	return l.takeErr()
}

// writer is the goroutine that encodes and commits.
type writer struct {
	l    *Log
	enc  *encoder
	p    *wpart // the partition open for writing
	keys []sortKey
}

func (w *writer) run() {
	l := w.l
	defer close(l.wdone)
	for j := range l.jobs {
		switch j.kind {
		case jobTail:
			w.tail(j)
		case jobSeal:
			w.seal(j.b)
			select {
			case l.free[j.b.kind] <- j.b:
			default:
			}
		case jobSync:
			close(j.done)
		case jobExpire:
			keep := ""
			if w.p != nil {
				keep = w.p.name
			}
			n, err := l.expire(j.cutoff, keep)
			j.expired <- expireResult{n, err}
		}
	}
	if w.p != nil {
		if err := w.p.close(); err != nil {
			l.setErr(err)
		}
	}
}

// tail writes flows of a batch ahead, as they are: they are the batch's
// and Append's (read-only) until the batch is sealed, and they live only
// until then, so sorting them (in a copy) would buy little.
func (w *writer) tail(j job) {
	if err := w.write(j.b.part, j.b.id, true, j.recs, j.strs); err != nil {
		w.l.setErr(err) // the flows are still in the batch: its seal retries
		return
	}
	j.b.onDisk += len(j.recs)
	w.l.st.written.Add(int64(len(j.recs)))
}

func (w *writer) seal(b *batch) {
	w.keys = sortInPlace(b.recs, w.keys)
	if err := w.write(b.part, b.id, false, b.recs, b.st.strs); err != nil {
		// The transaction rolled back: the batch's tail blocks remain,
		// and Open turns them into sorted blocks later.
		w.l.st.dropped.Add(int64(len(b.recs) - b.onDisk))
		w.l.setErr(err)
		return
	}
	w.l.st.written.Add(int64(len(b.recs) - b.onDisk))
}

// write commits recs as blocks of batch id: tail blocks, or the batch's
// final blocks, which replace its tail blocks.
func (w *writer) write(ref partRef, id int64, tail bool, recs []rec, strs []string) error {
	p, err := w.part(ref)
	if err != nil {
		return err
	}
	return p.write(w.enc, w.l.opts.BlockFlows, id, tail, recs, strs)
}

// part opens the partition for writing, creating it if needed, and closes
// the previous one.
func (w *writer) part(ref partRef) (*wpart, error) {
	if w.p != nil && w.p.name == ref.name {
		return w.p, nil
	}
	if w.p != nil {
		if err := w.p.close(); err != nil {
			w.l.setErr(err)
		}
		w.p = nil
	}
	path := filepath.Join(w.l.dir, ref.name+partSuffix)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := createPart(w.l.dir, ref.name, ref.start, ref.end); err != nil {
			return nil, err
		}
	}
	p, err := openWPart(path, ref.name)
	if err != nil {
		return nil, err
	}
	w.p = p
	return p, nil
}

// wpart is a partition open for writing.
type wpart struct {
	name, path string
	db         *sql.DB
	ins        [3]*sql.Stmt
	ranges     [][2]int
}

func openWPart(path, name string) (*wpart, error) {
	db, err := openDB(path, false, 1)
	if err != nil {
		return nil, dbErr(path, err)
	}
	p := &wpart{name: name, path: path, db: db}
	if _, err := readMeta(context.Background(), db, path); err != nil {
		db.Close()
		return nil, err
	}
	var mode string
	if err := db.QueryRow("PRAGMA journal_mode = WAL").Scan(&mode); err != nil || mode != "wal" {
		db.Close()
		if err == nil {
			err = fmt.Errorf("journal mode is %q, not wal; is the directory on a network file system?", mode)
		}
		return nil, dbErr(path, err)
	}
	for i, q := range []string{
		`INSERT INTO blocks (batch, tail, n, min_start, max_end, src_lo, src_hi, nsrc_lo, nsrc_hi, size)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		`INSERT INTO filters (id, bloom) VALUES (?, ?)`,
		`INSERT INTO data (id, block) VALUES (?, ?)`,
	} {
		if p.ins[i], err = db.Prepare(q); err != nil {
			p.close()
			return nil, dbErr(path, err)
		}
	}
	return p, nil
}

// close checkpoints the WAL into the file (the last connection to close
// does) and closes it.
func (p *wpart) close() error {
	var errs []error
	for _, s := range p.ins {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	errs = append(errs, p.db.Close())
	return dbErr(p.path, errors.Join(errs...))
}

func (p *wpart) write(enc *encoder, blockFlows int, id int64, tail bool, recs []rec, strs []string) error {
	tx, err := p.db.Begin()
	if err != nil {
		return dbErr(p.path, err)
	}
	defer tx.Rollback()
	added := int64(len(recs))
	if !tail {
		deleted, err := deleteTails(tx, id)
		if err != nil {
			return dbErr(p.path, err)
		}
		added -= deleted
	}
	if err := addFlows(tx, added); err != nil {
		return dbErr(p.path, err)
	}
	ins := [3]*sql.Stmt{tx.Stmt(p.ins[0]), tx.Stmt(p.ins[1]), tx.Stmt(p.ins[2])}
	if tail { // unsorted: cut by size only
		p.ranges = p.ranges[:0]
		for i := 0; i < len(recs); i += blockFlows {
			p.ranges = append(p.ranges, [2]int{i, min(i+blockFlows, len(recs))})
		}
	} else {
		p.ranges = blockRanges(recs, blockFlows, p.ranges)
	}
	for _, r := range p.ranges {
		m, block, filter := enc.encode(recs[r[0]:r[1]], strs)
		if err := insertBlock(ins, id, tail, m, block, filter); err != nil {
			return dbErr(p.path, err)
		}
	}
	return dbErr(p.path, tx.Commit())
}

// deleteTails deletes a batch's tail blocks and returns how many flows
// they held.
func deleteTails(tx *sql.Tx, batch int64) (int64, error) {
	var n int64
	err := tx.QueryRow("SELECT coalesce(sum(n), 0) FROM blocks WHERE batch = ? AND tail != 0", batch).Scan(&n)
	if err != nil || n == 0 {
		return 0, err
	}
	for _, q := range []string{
		"DELETE FROM data WHERE id IN (SELECT id FROM blocks WHERE batch = ? AND tail != 0)",
		"DELETE FROM filters WHERE id IN (SELECT id FROM blocks WHERE batch = ? AND tail != 0)",
		"DELETE FROM blocks WHERE batch = ? AND tail != 0",
	} {
		if _, err := tx.Exec(q, batch); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// addFlows keeps meta's count of flows.
func addFlows(tx *sql.Tx, n int64) error {
	if n == 0 {
		return nil
	}
	_, err := tx.Exec("UPDATE meta SET value = value + ? WHERE key = 'flows'", n)
	return err
}

func insertBlock(ins [3]*sql.Stmt, batch int64, tail bool, m blockMeta, block, filter []byte) error {
	var nsLo, nsHi any
	if m.nsrcLo != nil {
		nsLo, nsHi = m.nsrcLo, m.nsrcHi
	}
	res, err := ins[0].Exec(batch, tail, m.n, m.minStart, m.maxEnd, m.srcLo, m.srcHi, nsLo, nsHi, len(block)+len(filter))
	if err != nil {
		return err
	}
	id, err := res.LastInsertId()
	if err != nil {
		return err
	}
	if _, err := ins[1].Exec(id, filter); err != nil {
		return err
	}
	_, err = ins[2].Exec(id, block)
	return err
}
