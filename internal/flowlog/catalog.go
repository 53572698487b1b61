package flowlog

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// catalog knows the partition files and keeps read-only connections to
// the most recently used ones.
type catalog struct {
	dir   string
	mu    sync.Mutex
	parts map[string]*part
	tick  int64
}

// part is one partition file as the catalog knows it.
type part struct {
	dir, name string
	start     int64 // from the name

	// Guarded by catalog.mu.
	db      *sql.DB // read-only connections, or nil
	refs    int
	lastUse int64
	gone    bool
	info    partInfo
	infoOK  bool // info is final: the partition is closed
}

type partInfo struct {
	start, end       int64 // the period
	minStart, maxEnd int64 // of its flows; empty: minStart > maxEnd
	flows            int64
}

func (p *part) path() string { return filepath.Join(p.dir, p.name+partSuffix) }

// maxOpenParts bounds the partitions with open connections (each holds a
// file descriptor and SQLite's page cache, up to 2 MB).
const maxOpenParts = 32

func (c *catalog) init(dir string) {
	c.dir = dir
	c.parts = map[string]*part{}
}

// refresh lists the directory and returns its partitions, oldest first.
func (c *catalog) refresh(ctx context.Context) ([]*part, error) {
	files, err := listParts(c.dir)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := make(map[string]bool, len(files))
	out := make([]*part, 0, len(files))
	for _, f := range files {
		seen[f.name] = true
		p := c.parts[f.name]
		if p == nil {
			p = &part{dir: c.dir, name: f.name, start: f.start}
			c.parts[f.name] = p
		}
		out = append(out, p)
	}
	for name, p := range c.parts {
		if !seen[name] {
			c.forget(p)
		}
	}
	return out, nil
}

// forget drops a partition that is gone; its connections close once the
// last query using them is done. Called with mu held.
func (c *catalog) forget(p *part) {
	p.gone = true
	delete(c.parts, p.name)
	if p.refs == 0 && p.db != nil {
		p.db.Close()
		p.db = nil
	}
}

// acquire returns the partition's read-only connections; release them with
// c.release(p).
func (c *catalog) acquire(p *part) (*sql.DB, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.gone {
		return nil, fmt.Errorf("flowlog: partition %s: %w", p.name, os.ErrNotExist)
	}
	c.tick++
	p.lastUse = c.tick
	p.refs++
	if p.db == nil {
		if _, err := os.Stat(p.path()); err != nil {
			p.refs--
			return nil, fmt.Errorf("flowlog: partition %s: %w", p.name, err)
		}
		db, err := openDB(p.path(), true, 2)
		if err != nil {
			p.refs--
			return nil, dbErr(p.path(), err)
		}
		p.db = db
		c.evict()
	}
	return p.db, nil
}

func (c *catalog) release(p *part) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p.refs--
	if p.refs == 0 && p.gone && p.db != nil {
		p.db.Close()
		p.db = nil
	}
}

// evict closes the least recently used idle connections beyond
// maxOpenParts. Called with mu held.
func (c *catalog) evict() {
	for {
		open := 0
		var lru *part
		for _, p := range c.parts {
			if p.db == nil {
				continue
			}
			open++
			if p.refs == 0 && (lru == nil || p.lastUse < lru.lastUse) {
				lru = p
			}
		}
		if open <= maxOpenParts || lru == nil {
			return
		}
		lru.db.Close()
		lru.db = nil
	}
}

// info returns the partition's period and contents. For a closed partition
// the answer is kept; the open one's changes with every write.
func (c *catalog) info(ctx context.Context, p *part, closed bool) (partInfo, error) {
	c.mu.Lock()
	if p.infoOK {
		defer c.mu.Unlock()
		return p.info, nil
	}
	c.mu.Unlock()
	db, err := c.acquire(p)
	if err != nil {
		return partInfo{}, err
	}
	defer c.release(p)
	m, err := readMeta(ctx, db, p.path())
	if err != nil {
		return partInfo{}, err
	}
	info := partInfo{start: m.start, end: m.end}
	// Each is one step down an index; the count is kept in meta.
	var minStart, maxEnd sql.NullInt64
	err = db.QueryRowContext(ctx, `SELECT (SELECT min(min_start) FROM blocks), (SELECT max(max_end) FROM blocks),
		(SELECT value FROM meta WHERE key = 'flows')`).Scan(&minStart, &maxEnd, &info.flows)
	if err != nil {
		return partInfo{}, dbErr(p.path(), err)
	}
	info.minStart, info.maxEnd = 1, 0
	if minStart.Valid && maxEnd.Valid {
		info.minStart, info.maxEnd = minStart.Int64, maxEnd.Int64
	}
	if closed {
		c.mu.Lock()
		p.info, p.infoOK = info, true
		c.mu.Unlock()
	}
	return info, nil
}

// drop forgets a partition without touching its files.
func (c *catalog) drop(p *part) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.forget(p)
}

// remove deletes a partition's files.
func (c *catalog) remove(p *part) error {
	c.drop(p)
	if err := removeDBFiles(p.path()); err != nil {
		return fmt.Errorf("flowlog: removing partition %s: %w", p.name, err)
	}
	return nil
}

func (c *catalog) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.parts {
		if p.db != nil {
			p.db.Close()
			p.db = nil
		}
	}
}
