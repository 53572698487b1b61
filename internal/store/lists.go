package store

import (
	"database/sql"
	"fmt"
	"net/netip"
	"time"
)

// List names a run-time list.
type List string

// Lists. Entries from the configuration file are not stored: the file is
// their source of truth. These are the ones the CLI adds at run time.
const (
	AllowList  List = "allow"  // never ban
	IgnoreList List = "ignore" // do not even track
)

func (l List) check() error {
	if l != AllowList && l != IgnoreList {
		return fmt.Errorf("unknown list %q (want allow or ignore)", string(l))
	}
	return nil
}

const (
	qAddListEntry = `INSERT INTO list_entries (list, fam, lo, hi, bits, comment, actor, added)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (list, fam, lo, bits) DO UPDATE SET
			comment = excluded.comment, actor = excluded.actor, added = excluded.added`
	qRemoveListEntry = `DELETE FROM list_entries WHERE list = ? AND fam = ? AND lo = ? AND bits = ?`
)

// ListEntry is one entry of a list.
type ListEntry struct {
	Prefix  netip.Prefix
	Comment string
	By      string // who added it: "cli", a user name, ...
	Added   time.Time
}

// AddListEntry adds p to a list, or replaces the comment, author and time
// of an entry for the same prefix. A zero at means now. Adding to the allow
// list does not lift bans: the caller records an Allow decision for that.
func (s *Store) AddListEntry(list List, p netip.Prefix, comment, by string, at time.Time) error {
	if err := list.check(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	sp, err := toSpan(p)
	if err != nil {
		return fmt.Errorf("store: adding to %s list: %w", list, err)
	}
	if at.IsZero() {
		at = s.now()
	}
	if err := checkTime(at); err != nil {
		return fmt.Errorf("store: adding to %s list: %w", list, err)
	}
	return s.write("adding to "+string(list)+" list", func(tx *sql.Tx) error {
		_, err := s.txExec(tx, qAddListEntry, string(list), sp.fam, sp.lo[:], sp.hi[:], sp.bits, comment, by, at.UnixNano())
		return err
	})
}

// RemoveListEntry removes exactly p from a list and reports whether it was
// there.
func (s *Store) RemoveListEntry(list List, p netip.Prefix) (bool, error) {
	if err := list.check(); err != nil {
		return false, fmt.Errorf("store: %w", err)
	}
	sp, err := toSpan(p)
	if err != nil {
		return false, fmt.Errorf("store: removing from %s list: %w", list, err)
	}
	var n int64
	err = s.write("removing from "+string(list)+" list", func(tx *sql.Tx) error {
		res, err := s.txExec(tx, qRemoveListEntry, string(list), sp.fam, sp.lo[:], sp.bits)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	return n > 0, err
}

// ListEntries returns a list's entries in address order, IPv4 first.
func (s *Store) ListEntries(list List) ([]ListEntry, error) {
	if err := list.check(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	es, err := s.queryList(`SELECT fam, lo, bits, comment, actor, added FROM list_entries
		WHERE list = ? ORDER BY fam, lo, bits`, string(list))
	return es, s.wrap("listing "+string(list)+" list", err)
}

// listEntriesContaining returns the entries of a list that contain a.
func (s *Store) listEntriesContaining(list List, fam int, key [16]byte) ([]ListEntry, error) {
	los := containing(fam, key, bitLen(fam))
	args := append([]any{string(list), fam}, los...)
	args = append(args, key[:])
	return s.queryList(`SELECT fam, lo, bits, comment, actor, added FROM list_entries
		WHERE list = ? AND fam = ? AND lo IN (`+placeholders(len(los))+`) AND hi >= ?
		ORDER BY bits DESC`, args...)
}

func (s *Store) queryList(query string, args ...any) ([]ListEntry, error) {
	rows, err := s.query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ListEntry
	for rows.Next() {
		var (
			e         ListEntry
			fam, bits int
			lo        []byte
			added     int64
		)
		if err := rows.Scan(&fam, &lo, &bits, &e.Comment, &e.By, &added); err != nil {
			return nil, err
		}
		if e.Prefix, err = fromSpan(fam, lo, bits); err != nil {
			return nil, err
		}
		e.Added = time.Unix(0, added).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}
