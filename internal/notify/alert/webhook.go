package alert

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/report"
)

// webhook POSTs a message as a JSON array.
type webhook struct {
	url    string
	header http.Header
	client *http.Client
}

func (w *webhook) name() string { return "webhook" }

// JSONEvent is one element of the array a webhook receives (see the
// package doc). Fields are only ever added, never renamed.
type JSONEvent struct {
	Kind     string              `json:"kind"` // ban, watch, finding; unlisted for the count of the rest
	Time     string              `json:"time,omitempty"`
	Host     string              `json:"host,omitempty"`
	Finding  *report.JSONFinding `json:"finding,omitempty"`
	Decision *decision.Decision  `json:"decision,omitempty"`
	Action   string              `json:"action,omitempty"`    // the decision in words
	Undo     string              `json:"undo,omitempty"`      // bans: the command that lifts it
	WouldBan string              `json:"would_ban,omitempty"` // watch decisions: what would ban the source
	Count    int                 `json:"count,omitempty"`     // unlisted: how many events
	Counts   map[string]int      `json:"counts,omitempty"`    // unlisted: how many of each kind
}

// jsonEvents is the array for a message. JSON escapes control
// characters itself, so the texts go as they are.
func jsonEvents(g *digest, host string) []JSONEvent {
	out := make([]JSONEvent, 0, len(g.listed)+1)
	for _, ev := range g.listed {
		j := JSONEvent{Kind: string(ev.kind), Time: ev.at.UTC().Format(time.RFC3339Nano), Host: host}
		if ev.f != nil {
			jf := report.ToJSON(ev.f)
			j.Finding = &jf
		}
		if d := ev.d; d != nil {
			j.Decision = d
			j.Action = decisionText(d)
			if d.Kind == decision.Ban {
				j.Undo = "scanwarden unban " + target(d.Target)
			} else {
				j.WouldBan = wouldBan(d)
			}
		}
		out = append(out, j)
	}
	if n := g.unlisted(); n > 0 {
		out = append(out, JSONEvent{Kind: "unlisted", Host: host, Count: n, Counts: g.unlistedCounts()})
	}
	return out
}

func (w *webhook) send(ctx context.Context, a *Alerter, m *sealed) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(jsonEvents(m.digest, a.cfg.Host)); err != nil {
		return fmt.Errorf("encoding the webhook body: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, &buf)
	if err != nil {
		return err
	}
	req.Header = w.header.Clone()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "scanwarden")
	// The same for every attempt: a receiver that got a message whose
	// answer we missed can drop the repeat.
	req.Header.Set("X-Scanwarden-Message-Id", m.id)
	resp, err := w.client.Do(req)
	if err != nil {
		return err // a *url.Error: the URL without its password
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("webhook %s answered %s", redacted(w.url), resp.Status)
	}
	return nil
}

func redacted(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(bad URL)"
	}
	return u.Redacted()
}
