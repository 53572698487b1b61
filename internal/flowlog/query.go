package flowlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
)

// Query calls fn for each flow matching f, until fn returns an error (which
// Query returns), f.Limit flows, or ctx is done. Flows come in no
// particular order (roughly by when they were written); fn must not keep
// the *Flow after it returns. It sees what was committed when it reached
// each partition: on the log being written, flows up to FlushEvery old may
// not be there yet (Flush first to see everything).
//
// How: partitions whose flows cannot overlap the time range are skipped
// (once closed, their bounds are known); in the others, the block index
// gives the blocks in the time range, and a block's source ranges and its
// destination filter discard most blocks that cannot hold a match; the rest
// are read and every flow is checked exactly. A block that does not decode
// is skipped: Query goes on and returns an error wrapping ErrCorrupt at the
// end, so the caller knows the results are incomplete.
func (l *Log) Query(ctx context.Context, f Filter, fn func(*Flow) error) error {
	q, err := f.norm()
	if err != nil {
		return err
	}
	if q.since > q.until {
		return nil
	}
	parts, err := l.cat.refresh(ctx)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := &scan{l: l, q: &q}
	if q.Src.IsValid() {
		s.srcLo, s.srcHi = prefixRange(q.Src)
	}
	if q.dstExact {
		s.dstHash = addrHash(ipOf(q.Dst.Addr()))
	}

	// The pipeline: a goroutine reads candidate blocks from SQLite in
	// partition order, decoders decode and filter them, and the caller's
	// goroutine gets the matches (so fn needs no locking).
	blocks := make(chan []byte, 4)
	results := make(chan []Flow, 4)
	var wg sync.WaitGroup
	for range decoders() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.decodeLoop(ctx, blocks, results)
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		readErr <- s.read(ctx, parts, blocks)
		close(blocks)
		wg.Wait()
		close(results)
	}()
	n := 0
	var stop error
	for fs := range results {
		if stop != nil {
			continue // draining
		}
		for i := range fs {
			if err := fn(&fs[i]); err != nil {
				stop = err
				cancel()
				break
			}
			n++
			if q.Limit > 0 && n >= q.Limit {
				stop = errLimit
				cancel()
				break
			}
		}
	}
	rerr := <-readErr
	switch {
	case stop == errLimit:
		return nil
	case stop != nil:
		return stop
	case rerr != nil && !errors.Is(rerr, context.Canceled):
		return rerr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if c := s.corrupt.Load(); c > 0 {
		return fmt.Errorf("flowlog: %d blocks or partitions could not be read and were skipped (%w): %v",
			c, ErrCorrupt, s.firstCorrupt())
	}
	return nil
}

var errLimit = errors.New("limit reached")

// decoders is how many goroutines decode blocks: one a core. (One fewer,
// leaving a core to the goroutine reading SQLite, was 1.4x slower on two
// cores: that goroutine mostly waits.)
func decoders() int { return max(1, runtime.GOMAXPROCS(0)) }

// scan is one Query's state.
type scan struct {
	l            *Log
	q            *norm
	srcLo, srcHi []byte
	dstHash      uint64

	corrupt  atomic.Int64
	mu       sync.Mutex
	firstErr error
}

func (s *scan) noteCorrupt(err error) {
	s.corrupt.Add(1)
	s.l.st.corrupt.Add(1)
	s.mu.Lock()
	if s.firstErr == nil {
		s.firstErr = err
	}
	s.mu.Unlock()
}

func (s *scan) firstCorrupt() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}

// read sends the candidate blocks of every partition that may hold a match.
func (s *scan) read(ctx context.Context, parts []*part, out chan<- []byte) error {
	for i, p := range parts {
		if i < len(parts)-1 { // closed: its bounds are known for good
			info, err := s.l.cat.info(ctx, p, true)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err == nil && (info.minStart > info.maxEnd || info.minStart > s.q.until || info.maxEnd < s.q.since) {
				continue
			}
		}
		err := s.readPart(ctx, p, out)
		switch {
		case err == nil, errors.Is(err, os.ErrNotExist): // expired meanwhile
		case errors.Is(err, ErrCorrupt):
			s.noteCorrupt(err)
		default:
			return err
		}
	}
	return nil
}

// readPart reads one partition in one read transaction, so that a batch
// sealed meanwhile (its tail blocks replaced by sorted ones) is seen
// either before or after, never both or neither.
func (s *scan) readPart(ctx context.Context, p *part, out chan<- []byte) error {
	db, err := s.l.cat.acquire(p)
	if err != nil {
		return err
	}
	defer s.l.cat.release(p)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return dbErr(p.path(), err)
	}
	defer tx.Rollback()
	ids, err := s.candidates(ctx, tx)
	if err != nil {
		return dbErr(p.path(), err)
	}
	if len(ids) == 0 {
		return nil
	}
	get, err := tx.PrepareContext(ctx, "SELECT block FROM data WHERE id = ?")
	if err != nil {
		return dbErr(p.path(), err)
	}
	defer get.Close()
	for _, id := range ids {
		var blob []byte
		if err := get.QueryRowContext(ctx, id).Scan(&blob); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				s.noteCorrupt(fmt.Errorf("flowlog: %s: block %d is %w: its data is missing", p.path(), id, ErrCorrupt))
				continue
			}
			return dbErr(p.path(), err)
		}
		select {
		case out <- blob:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// candidates are the blocks of a partition that may hold a match.
func (s *scan) candidates(ctx context.Context, tx *sql.Tx) ([]int64, error) {
	q := s.q
	useFilter := q.dstExact || q.Port != 0
	sel := "SELECT b.id, b.src_lo, b.src_hi, b.nsrc_lo, b.nsrc_hi"
	from := " FROM blocks b"
	if useFilter {
		sel += ", f.bloom"
		from += " JOIN filters f ON f.id = b.id"
	}
	// The blocks are written in about the order of time, so max_end >=
	// since picks those from since on; the other bound is checked on
	// each (the + keeps SQLite from choosing its index instead).
	var where string
	var args []any
	switch {
	case q.since != minNanos && q.until != maxNanos:
		where, args = " WHERE b.max_end >= ? AND +b.min_start <= ?", []any{q.since, q.until}
	case q.since != minNanos:
		where, args = " WHERE b.max_end >= ?", []any{q.since}
	case q.until != maxNanos:
		where, args = " WHERE b.min_start <= ?", []any{q.until}
	}
	rows, err := tx.QueryContext(ctx, sel+from+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		var srcLo, srcHi, nsLo, nsHi, bloom sql.RawBytes
		dest := []any{&id, &srcLo, &srcHi, &nsLo, &nsHi}
		if useFilter {
			dest = append(dest, &bloom)
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, err
		}
		if s.srcLo != nil && !overlaps(s.srcLo, s.srcHi, srcLo, srcHi) &&
			(nsLo == nil || !overlaps(s.srcLo, s.srcHi, nsLo, nsHi)) {
			continue
		}
		if q.dstExact && !bloomMayHave(bloom, s.dstHash) {
			continue
		}
		if q.Port != 0 && !bloomMayHave(bloom, portHash(q.Port)) {
			continue
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// decodeLoop decodes blocks and sends each one's matches.
func (s *scan) decodeLoop(ctx context.Context, in <-chan []byte, out chan<- []Flow) {
	var d decoder
	for blob := range in {
		if ctx.Err() != nil {
			continue // draining
		}
		recs, strs, err := d.decode(blob)
		if err != nil {
			s.noteCorrupt(err)
			continue
		}
		var match []Flow
		for i := range recs {
			if s.q.match(&recs[i]) {
				match = append(match, Flow{})
				recs[i].flow(strs, &match[len(match)-1])
			}
		}
		if len(match) == 0 {
			continue
		}
		select {
		case out <- match:
		case <-ctx.Done():
		}
	}
}
