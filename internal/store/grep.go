package store

import (
	"database/sql"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/report"
)

// GrepResult is every place an address appears in the state.
type GrepResult struct {
	Addr       netip.Addr
	ActiveBans []decision.Decision  // bans in force whose target contains Addr
	Allow      []ListEntry          // allow-list entries containing Addr, narrowest first
	Ignore     []ListEntry          // ignore-list entries containing Addr, narrowest first
	Decisions  []decision.Decision  // decisions of any kind about prefixes containing Addr, newest first
	Findings   []report.JSONFinding // findings with Addr as the source, most recent first
	TargetedBy []report.JSONFinding // findings whose evidence names Addr as a target, most recent first
}

// Grep finds every place a appears, for `scanwarden grep`. Decisions and
// both kinds of findings are limited to limit each (all if limit <= 0);
// bans in force and list entries are never more than one per covering
// prefix length, so they are not limited.
func (s *Store) Grep(a netip.Addr, limit int) (GrepResult, error) {
	fam, key, err := addrKey(a)
	if err != nil {
		return GrepResult{}, fmt.Errorf("store: grep: %w", err)
	}
	g := GrepResult{Addr: a.Unmap().WithZone("")}
	los := containing(fam, key, bitLen(fam))
	cover := covering(len(los))
	coverArgs := append(append([]any{fam}, los...), key[:])
	args := func(more ...any) []any { return append(append([]any(nil), coverArgs...), more...) }

	steps := []func() error{
		func() (err error) {
			g.ActiveBans, err = s.queryDecisions(`SELECT `+decisionCols+` FROM decisions
				WHERE `+cover+` AND `+inForce+` ORDER BY bits DESC, created DESC`, args(s.now().UnixNano())...)
			return err
		},
		func() (err error) { g.Allow, err = s.listEntriesContaining(AllowList, fam, key); return err },
		func() (err error) { g.Ignore, err = s.listEntriesContaining(IgnoreList, fam, key); return err },
		func() (err error) {
			g.Decisions, err = s.queryDecisions(`SELECT `+decisionCols+` FROM decisions WHERE `+cover+`
				ORDER BY created DESC, seq DESC LIMIT ?`, args(sqlLimit(limit))...)
			return err
		},
		func() (err error) { g.Findings, err = s.FindingsFor(a, limit); return err },
		func() (err error) { g.TargetedBy, err = s.findingsTargeting(a, limit); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return GrepResult{}, s.wrap("grep "+a.String(), err)
		}
	}
	return g, nil
}

// Prune deletes what is older than before: decisions created before it and
// findings last seen before it. It never deletes a ban in force now, nor a
// finding a remaining decision refers to (explain needs the reason). It
// returns how many decisions and findings it deleted.
//
// Deleting only decisions that are not in force keeps ended_by consistent:
// whatever ended a remaining ban is later than it, so it remains too. One
// corner is accepted: a ban imported after a prune, older than the pruned
// ban that had replaced it, is taken as in force.
func (s *Store) Prune(before time.Time) (decisions, findings int64, err error) {
	if err := checkTime(before); err != nil {
		return 0, 0, fmt.Errorf("store: pruning: %w", err)
	}
	b, now := before.UnixNano(), s.now().UnixNano()
	err = s.write("pruning", func(tx *sql.Tx) error {
		res, err := tx.Exec(`DELETE FROM decisions WHERE created < ? AND NOT (`+inForce+`)`, b, now)
		if err != nil {
			return err
		}
		if decisions, err = res.RowsAffected(); err != nil {
			return err
		}
		res, err = tx.Exec(`DELETE FROM findings WHERE last_seen < ? AND id NOT IN (
			SELECT finding_id FROM decisions WHERE finding_id IS NOT NULL)`, b)
		if err != nil {
			return err
		}
		findings, err = res.RowsAffected()
		return err
	})
	return decisions, findings, err
}

// Stats is what the store holds.
type Stats struct {
	Path          string
	SchemaVersion int
	Findings      int
	Decisions     int
	ActiveBans    int
	Allow         int // run-time allow-list entries
	Ignore        int // run-time ignore-list entries
	DBBytes       int64
	WALBytes      int64 // the write-ahead log, folded into the database at checkpoints
}

// Stats counts what the store holds, with bans in force counted now.
func (s *Store) Stats() (Stats, error) {
	st := Stats{Path: s.path, SchemaVersion: len(migrations)}
	err := s.queryRow(`SELECT
		(SELECT count(*) FROM findings),
		(SELECT count(*) FROM decisions),
		(`+qCountActive+`),
		(SELECT count(*) FROM list_entries WHERE list = 'allow'),
		(SELECT count(*) FROM list_entries WHERE list = 'ignore')`, s.now().UnixNano()).
		Scan(&st.Findings, &st.Decisions, &st.ActiveBans, &st.Allow, &st.Ignore)
	if err != nil {
		return st, s.wrap("stats", err)
	}
	if fi, err := os.Stat(s.path); err == nil {
		st.DBBytes = fi.Size()
	}
	if fi, err := os.Stat(s.path + "-wal"); err == nil {
		st.WALBytes = fi.Size()
	}
	return st, nil
}
