package flowlog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// recover prepares the directory after a crash: removes half-created
// partitions, turns tail blocks into sorted blocks, and finds the newest
// partition to continue. A partition it cannot read is left alone (the
// newest is renamed aside, so that writing can go on); only an unusable
// directory fails Open.
func (l *Log) recover() error {
	ents, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("flowlog: reading %s: %w", l.dir, err)
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), tmpPrefix) && !strings.HasSuffix(e.Name(), "-wal") && !strings.HasSuffix(e.Name(), "-shm") {
			removeDBFiles(filepath.Join(l.dir, e.Name()))
		}
	}
	ctx := context.Background()
	parts, err := l.cat.refresh(ctx)
	if err != nil {
		return err
	}
	enc := newEncoder()
	for i, p := range parts {
		newest := i == len(parts)-1
		err := l.resealTails(ctx, p, enc)
		if err == nil && newest {
			err = l.continuePart(ctx, p)
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			l.setErr(err)
			continue
		}
		l.st.corrupt.Add(1)
		if newest {
			aside := fmt.Sprintf("%s.corrupt-%d", p.path(), time.Now().Unix())
			l.cat.drop(p)
			if rerr := os.Rename(p.path(), aside); rerr != nil {
				return fmt.Errorf("flowlog: %w; moving it aside failed: %w", err, rerr)
			}
			l.setErr(fmt.Errorf("%w; moved it aside to %s", err, aside))
		}
	}
	l.cat.closeAll()
	return nil
}

// continuePart makes the newest partition the one Append continues.
func (l *Log) continuePart(ctx context.Context, p *part) error {
	wp, err := openWPart(p.path(), p.name)
	if err != nil {
		return err
	}
	m, err := readMeta(ctx, wp.db, p.path())
	var maxBatch int64
	if err == nil {
		err = wp.db.QueryRowContext(ctx, "SELECT coalesce(max(batch), 0) FROM blocks").Scan(&maxBatch)
	}
	if err != nil {
		wp.close()
		return dbErr(p.path(), err)
	}
	l.cur = &partRef{name: p.name, start: m.start, end: m.end}
	l.nextBatch = maxBatch + 1
	l.initialPart = wp
	return nil
}

// resealTails rewrites each batch's tail blocks into sorted blocks. A
// block that does not decode stays as it is.
func (l *Log) resealTails(ctx context.Context, p *part, enc *encoder) error {
	db, err := l.cat.acquire(p)
	if err != nil {
		return err
	}
	var batches []int64
	rows, err := db.QueryContext(ctx, "SELECT DISTINCT batch FROM blocks WHERE tail != 0")
	if err == nil {
		for rows.Next() {
			var b int64
			if err = rows.Scan(&b); err != nil {
				break
			}
			batches = append(batches, b)
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	l.cat.release(p)
	if err != nil {
		return dbErr(p.path(), err)
	}
	if len(batches) == 0 {
		return nil
	}
	wp, err := openWPart(p.path(), p.name)
	if err != nil {
		return err
	}
	defer wp.close()
	for _, b := range batches {
		if err := l.resealBatch(ctx, wp, b, enc); err != nil {
			return err
		}
	}
	return nil
}

// maxBatchRecover bounds the flows Open re-sorts at once; tails beyond it
// (possible only if BatchFlows was larger before) stay as they are.
const maxBatchRecover = 1 << 20

func (l *Log) resealBatch(ctx context.Context, wp *wpart, batch int64, enc *encoder) error {
	tx, err := wp.db.BeginTx(ctx, nil)
	if err != nil {
		return dbErr(wp.path, err)
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT b.id, d.block FROM blocks b JOIN data d ON d.id = b.id
		WHERE b.batch = ? AND b.tail != 0`, batch)
	if err != nil {
		return dbErr(wp.path, err)
	}
	var (
		dec  decoder
		st   strTable
		recs []rec
		ids  []int64
	)
	st.reset()
	for rows.Next() {
		var id int64
		var blob []byte
		if err := rows.Scan(&id, &blob); err != nil {
			rows.Close()
			return dbErr(wp.path, err)
		}
		brecs, strs, err := dec.decode(blob)
		if err != nil || len(recs)+len(brecs) > maxBatchRecover || len(st.strs)+len(strs) >= maxStrings {
			if err != nil {
				l.st.corrupt.Add(1)
			}
			continue // stays a tail block
		}
		for _, r := range brecs {
			r.iface, r.comm = st.add(strs[r.iface]), st.add(strs[r.comm])
			recs = append(recs, r)
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return dbErr(wp.path, err)
	}
	if len(ids) == 0 {
		return nil
	}
	for _, id := range ids {
		for _, q := range []string{"DELETE FROM data WHERE id = ?", "DELETE FROM filters WHERE id = ?", "DELETE FROM blocks WHERE id = ?"} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return dbErr(wp.path, err)
			}
		}
	}
	sortInPlace(recs, nil)
	ins := [3]*sql.Stmt{tx.Stmt(wp.ins[0]), tx.Stmt(wp.ins[1]), tx.Stmt(wp.ins[2])}
	for _, r := range blockRanges(recs, l.opts.BlockFlows, nil) {
		m, block, filter := enc.encode(recs[r[0]:r[1]], st.strs)
		if err := insertBlock(ins, batch, false, m, block, filter); err != nil {
			return dbErr(wp.path, err)
		}
	}
	return dbErr(wp.path, tx.Commit())
}
