package follow

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/scanwarden/scanwarden/internal/sensor/kernlog"
)

// Following a file like tail -F.
//
// The file is read through its descriptor, at an offset we keep (pread), so
// we always know which file and which byte we are at, whatever happens to
// the name. Each time inotify reports a change in the file's directory (or
// every pollEvery, in case it does not) we:
//
//  1. stat the path: if it names another file than ours (renamed or
//     deleted, and a new one created), ours is read to its end and kept
//     open as retired, and the new one is read from its start;
//  2. look for a truncation of ours (copytruncate): its size below our
//     offset, or bytes just before our offset that are not those we read
//     (truncated and written again past our offset before we looked). Then
//     the copy logrotate made (a sibling named base.N or base-DATE, not
//     compressed, whose bytes before our offset are ours) is read from our
//     offset to its end, and ours from 0;
//  3. read retired files, then ours, to their end. Only complete lines are
//     handed on; an unfinished last line waits for its newline. A retired
//     file is closed once the file that replaced it has data (a writer
//     that was still using the old one has moved on; logrotate's "create"
//     makes the new file before the syslog daemon reopens) and we have
//     read the old one to its end after seeing that, or after retireIdle
//     without growth.
//
// Limits: a truncation is seen only if the file shrinks below our offset or
// the last tailLen bytes before it change; a file truncated and written
// again with the very same bytes there is taken as unchanged, and the lines
// before our offset in it are missed. Lines written between logrotate's copy
// and its truncation are in neither file (logrotate documents this); a copy
// compressed at once (copytruncate without delaycompress), moved to another
// directory (olddir) or renamed out of the base.N/base-DATE pattern cannot be
// found, so the lines we had not read by the truncation are lost. A line
// cut by the truncation (its start in the copy, its end in the new file) is
// dropped. What is rotated away twice before we get to it is missed: a
// file replaced at the path (or deleted) before we have looked at the path
// since it was created there, or lines written after a truncation that are
// truncated again, into another copy, before we have started reading the
// file again. Rotations must not come closer than one look (pollEvery at
// most, plus the time to read what the writer is ahead of us by); logrotate
// runs hourly at most.
const (
	pollEvery  = time.Second
	retireIdle = 30 * time.Second
	maxRetired = 4
	tailLen    = 1024
	readChunk  = 64 << 10
)

type tailer struct {
	path, dir, base string
	c               *counters
	line            func(line []byte, off int64)

	w       *fsnotify.Watcher // nil: inotify unavailable, poll only
	cur     *tfile            // the file at path; nil until it exists
	old     []*tfile          // replaced files still read, oldest first
	buf     []byte
	scratch []byte
	copying bool // reading a copytruncate copy: lines are recovered ones
}

// tfile is one open file and where we are in it.
type tfile struct {
	f        *os.File
	dev, ino uint64
	off      int64  // bytes read; lines up to off-len(part) handed on
	part     []byte // the unfinished last line
	skip     bool   // dropping bytes up to the next newline
	tail     [tailLen]byte
	tailN    int       // bytes in tail: the last read before off
	grew     time.Time // when a read last found data
}

func newTailer(path string, fromStart bool, c *counters, line func([]byte, int64)) (*tailer, error) {
	t := &tailer{
		path: path, dir: filepath.Dir(path), base: filepath.Base(path), c: c, line: line,
		buf: make([]byte, readChunk), scratch: make([]byte, tailLen),
	}
	if fi, err := os.Stat(t.dir); err != nil {
		return nil, err
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", t.dir)
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		if err = w.Add(t.dir); err != nil {
			w.Close()
		}
	}
	if err != nil {
		c.fail(fmt.Errorf("watching %s with inotify (%w): looking every %v instead", t.dir, err, pollEvery))
		w = nil
	}
	t.w = w
	f, err := openTfile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		// Followed from its start once it appears.
	case err != nil:
		t.close()
		return nil, err
	default:
		t.cur = f
		if !fromStart {
			if err := f.seekEnd(); err != nil {
				t.close()
				return nil, err
			}
		}
	}
	return t, nil
}

func openTfile(path string) (*tfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return &tfile{f: f, dev: uint64(st.Dev), ino: st.Ino, grew: time.Now()}, nil
}

// seekEnd starts at the end, remembering the bytes before it; if the file
// ends inside a line, the rest of that line is dropped when it comes.
func (f *tfile) seekEnd() error {
	fi, err := f.f.Stat()
	if err != nil {
		return err
	}
	n := min(fi.Size(), tailLen)
	if _, err := f.f.ReadAt(f.tail[:n], fi.Size()-n); err != nil && err != io.EOF {
		return err
	}
	f.off, f.tailN = fi.Size(), int(n)
	f.skip = n > 0 && f.tail[n-1] != '\n'
	return nil
}

func (f *tfile) same(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && uint64(st.Dev) == f.dev && st.Ino == f.ino
}

func (f *tfile) size() int64 {
	fi, err := f.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

// restart goes back to the start of a truncated file.
func (f *tfile) restart() {
	f.off, f.part, f.skip, f.tailN = 0, f.part[:0], false, 0
}

// noteTail remembers the last tailLen bytes read.
func (f *tfile) noteTail(b []byte) {
	if len(b) >= tailLen {
		f.tailN = copy(f.tail[:], b[len(b)-tailLen:])
		return
	}
	keep := min(f.tailN, tailLen-len(b))
	copy(f.tail[:], f.tail[f.tailN-keep:f.tailN])
	f.tailN = keep + copy(f.tail[keep:], b)
}

func (t *tailer) close() {
	if t.w != nil {
		t.w.Close()
	}
	if t.cur != nil {
		t.cur.f.Close()
		t.cur = nil
	}
	for _, o := range t.old {
		o.f.Close()
	}
	t.old = nil
}

// run follows the file until ctx ends. wake and recheck serve lines held
// for verification: recheck is called after each look at the file and says
// how soon to call it again (0: nothing held); wake says a kernel record
// came.
func (t *tailer) run(ctx context.Context, wake <-chan struct{}, recheck func(time.Time) time.Duration) error {
	var events <-chan fsnotify.Event
	var errs <-chan error
	if t.w != nil {
		events, errs = t.w.Events, t.w.Errors
	}
	timer := time.NewTimer(pollEvery)
	defer timer.Stop()
	for {
		t.look(ctx)
		wait := pollEvery
		if recheck != nil {
			if d := recheck(time.Now()); d > 0 && d < wait {
				wait = d
			}
		}
		timer.Reset(wait)
	waiting:
		for {
			select {
			case <-ctx.Done():
				return nil
			case ev, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				if t.relevant(ev) {
					t.drainEvents(events)
					break waiting
				}
			case err, ok := <-errs:
				if !ok {
					errs = nil
					continue
				}
				if !errors.Is(err, fsnotify.ErrEventOverflow) {
					t.c.fail(fmt.Errorf("watching %s: %w", t.dir, err))
				}
				break waiting // an overflow may have hidden our events: look
			case <-wake:
				break waiting
			case <-timer.C:
				break waiting
			}
		}
	}
}

// relevant: an event on our name or a sibling starting with it (the renamed
// old file, a copytruncate copy), or on the directory itself.
func (t *tailer) relevant(ev fsnotify.Event) bool {
	return ev.Name == t.dir || strings.HasPrefix(filepath.Base(ev.Name), t.base)
}

// drainEvents takes the events already queued: one look covers them all.
func (t *tailer) drainEvents(events <-chan fsnotify.Event) {
	for range 256 {
		select {
		case <-events:
		default:
			return
		}
	}
}

// look does steps 1 to 3 of the comment at the top of this file.
func (t *tailer) look(ctx context.Context) {
	fi, err := os.Stat(t.path)
	switch {
	case err == nil && (t.cur == nil || !t.cur.same(fi)):
		nf, err := openTfile(t.path)
		if err != nil {
			if !errors.Is(err, os.ErrNotExist) {
				t.c.fail(err)
			}
			break
		}
		if t.cur != nil {
			t.read(ctx, t.cur)
			t.retire(t.cur)
			t.c.rotations.Add(1)
		}
		t.cur = nf
	case err != nil && !errors.Is(err, os.ErrNotExist):
		t.c.fail(err)
	}
	if t.cur != nil {
		t.checkTruncated(ctx, t.cur)
	}
	now := time.Now()
	keep := t.old[:0]
	for i, o := range t.old {
		next := t.cur
		if i+1 < len(t.old) {
			next = t.old[i+1]
		}
		moved := next != nil && next.size() > 0
		t.read(ctx, o)
		if moved || now.Sub(o.grew) > retireIdle {
			o.f.Close()
			continue
		}
		keep = append(keep, o)
	}
	clear(t.old[len(keep):])
	t.old = keep
	if t.cur != nil && !t.read(ctx, t.cur) {
		// Truncated and written again while we read it: start again from
		// the copy.
		t.checkTruncated(ctx, t.cur)
		t.read(ctx, t.cur)
	}
}

func (t *tailer) retire(f *tfile) {
	if len(t.old) == maxRetired {
		t.old[0].f.Close()
		t.old = append(t.old[:0], t.old[1:]...)
	}
	f.grew = time.Now()
	t.old = append(t.old, f)
}

// read reads f from our offset to its end. It stops, and returns false,
// when the bytes before our offset are no longer those we read: f has been
// truncated and written again since checkTruncated looked, so what the
// last read returned may be the start of the new content, not the rest of
// ours, which is in logrotate's copy.
func (t *tailer) read(ctx context.Context, f *tfile) bool {
	for ctx.Err() == nil {
		n, err := f.f.ReadAt(t.buf, f.off)
		if n > 0 && !t.unchanged(f) {
			return false
		}
		if n > 0 {
			t.consume(f, t.buf[:n])
			f.noteTail(t.buf[:n])
			f.grew = time.Now()
		}
		if err != nil && err != io.EOF {
			t.c.fail(fmt.Errorf("reading %s: %w", f.f.Name(), err))
		}
		if n < len(t.buf) || err != nil {
			return true
		}
	}
	return true
}

// unchanged reports whether the last bytes we read from f, before our
// offset, are still there.
func (t *tailer) unchanged(f *tfile) bool {
	if f.tailN == 0 {
		return true
	}
	b := t.scratch[:f.tailN]
	n, _ := f.f.ReadAt(b, f.off-int64(f.tailN))
	return n == len(b) && bytes.Equal(b, f.tail[:f.tailN])
}

// consume splits b, read at f.off, into lines; f.off moves past it.
func (t *tailer) consume(f *tfile, b []byte) {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			switch {
			case f.skip:
			case len(f.part)+len(b) > kernlog.MaxLine:
				t.tooLong(f.off - int64(len(f.part)))
				f.part, f.skip = f.part[:0], true
			default:
				f.part = append(f.part, b...)
			}
			f.off += int64(len(b))
			return
		}
		seg := b[:i]
		b = b[i+1:]
		start := f.off - int64(len(f.part))
		f.off += int64(i + 1)
		switch {
		case f.skip:
			f.skip = false
		case len(f.part)+len(seg) > kernlog.MaxLine:
			t.tooLong(start)
			f.part = f.part[:0]
		case len(f.part) > 0:
			f.part = append(f.part, seg...)
			t.emit(f.part, start)
			f.part = f.part[:0]
		default:
			t.emit(seg, start)
		}
	}
}

func (t *tailer) emit(line []byte, off int64) {
	if t.copying {
		t.c.recovered.Add(1)
	}
	t.line(line, off)
}

func (t *tailer) tooLong(off int64) {
	t.c.base.Read.Add(1)
	t.c.base.Problem("%s at byte %d: line longer than %d bytes, skipped", t.path, off, kernlog.MaxLine)
}

// checkTruncated notices a truncation of f (step 2) and starts it again.
func (t *tailer) checkTruncated(ctx context.Context, f *tfile) {
	if f.off == 0 {
		return
	}
	if f.size() >= f.off && t.unchanged(f) {
		return
	}
	t.c.rotations.Add(1)
	t.c.truncations.Add(1)
	t.recover(ctx, f)
	f.restart()
}

// recover reads, from the copy logrotate made before truncating f, what f
// held past our offset.
func (t *tailer) recover(ctx context.Context, f *tfile) {
	if f.tailN == 0 {
		return
	}
	entries, err := os.ReadDir(t.dir)
	if err != nil {
		return
	}
	var best *tfile
	var bestTime time.Time
	for _, e := range entries {
		if !copyName(t.base, e.Name()) {
			continue
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() || fi.Size() < f.off || f.same(fi) {
			continue
		}
		if best != nil && !fi.ModTime().After(bestTime) {
			continue
		}
		c, err := openTfile(filepath.Join(t.dir, e.Name()))
		if err != nil {
			continue
		}
		b := t.scratch[:f.tailN]
		if n, _ := c.f.ReadAt(b, f.off-int64(f.tailN)); n != len(b) || !bytes.Equal(b, f.tail[:f.tailN]) {
			c.f.Close()
			continue
		}
		if best != nil {
			best.f.Close()
		}
		best, bestTime = c, fi.ModTime()
	}
	if best == nil {
		return
	}
	best.off, best.part, best.skip = f.off, f.part, f.skip
	t.copying = true
	t.read(ctx, best)
	t.copying = false
	f.part = best.part[:0] // an unfinished line cut by the truncation is dropped
	best.f.Close()
}

// copyName reports whether name may be a rotated copy of base: base.1,
// base.0, base-20261121, not compressed.
func copyName(base, name string) bool {
	rest, ok := strings.CutPrefix(name, base)
	if !ok || rest == "" || rest[0] != '.' && rest[0] != '-' && rest[0] != '_' {
		return false
	}
	for _, ext := range []string{".gz", ".bz2", ".xz", ".zst", ".lz4", ".lzma", ".lz", ".Z", ".zip"} {
		if strings.HasSuffix(rest, ext) {
			return false
		}
	}
	return true
}
