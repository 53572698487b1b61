package store

import (
	"database/sql"
	"fmt"
)

// applicationID marks the file as scanwarden's ("SWDN"), so that Open can
// tell our database from another program's SQLite file (`file` shows it
// too).
const applicationID = 0x5357444e

// migrations are the schema's history: migrations[i] takes the database
// from version i to i+1 (PRAGMA user_version). Each runs in one transaction
// together with the version bump, so a crash leaves the old version or the
// new one, never half of a step. Append only: a released step is never
// edited, a change is a new step.
//
// Conventions: times are INTEGER Unix nanoseconds (UTC), NULL where the Go
// value is the zero time; prefixes and addresses are fam/lo/hi/bits as
// described in prefix.go; tables are STRICT so a wrong type is an error.
var migrations = []string{
	// 1: findings, decisions, lists.
	`
PRAGMA application_id = 1398228046; -- applicationID

CREATE TABLE findings (
	id          TEXT PRIMARY KEY,
	fam         INTEGER NOT NULL,
	src         BLOB NOT NULL,
	direction   TEXT NOT NULL,
	verdict     TEXT NOT NULL,
	scan_type   TEXT NOT NULL,
	class       TEXT NOT NULL,
	first_seen  INTEGER,
	last_seen   INTEGER,
	detected_at INTEGER,
	reason      TEXT NOT NULL,
	json        TEXT NOT NULL -- report.JSONFinding, the stable form
) STRICT;
CREATE INDEX findings_src ON findings (fam, src, last_seen);
CREATE INDEX findings_last_seen ON findings (last_seen);

-- The hosts a finding's evidence names as targets, for grep.
CREATE TABLE finding_targets (
	fam        INTEGER NOT NULL,
	addr       BLOB NOT NULL,
	finding_id TEXT NOT NULL REFERENCES findings (id) ON DELETE CASCADE,
	PRIMARY KEY (fam, addr, finding_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX finding_targets_finding ON finding_targets (finding_id);

CREATE TABLE decisions (
	seq        INTEGER PRIMARY KEY, -- insertion order; breaks ties in created
	id         TEXT NOT NULL UNIQUE,
	kind       TEXT NOT NULL CHECK (kind IN ('ban', 'unban', 'allow', 'watch')),
	fam        INTEGER NOT NULL,
	lo         BLOB NOT NULL,
	hi         BLOB NOT NULL,
	bits       INTEGER NOT NULL,
	created    INTEGER NOT NULL,
	expires    INTEGER, -- NULL: permanent
	reason     TEXT NOT NULL,
	finding_id TEXT, -- no foreign key: a decision may outlive its finding's row
	offence    INTEGER NOT NULL,
	actor      TEXT NOT NULL, -- Decision.By
	dry_run    INTEGER NOT NULL,
	not_acted  TEXT NOT NULL,
	-- For an enforced ban (kind 'ban', dry_run 0): the ID of the later
	-- decision that ended it, a newer ban of the same target or an unban or
	-- allow of a prefix containing it. NULL while it is in force (until it
	-- expires). Maintained by SaveDecision; see decisions.go.
	ended_by   TEXT
) STRICT;
-- Every lookup by address goes through decisions_target: an exact target,
-- or the containing prefixes as lo IN (...) (prefix.go). No index on kind
-- alone: four values, and without statistics SQLite preferred it to
-- decisions_target, turning Offences into a scan of every ban (33 ms with
-- 100 000 bans instead of 20 µs). Kind is indexed where it matters, in
-- decisions_unended: the bans not yet ended, in ActiveBans' order (created,
-- then seq), with expires so that counting them need not read the table.
CREATE INDEX decisions_target ON decisions (fam, lo, bits, created);
CREATE INDEX decisions_created ON decisions (created);
CREATE INDEX decisions_finding ON decisions (finding_id) WHERE finding_id IS NOT NULL;
CREATE INDEX decisions_unended ON decisions (created, seq, expires)
	WHERE kind = 'ban' AND dry_run = 0 AND ended_by IS NULL;

CREATE TABLE list_entries (
	list    TEXT NOT NULL CHECK (list IN ('allow', 'ignore')),
	fam     INTEGER NOT NULL,
	lo      BLOB NOT NULL,
	hi      BLOB NOT NULL,
	bits    INTEGER NOT NULL,
	comment TEXT NOT NULL,
	actor   TEXT NOT NULL,
	added   INTEGER NOT NULL,
	PRIMARY KEY (list, fam, lo, bits)
) STRICT, WITHOUT ROWID;
`,
}

// migrate brings the schema up to SchemaVersion, or refuses a database from
// a newer scanwarden.
func (s *Store) migrate() error {
	var have int
	if err := s.w.QueryRow("PRAGMA user_version").Scan(&have); err != nil {
		return s.openErr(err)
	}
	if have > len(migrations) { // checkFile refuses these; this is a second guard
		return &VersionError{Path: s.path, Have: have, Max: len(migrations)}
	}
	for v := have; v < len(migrations); v++ {
		err := s.write(fmt.Sprintf("migrating schema to version %d", v+1), func(tx *sql.Tx) error {
			if _, err := tx.Exec(migrations[v]); err != nil {
				return err
			}
			_, err := tx.Exec(fmt.Sprintf("PRAGMA user_version = %d", v+1))
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}
