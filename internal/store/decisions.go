package store

import (
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
)

// Which bans are in force.
//
// The decisions table is an append-only log; what is in force is derived
// from it by these rules, which match what an enforcer does when it applies
// the decisions in order (a re-added element gets the new timeout):
//
//  1. Only enforced bans count: kind ban and not dry-run. Watch decisions
//     and dry-run decisions of any kind change nothing.
//  2. The latest ban of a target replaces earlier bans of the same target,
//     even if it is shorter: an operator who re-bans for an hour means an
//     hour.
//  3. An unban or allow lifts every earlier ban whose target it contains:
//     `unban 203.0.113.0/24` lets the whole /24 back in, as `allow` of a
//     network must. A narrower lift does not punch a hole in a wider ban
//     (`unban 10.1.2.3` leaves a ban of 10.0.0.0/8 in force): no enforcer
//     can split a prefix, and grep shows the covering ban.
//  4. A ban not ended by 2 or 3 is in force until it expires (never, if
//     Expires is zero).
//
// "Earlier" and "later" are by Created, then by insertion order: an event
// imported or received late from another host takes its place in time.
//
// To keep ActiveBans cheap with 100 000 bans, SaveDecision records the
// result of rules 2 and 3 in the same transaction as the insert: ended_by
// names the decision that ended a ban, set on the older bans when the newer
// decision arrives, or on the newly inserted ban when a later decision is
// already stored. ActiveBans is then one scan of a partial index.

// byDetector is Decision.By for bans the detector asked for (policy.Decide).
const byDetector = "detector"

const decisionCols = `id, kind, fam, lo, bits, created, expires, reason, finding_id, offence, actor, dry_run, not_acted`

// The queries whose plans matter with many bans; TestQueryPlans checks that
// each uses the index it was written for.
const (
	// inForce: an enforced ban not ended by a later decision nor expired
	// at the parameter.
	inForce = `kind = 'ban' AND dry_run = 0 AND ended_by IS NULL AND (expires IS NULL OR expires > ?)`
	// INDEXED BY: left to itself, SQLite scans decisions_created for the
	// order instead of the much smaller partial index.
	qActiveBans = `SELECT ` + decisionCols + ` FROM decisions INDEXED BY decisions_unended
		WHERE ` + inForce + ` ORDER BY created DESC, seq DESC`
	qCountActive = `SELECT count(*) FROM decisions INDEXED BY decisions_unended WHERE ` + inForce
	qLaterBan    = `SELECT id FROM decisions
		WHERE fam = ? AND lo = ? AND bits = ? AND created > ? AND kind = 'ban' AND dry_run = 0
		ORDER BY created, seq LIMIT 1`
	qSupersede = `UPDATE decisions SET ended_by = ?
		WHERE fam = ? AND lo = ? AND bits = ? AND created <= ? AND seq <> ?
		AND kind = 'ban' AND dry_run = 0 AND ended_by IS NULL`
	qLift = `UPDATE decisions SET ended_by = ?
		WHERE fam = ? AND lo BETWEEN ? AND ? AND hi <= ? AND created <= ? AND seq <> ?
		AND kind = 'ban' AND dry_run = 0 AND ended_by IS NULL`
	qInsertDecision = `INSERT INTO decisions (` + decisionCols + `, hi, ended_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
)

// writeQueries are the statements the writer prepares at open.
func writeQueries() []string {
	return []string{
		qInsertDecision, qLaterBan, qSupersede, qLift, qLaterLift(bitLen(fam4) + 1), qLaterLift(bitLen(fam6) + 1),
		qUpsertFinding, qDeleteTargets, qInsertTarget, qAddListEntry, qRemoveListEntry,
	}
}

// covering is the condition "the row's prefix contains the address or
// prefix" for n values from containing; its parameters are fam, the n
// values and the searched hi (prefix.go).
func covering(n int) string {
	return `fam = ? AND lo IN (` + placeholders(n) + `) AND hi >= ?`
}

func qLaterLift(n int) string {
	return `SELECT id FROM decisions WHERE ` + covering(n) + ` AND created > ?
		AND kind IN ('unban', 'allow') AND dry_run = 0 ORDER BY created, seq LIMIT 1`
}

func qOffences(n int) string {
	return `SELECT count(*) FROM decisions WHERE ` + covering(n) + ` AND created >= ?
		AND kind = 'ban' AND dry_run = 0 AND actor = ?`
}

// Times a Unix-nanosecond INTEGER can hold: 1678 to 2262.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// SaveDecision stores a decision. It is on disk when SaveDecision returns.
// Saving a decision whose ID is already stored does nothing, so a
// redelivered event is harmless.
func (s *Store) SaveDecision(d *decision.Decision) error {
	return s.SaveDecisions([]*decision.Decision{d})
}

// SaveDecisions stores decisions in order in one transaction (one fsync):
// for imports and bursts.
func (s *Store) SaveDecisions(ds []*decision.Decision) error {
	for _, d := range ds {
		if err := checkDecision(d); err != nil {
			return fmt.Errorf("store: saving decision %q: %w", d.ID, err)
		}
	}
	return s.write("saving decisions", func(tx *sql.Tx) error {
		for _, d := range ds {
			if err := s.saveDecision(tx, d); err != nil {
				return fmt.Errorf("decision %s: %w", d.ID, err)
			}
		}
		return nil
	})
}

func checkDecision(d *decision.Decision) error {
	switch {
	case d.ID == "":
		return errors.New("no ID")
	case d.Kind != decision.Ban && d.Kind != decision.Unban && d.Kind != decision.Allow && d.Kind != decision.Watch:
		return fmt.Errorf("unknown kind %q", d.Kind)
	case !d.Target.IsValid():
		return errors.New("no valid target")
	case d.Created.IsZero():
		return errors.New("no creation time")
	}
	if err := checkTime(d.Created); err != nil {
		return err
	}
	return checkTime(d.Expires)
}

func checkTime(t time.Time) error {
	if !t.IsZero() && (t.Before(minTime) || t.After(maxTime)) {
		return fmt.Errorf("time %v out of range (years 1678 to 2262; a permanent ban has a zero expiry)", t)
	}
	return nil
}

// nanos is t as stored: Unix nanoseconds, NULL for the zero time.
func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func fromNanos(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func enforcedBan(d *decision.Decision) bool { return d.Kind == decision.Ban && !d.DryRun }
func lift(d *decision.Decision) bool {
	return (d.Kind == decision.Unban || d.Kind == decision.Allow) && !d.DryRun
}

func (s *Store) saveDecision(tx *sql.Tx, d *decision.Decision) error {
	sp, err := toSpan(d.Target)
	if err != nil {
		return err
	}
	created := d.Created.UnixNano()
	var endedBy sql.NullString
	if enforcedBan(d) {
		if endedBy, err = s.laterEnder(tx, sp, created); err != nil {
			return err
		}
	}
	res, err := s.txExec(tx, qInsertDecision, d.ID, string(d.Kind), sp.fam, sp.lo[:], sp.bits, created, nanos(d.Expires), d.Reason,
		nullString(d.FindingID), d.Offence, d.By, d.DryRun, d.NotActed, sp.hi[:], endedBy)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return err // a duplicate ID: already stored
	}
	seq, err := res.LastInsertId()
	if err != nil {
		return err
	}
	switch {
	case enforcedBan(d) && !endedBy.Valid: // rule 2: end older bans of the target
		_, err = s.txExec(tx, qSupersede, d.ID, sp.fam, sp.lo[:], sp.bits, created, seq)
	case lift(d): // rule 3: end older bans inside the lifted prefix
		_, err = s.txExec(tx, qLift, d.ID, sp.fam, sp.lo[:], sp.hi[:], sp.hi[:], created, seq)
	}
	return err
}

// laterEnder finds a stored decision that ends a ban of sp created at
// created: a later enforced ban of the same target, or a later lift of a
// prefix containing it. Later means created after: a decision with the same
// time was inserted earlier, so the new ban is the later one.
func (s *Store) laterEnder(tx *sql.Tx, sp span, created int64) (sql.NullString, error) {
	var id sql.NullString
	err := s.txQueryRow(tx, qLaterBan, sp.fam, sp.lo[:], sp.bits, created).Scan(&id)
	if err != sql.ErrNoRows {
		return id, err
	}
	los := containing(sp.fam, sp.lo, sp.bits)
	args := append([]any{sp.fam}, los...)
	args = append(args, sp.hi[:], created)
	err = s.txQueryRow(tx, qLaterLift(len(los)), args...).Scan(&id)
	if err == sql.ErrNoRows {
		return id, nil
	}
	return id, err
}

// ActiveBans returns the bans in force at now, newest first: for each
// target the latest enforced ban, unless it has expired or a later unban or
// allow of a containing prefix lifted it (see the rules above). Nested
// targets can both be in force (10.0.0.0/8 and 10.1.2.3 with a longer
// expiry); an enforcer whose sets reject overlaps must merge them.
func (s *Store) ActiveBans(now time.Time) ([]decision.Decision, error) {
	// Sized first: with 100 000 bans, growing the slice of 200-byte
	// Decisions cost more than this count (10 ms, from the index alone).
	var n int
	if err := s.queryRow(qCountActive, now.UnixNano()).Scan(&n); err != nil {
		return nil, s.wrap("counting active bans", err)
	}
	ds, err := s.queryDecisionsCap(n, qActiveBans, now.UnixNano())
	return ds, s.wrap("listing active bans", err)
}

// Decision returns one decision by ID, or an error wrapping ErrNotFound.
func (s *Store) Decision(id string) (decision.Decision, error) {
	ds, err := s.queryDecisions(`SELECT `+decisionCols+` FROM decisions WHERE id = ?`, id)
	if err != nil {
		return decision.Decision{}, s.wrap("reading decision", err)
	}
	if len(ds) == 0 {
		return decision.Decision{}, fmt.Errorf("store: decision %q: %w", id, ErrNotFound)
	}
	return ds[0], nil
}

// Decisions returns the history of one target (exactly that prefix; Grep
// finds covering ones), newest first, at most limit (all if limit <= 0).
func (s *Store) Decisions(target netip.Prefix, limit int) ([]decision.Decision, error) {
	sp, err := toSpan(target)
	if err != nil {
		return nil, fmt.Errorf("store: decisions: %w", err)
	}
	ds, err := s.queryDecisions(`SELECT `+decisionCols+` FROM decisions
		WHERE fam = ? AND lo = ? AND bits = ? ORDER BY created DESC, seq DESC LIMIT ?`,
		sp.fam, sp.lo[:], sp.bits, sqlLimit(limit))
	return ds, s.wrap("listing decisions", err)
}

// Offences counts the bans the detector made (enforced: neither dry-run nor
// watch) of prefixes containing a, created at or after since: the
// escalation history policy.History asks for. Bans an operator lifted still
// count; retention must be longer than the escalation period or pruning
// forgets offences.
func (s *Store) Offences(a netip.Addr, since time.Time) (int, error) {
	fam, key, err := addrKey(a)
	if err != nil {
		return 0, fmt.Errorf("store: offences: %w", err)
	}
	los := containing(fam, key, bitLen(fam))
	args := append([]any{fam}, los...)
	args = append(args, key[:], since.UnixNano(), byDetector)
	var n int
	err = s.queryRow(qOffences(len(los)), args...).Scan(&n)
	return n, s.wrap("counting offences", err)
}

func bitLen(fam int) int {
	if fam == fam4 {
		return 32
	}
	return 128
}

// sqlLimit maps "no limit" (<= 0) to SQLite's -1.
func sqlLimit(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

func (s *Store) queryDecisions(query string, args ...any) ([]decision.Decision, error) {
	return s.queryDecisionsCap(0, query, args...)
}

func (s *Store) queryDecisionsCap(n int, query string, args ...any) ([]decision.Decision, error) {
	rows, err := s.query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make([]decision.Decision, 0, n)
	for rows.Next() {
		d, err := scanDecision(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

func scanDecision(rows *sql.Rows) (decision.Decision, error) {
	var (
		d                decision.Decision
		kind, actor      string
		fam, bits        int
		lo               []byte
		created          int64
		expires          sql.NullInt64
		findingID        sql.NullString
		dryRun           bool
		reason, notActed string
		offence          int
	)
	if err := rows.Scan(&d.ID, &kind, &fam, &lo, &bits, &created, &expires, &reason,
		&findingID, &offence, &actor, &dryRun, &notActed); err != nil {
		return d, err
	}
	target, err := fromSpan(fam, lo, bits)
	if err != nil {
		return d, fmt.Errorf("decision %s: %w", d.ID, err)
	}
	d.Kind, d.Target = decision.Kind(kind), target
	d.Created, d.Expires = time.Unix(0, created).UTC(), fromNanos(expires)
	d.Reason, d.FindingID, d.Offence, d.By = reason, findingID.String, offence, actor
	d.DryRun, d.NotActed = dryRun, notActed
	return d, nil
}
