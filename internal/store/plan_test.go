package store

import (
	"strings"
	"testing"
)

// TestQueryPlans pins the index each hot query uses. A query that falls
// back to a scan still gives right answers, so only its plan shows it: with
// 100 000 bans, Offences once took 33 ms through a kind index instead of
// 20 µs through decisions_target.
func TestQueryPlans(t *testing.T) {
	s := openTest(t)
	fam, key, _ := addrKey(mustAddr("10.1.2.3"))
	n := len(containing(fam, key, 32))
	many := func(k int, v any) []any {
		out := make([]any, k)
		for i := range out {
			out[i] = v
		}
		return out
	}
	cases := []struct {
		name, query string
		args        int
		want        string // in the plan
		notWant     string // nowhere in the plan
	}{
		{"active bans", qActiveBans, 1, "USING INDEX decisions_unended", "TEMP B-TREE"},
		{"later ban", qLaterBan, 4, "USING INDEX decisions_target (fam=? AND lo=? AND bits=? AND created>?)", "TEMP B-TREE"},
		{"later lift", qLaterLift(n), n + 3, "USING INDEX decisions_target (fam=? AND lo=?)", "SCAN"},
		{"offences", qOffences(n), n + 4, "USING INDEX decisions_target (fam=? AND lo=?)", "SCAN"},
		{"supersede", qSupersede, 6, "USING INDEX decisions_target (fam=? AND lo=? AND bits=? AND created<?)", "SCAN"},
		{"lift", qLift, 7, "USING INDEX decisions_target (fam=? AND lo>? AND lo<?)", "SCAN"},
		{"grep bans", `SELECT id FROM decisions WHERE ` + covering(n) + ` AND ` + inForce, n + 3, "USING INDEX decisions_target", "SCAN"},
		{"findings of a source", `SELECT json FROM findings WHERE fam = ? AND src = ? ORDER BY last_seen DESC, id DESC LIMIT ?`, 3, "USING INDEX findings_src", "SCAN"},
		{"prune", `SELECT seq FROM decisions WHERE created < ? AND NOT (` + inForce + `)`, 2, "USING INDEX decisions_created", "SCAN"},
	}
	for _, c := range cases {
		rows, err := s.r.Query("EXPLAIN QUERY PLAN "+c.query, many(c.args, 0)...)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ")
		if !strings.Contains(p, c.want) || c.notWant != "" && strings.Contains(p, c.notWant) {
			t.Errorf("%s: plan %q, want %q and no %q", c.name, p, c.want, c.notWant)
		}
	}
}
