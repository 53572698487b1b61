package flowlog

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
)

// An export is one closed partition as a zstd stream, readable without
// SQLite. Decompressed:
//
//	"scanwarden flow log export\n"
//	uvarint length, then a JSON header (ExportHeader)
//	per block: uvarint length, the block as stored (a zstd frame; see
//	           block.go for its layout); the blocks hold Flows flows in all
//	uvarint 0, then uvarint the number of blocks, uvarint the number of flows
//
// The trailer lets a reader tell a complete export from a cut one; the
// zstd frames' checksums catch damage. The blocks are copied as they are,
// already compressed, so the outer compression mostly saves the framing;
// the filters are left out (Import rebuilds them from the flows).
const exportMagic = "scanwarden flow log export\n"

// ExportHeader describes an export.
type ExportHeader struct {
	Format      int       `json:"format"`       // 1
	BlockFormat int       `json:"block_format"` // 1
	Partition   string    `json:"partition"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Flows       int64     `json:"flows"`
	Blocks      int64     `json:"blocks"`
	Exported    time.Time `json:"exported"`
}

const (
	exportFormat = 1
	maxHeaderLen = 1 << 16
	// maxStoredBlock bounds a block's stored size in an export: zstd
	// never makes data much larger than maxRawBlock.
	maxStoredBlock = maxRawBlock + maxRawBlock/64 + 1024
)

// Export writes a closed partition (see Partition.Closed) to w, compressed.
// On the log being written, it first waits for the writes queued so far.
func (l *Log) Export(name string, w io.Writer) error {
	name = strings.TrimSuffix(name, partSuffix)
	ctx := context.Background()
	if !l.ro {
		done := make(chan struct{})
		if err := l.send(job{kind: jobSync, done: done}); err != nil {
			return err
		}
		<-done
	}
	parts, err := l.cat.refresh(ctx)
	if err != nil {
		return err
	}
	var p *part
	for i, q := range parts {
		if q.name != name {
			continue
		}
		if i == len(parts)-1 && !l.writerGone() {
			return fmt.Errorf("flowlog: exporting %s: %w; wait until the next partition starts", name, ErrNotClosed)
		}
		p = q
	}
	if p == nil {
		return fmt.Errorf("flowlog: exporting %s: %w in %s", name, ErrNotFound, l.dir)
	}
	db, err := l.cat.acquire(p)
	if err != nil {
		return err
	}
	defer l.cat.release(p)
	tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return dbErr(p.path(), err)
	}
	defer tx.Rollback()
	return exportPart(ctx, tx, p, w)
}

func exportPart(ctx context.Context, tx *sql.Tx, p *part, w io.Writer) error {
	var h ExportHeader
	var start, end int64
	err := tx.QueryRowContext(ctx, `SELECT (SELECT value FROM meta WHERE key = 'start'), (SELECT value FROM meta WHERE key = 'end'),
		(SELECT count(*) FROM blocks), (SELECT coalesce(sum(n), 0) FROM blocks)`).Scan(&start, &end, &h.Blocks, &h.Flows)
	if err != nil {
		return dbErr(p.path(), err)
	}
	h.Format, h.BlockFormat, h.Partition = exportFormat, blockVersion, p.name
	h.Start, h.End, h.Exported = nanoTime(start), nanoTime(end), time.Now().UTC()

	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(zw, 1<<16)
	js, _ := json.Marshal(h)
	bw.WriteString(exportMagic)
	writeChunk(bw, js)
	rows, err := tx.QueryContext(ctx, "SELECT d.block FROM blocks b JOIN data d ON d.id = b.id ORDER BY b.id")
	if err != nil {
		return dbErr(p.path(), err)
	}
	defer rows.Close()
	var blocks int64
	for rows.Next() {
		var blob sql.RawBytes
		if err := rows.Scan(&blob); err != nil {
			return dbErr(p.path(), err)
		}
		if err := writeChunk(bw, blob); err != nil {
			return fmt.Errorf("flowlog: exporting %s: %w", p.name, err)
		}
		blocks++
	}
	if err := rows.Err(); err != nil {
		return dbErr(p.path(), err)
	}
	if blocks != h.Blocks { // the read transaction makes this impossible
		return fmt.Errorf("flowlog: exporting %s: %d blocks, expected %d", p.name, blocks, h.Blocks)
	}
	var tr []byte
	tr = binary.AppendUvarint(tr, 0)
	tr = binary.AppendUvarint(tr, uint64(h.Blocks))
	tr = binary.AppendUvarint(tr, uint64(h.Flows))
	bw.Write(tr)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("flowlog: exporting %s: %w", p.name, err)
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("flowlog: exporting %s: %w", p.name, err)
	}
	return nil
}

func writeChunk(w *bufio.Writer, b []byte) error {
	var n [binary.MaxVarintLen64]byte
	w.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))])
	_, err := w.Write(b)
	return err
}

// readExport reads an export, calling block for each stored block.
func readExport(r io.Reader, header func(*ExportHeader) error, block func([]byte) error) error {
	zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(64<<20))
	if err != nil {
		return err
	}
	defer zr.Close()
	br := bufio.NewReaderSize(zr, 1<<16)
	bad := func(format string, args ...any) error {
		return fmt.Errorf("flowlog: export is %w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
	magic := make([]byte, len(exportMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != exportMagic {
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return bad("%v", err)
		}
		return fmt.Errorf("flowlog: not a flow log export (a zstd stream starting %q)", strings.TrimSpace(exportMagic))
	}
	hl, err := binary.ReadUvarint(br)
	if err != nil || hl > maxHeaderLen {
		return bad("header length")
	}
	js := make([]byte, hl)
	if _, err := io.ReadFull(br, js); err != nil {
		return bad("header: %v", err)
	}
	var h ExportHeader
	if err := json.Unmarshal(js, &h); err != nil {
		return bad("header: %v", err)
	}
	if h.Format != exportFormat || h.BlockFormat != blockVersion {
		return fmt.Errorf("flowlog: export format %d (blocks %d); this scanwarden reads format %d (blocks %d): upgrade",
			h.Format, h.BlockFormat, exportFormat, blockVersion)
	}
	if err := header(&h); err != nil {
		return err
	}
	var blocks uint64
	buf := make([]byte, 0, 64<<10)
	for {
		n, err := binary.ReadUvarint(br)
		if err != nil {
			return bad("cut off after %d blocks: %v", blocks, err)
		}
		if n == 0 {
			break
		}
		if n > maxStoredBlock {
			return bad("block %d of %d bytes", blocks, n)
		}
		if uint64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(br, buf); err != nil {
			return bad("cut off in block %d: %v", blocks, err)
		}
		if err := block(buf); err != nil {
			return err
		}
		blocks++
	}
	nb, err1 := binary.ReadUvarint(br)
	nf, err2 := binary.ReadUvarint(br)
	switch {
	case err1 != nil || err2 != nil:
		return bad("trailer cut off")
	case nb != blocks || nb != uint64(h.Blocks) || nf != uint64(h.Flows):
		return bad("trailer says %d blocks and %d flows, read %d blocks, header says %d and %d", nb, nf, blocks, h.Blocks, h.Flows)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		if err != nil {
			return bad("%v", err)
		}
		return bad("data after the trailer")
	}
	return nil
}

// ScanExport calls fn for each flow of an export matching f, without
// importing it. Like Query, it skips blocks that do not decode and then
// returns an error wrapping ErrCorrupt; fn must not keep the *Flow.
func ScanExport(r io.Reader, f Filter, fn func(*Flow) error) error {
	q, err := f.norm()
	if err != nil {
		return err
	}
	var d decoder
	n, corrupt := 0, 0
	var first error
	err = readExport(r, func(*ExportHeader) error { return nil }, func(b []byte) error {
		recs, strs, err := d.decode(b)
		if err != nil {
			if corrupt++; first == nil {
				first = err
			}
			return nil
		}
		var f Flow
		for i := range recs {
			if !q.match(&recs[i]) {
				continue
			}
			recs[i].flow(strs, &f)
			if err := fn(&f); err != nil {
				return err
			}
			if n++; q.Limit > 0 && n >= q.Limit {
				return errLimit
			}
		}
		return nil
	})
	switch {
	case err == errLimit:
		return nil
	case err != nil:
		return err
	case corrupt > 0:
		return fmt.Errorf("flowlog: %d blocks of the export could not be read and were skipped (%w): %v", corrupt, ErrCorrupt, first)
	}
	return nil
}

// Import reads an export into dir (created if needed) as a partition file,
// so that OpenReadOnly(dir) can query it. It refuses a partition that dir
// already has, and a damaged export (the file appears only once all of it
// has been read and checked). Blocks are decoded and written afresh, with
// their filters.
//
// Into a directory a daemon writes, import only partitions older than its
// newest one.
func Import(dir string, r io.Reader) (Partition, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return Partition{}, fmt.Errorf("flowlog: importing: %w", err)
	}
	var (
		h      ExportHeader
		final  string
		tmp    string
		wp     *wpart
		tx     *sql.Tx
		ins    [3]*sql.Stmt
		dec    decoder
		enc    = newEncoder()
		sorted []rec
		keys   []sortKey
		flows  int64
	)
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
		if wp != nil {
			wp.close()
		}
		if tmp != "" {
			removeDBFiles(tmp)
		}
	}()
	err := readExport(r, func(hd *ExportHeader) error {
		h = *hd
		name, start, ok := parsePartName(h.Partition + partSuffix)
		if !ok || !start.Equal(h.Start) || !h.End.After(h.Start) {
			return fmt.Errorf("flowlog: export is %w: partition %q from %v to %v", ErrCorrupt, h.Partition, h.Start, h.End)
		}
		final = filepath.Join(dir, name+partSuffix)
		if _, err := os.Stat(final); err == nil {
			return fmt.Errorf("flowlog: importing %s: %s exists", name, final)
		}
		tmp = filepath.Join(dir, tmpPrefix+name+partSuffix)
		if err := buildPartFile(tmp, h.Start.UnixNano(), h.End.UnixNano()); err != nil {
			return fmt.Errorf("flowlog: importing %s: %w", name, err)
		}
		var err error
		if wp, err = openWPart(tmp, name); err != nil {
			return err
		}
		if tx, err = wp.db.Begin(); err != nil {
			return dbErr(tmp, err)
		}
		ins = [3]*sql.Stmt{tx.Stmt(wp.ins[0]), tx.Stmt(wp.ins[1]), tx.Stmt(wp.ins[2])}
		return nil
	}, func(b []byte) error {
		recs, strs, err := dec.decode(b)
		if err != nil {
			return fmt.Errorf("flowlog: importing %s: block at flow %d: %w", h.Partition, flows, err)
		}
		sorted, keys = sortRecs(recs, keys, sorted)
		flows += int64(len(recs))
		for _, r := range blockRanges(sorted, maxBlockFlows, nil) {
			m, block, filter := enc.encode(sorted[r[0]:r[1]], strs)
			if err := insertBlock(ins, 0, false, m, block, filter); err != nil {
				return dbErr(tmp, err)
			}
		}
		return nil
	})
	if err != nil {
		return Partition{}, err
	}
	if flows != h.Flows {
		return Partition{}, fmt.Errorf("flowlog: export is %w: %d flows, header says %d", ErrCorrupt, flows, h.Flows)
	}
	if err := addFlows(tx, flows); err != nil {
		return Partition{}, dbErr(tmp, err)
	}
	if err := tx.Commit(); err != nil {
		return Partition{}, dbErr(tmp, err)
	}
	tx = nil
	if err := wp.close(); err != nil {
		return Partition{}, err
	}
	wp = nil
	if err := os.Rename(tmp, final); err != nil {
		return Partition{}, fmt.Errorf("flowlog: importing: %w", err)
	}
	tmp = ""
	syncDir(dir)
	return Partition{Name: h.Partition, Start: h.Start, End: h.End, Flows: flows, Bytes: fileBytes(final), Closed: true}, nil
}
