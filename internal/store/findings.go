package store

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/report"
)

const (
	qUpsertFinding = `INSERT INTO findings
		(id, fam, src, direction, verdict, scan_type, class, first_seen, last_seen, detected_at, reason, json)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET
			fam = excluded.fam, src = excluded.src, direction = excluded.direction,
			verdict = excluded.verdict, scan_type = excluded.scan_type, class = excluded.class,
			first_seen = excluded.first_seen, last_seen = excluded.last_seen,
			detected_at = excluded.detected_at, reason = excluded.reason, json = excluded.json`
	qDeleteTargets = `DELETE FROM finding_targets WHERE finding_id = ?`
	qInsertTarget  = `INSERT OR IGNORE INTO finding_targets (fam, addr, finding_id) VALUES (?, ?, ?)`
)

// SaveFinding stores a finding, replacing the stored one with the same ID
// (a source's record is updated as evidence grows). The finding is kept as
// report.ToJSON renders it, the stable form, with a few columns to search
// by; the evidence's target hosts are indexed for Grep.
func (s *Store) SaveFinding(f *detect.Finding) error {
	return s.SaveFindings([]*detect.Finding{f})
}

// SaveFindings stores findings in one transaction.
func (s *Store) SaveFindings(fs []*detect.Finding) error {
	type row struct {
		f    *detect.Finding
		fam  int
		src  [16]byte
		json []byte
	}
	rows := make([]row, 0, len(fs))
	for _, f := range fs {
		r := row{f: f}
		var err error
		if f.ID == "" {
			err = errors.New("no ID")
		} else if r.fam, r.src, err = addrKey(f.Src); err != nil {
			err = fmt.Errorf("source: %w", err)
		} else if err = checkTimes(f.FirstSeen, f.LastSeen, f.DetectedAt); err == nil {
			r.json, err = encodeFinding(f)
		}
		if err != nil {
			return fmt.Errorf("store: saving finding %q: %w", f.ID, err)
		}
		rows = append(rows, r)
	}
	return s.write("saving findings", func(tx *sql.Tx) error {
		for _, r := range rows {
			if err := s.saveFinding(tx, r.f, r.fam, r.src, r.json); err != nil {
				return fmt.Errorf("finding %s: %w", r.f.ID, err)
			}
		}
		return nil
	})
}

func checkTimes(ts ...time.Time) error {
	for _, t := range ts {
		if err := checkTime(t); err != nil {
			return err
		}
	}
	return nil
}

func encodeFinding(f *detect.Finding) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // as report.WriteJSON
	if err := enc.Encode(report.ToJSON(f)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

func (s *Store) saveFinding(tx *sql.Tx, f *detect.Finding, fam int, src [16]byte, js []byte) error {
	_, err := s.txExec(tx, qUpsertFinding, f.ID, fam, src[:], f.Direction.String(), f.Verdict.String(), string(f.ScanType), string(f.Class),
		nanos(f.FirstSeen), nanos(f.LastSeen), nanos(f.DetectedAt), f.Reason, string(js))
	if err != nil {
		return err
	}
	if _, err := s.txExec(tx, qDeleteTargets, f.ID); err != nil {
		return err
	}
	for _, t := range f.Evidence.Targets {
		tf, tk, err := addrKey(t)
		if err != nil {
			continue // an evidence slot the sensor could not fill
		}
		if _, err := s.txExec(tx, qInsertTarget, tf, tk[:], f.ID); err != nil {
			return err
		}
	}
	return nil
}

// Finding returns a stored finding, or an error wrapping ErrNotFound.
func (s *Store) Finding(id string) (report.JSONFinding, error) {
	fs, err := s.queryFindings(`SELECT json FROM findings WHERE id = ?`, id)
	if err != nil {
		return report.JSONFinding{}, s.wrap("reading finding", err)
	}
	if len(fs) == 0 {
		return report.JSONFinding{}, fmt.Errorf("store: finding %q: %w", id, ErrNotFound)
	}
	return fs[0], nil
}

// FindingsFor returns the findings whose source is a, most recently seen
// first, at most limit (all if limit <= 0).
func (s *Store) FindingsFor(a netip.Addr, limit int) ([]report.JSONFinding, error) {
	fam, key, err := addrKey(a)
	if err != nil {
		return nil, fmt.Errorf("store: findings: %w", err)
	}
	fs, err := s.queryFindings(`SELECT json FROM findings WHERE fam = ? AND src = ?
		ORDER BY last_seen DESC, id DESC LIMIT ?`, fam, key[:], sqlLimit(limit))
	return fs, s.wrap("listing findings", err)
}

// Findings returns the findings last seen at or after since, most recently
// seen first, at most limit (all if limit <= 0).
func (s *Store) Findings(since time.Time, limit int) ([]report.JSONFinding, error) {
	fs, err := s.queryFindings(`SELECT json FROM findings WHERE last_seen >= ?
		ORDER BY last_seen DESC, id DESC LIMIT ?`, since.UnixNano(), sqlLimit(limit))
	return fs, s.wrap("listing findings", err)
}

// findingsTargeting returns findings whose evidence names a as a target.
func (s *Store) findingsTargeting(a netip.Addr, limit int) ([]report.JSONFinding, error) {
	fam, key, err := addrKey(a)
	if err != nil {
		return nil, err
	}
	return s.queryFindings(`SELECT f.json FROM finding_targets t JOIN findings f ON f.id = t.finding_id
		WHERE t.fam = ? AND t.addr = ? ORDER BY f.last_seen DESC, f.id DESC LIMIT ?`,
		fam, key[:], sqlLimit(limit))
}

func (s *Store) queryFindings(query string, args ...any) ([]report.JSONFinding, error) {
	rows, err := s.query(query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []report.JSONFinding
	for rows.Next() {
		var js []byte
		if err := rows.Scan(&js); err != nil {
			return nil, err
		}
		var j report.JSONFinding
		if err := json.Unmarshal(js, &j); err != nil {
			return nil, fmt.Errorf("stored finding is not valid JSON: %w", err)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}
