package alert

import (
	"fmt"
	"net/netip"
	"strings"
	"text/template"
	"time"
	"unicode"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
)

// DefaultSubjectTemplate is the built-in subject:
// "scanwarden on web1: 3 bans, 1 scan not acted upon".
const DefaultSubjectTemplate = `scanwarden on {{.Host}}: {{.Summary}}`

// DefaultBodyTemplate is the built-in body: a heading, then one short block
// per listed event.
const DefaultBodyTemplate = `scanwarden on {{.Host}}: {{.Summary}}
{{if eq (time .First) (time .Last)}}At {{time .First}}.{{else}}From {{time .First}} to {{time .Last}}.{{end}}
{{range .Events}}
[{{.Kind}}] {{.Src}}
{{- if .Decision}}
  Decision: {{.Decision}}{{end}}
  Reason:   {{.Reason}}
{{- if .HasFinding}}
  Evidence: {{.Verdict}}, {{.ScanType}} scan, {{.Class}}; {{if .Saturated}}at least {{end}}{{.Ports}} {{plural .Ports "port"}} on {{.Hosts}} {{plural .Hosts "host"}}, {{.Attempts}} {{plural .Attempts "attempt"}}, {{.Packets}} {{plural .Packets "packet"}}{{if .Tool}}; tool {{.Tool}}{{end}}
  Seen:     {{time .FirstSeen}} to {{time .LastSeen}}{{end}}
{{- if .Undo}}
  Undo:     {{.Undo}}{{end}}
{{- if .WouldBan}}
  To ban:   {{.WouldBan}}{{end}}
{{- if .Explain}}
  Details:  {{.Explain}}{{end}}
{{end}}
{{- if .Unlisted}}
... and {{.Unlisted}} more {{plural .Unlisted "event"}} not listed ({{.Total}} in all: {{.Summary}}).
{{end}}
-- 
Sent by scanwarden on {{.Host}}. More: scanwarden findings, scanwarden list.
`

var funcs = template.FuncMap{
	"time": func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"plural": plural,
	"upper":  strings.ToUpper,
}

// parseTemplate parses a user's template, or the built-in one when src is
// empty, and runs it once on a sample message so that a field that does
// not exist is an error now rather than at the first alert.
func parseTemplate(name, src, builtin string) (*template.Template, error) {
	key := "alerts.templates." + name
	if src == "" {
		src = builtin
	}
	t, err := template.New(name).Funcs(funcs).Option("missingkey=error").Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, sampleMessage()); err != nil {
		return nil, fmt.Errorf("%s: %w (a message has .Host .First .Last .Total .Bans .Watches .Findings .Summary .Unlisted and .Events, each with .Kind .Src .Target .Reason .Decision .Undo .WouldBan and the evidence)", key, err)
	}
	return t, nil
}

// sampleMessage holds one event of each kind, for checking templates.
func sampleMessage() *Message {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	src := netip.MustParseAddr("203.0.113.9")
	f := &detect.Finding{ID: "sample", Src: src, Verdict: detect.Scan, ScanType: detect.TypeSYN,
		Class: detect.ClassVertical, Tool: "nmap", Ports: 1000, Hosts: 1, Attempts: 1000, Packets: 1000,
		FirstSeen: now, LastSeen: now, Reason: "Vertical SYN scan of 1000 ports."}
	ban := &decision.Decision{ID: "sample", Kind: decision.Ban, Target: decision.HostPrefix(src), Created: now,
		Expires: now.Add(time.Hour), Reason: f.Reason, Offence: 1, By: "detector"}
	watch := *ban
	watch.Kind, watch.NotActed, watch.Expires = decision.Watch, "guard: default gateway", time.Time{}
	g := &digest{}
	for _, ev := range []*event{{KindBan, now, f, ban}, {KindWatch, now, f, &watch}, {KindFinding, now, f, nil}} {
		g.add(ev)
	}
	g.counts[2] += 10 // and some unlisted
	return g.message("sample-host")
}

// render executes the templates for a digest. The subject is made fit for
// a header whatever the template put into it. A user's template that fails
// on real data (New tried it on a sample) is logged and the built-in one
// used: the alert still goes out.
func (a *Alerter) render(g *digest) (subject, body string) {
	m := g.message(a.cfg.Host)
	subject = headerSafe(a.exec(a.subject, builtinSubject, m))
	if subject == "" {
		subject = headerSafe(a.exec(builtinSubject, builtinSubject, m))
	}
	return subject, a.exec(a.body, builtinBody, m)
}

var (
	builtinSubject = template.Must(template.New("subject").Funcs(funcs).Parse(DefaultSubjectTemplate))
	builtinBody    = template.Must(template.New("body").Funcs(funcs).Parse(DefaultBodyTemplate))
)

func (a *Alerter) exec(t, fallback *template.Template, m *Message) string {
	var b strings.Builder
	err := t.Execute(&b, m)
	if err == nil {
		return b.String()
	}
	a.log.Error("alert template failed; using the built-in one", "template", t.Name(), "err", err)
	b.Reset()
	if err := fallback.Execute(&b, m); err != nil {
		return "scanwarden on " + m.Host + ": " + m.Summary + "\n"
	}
	return b.String()
}

// headerSafe turns every control or invisible format character (CR, LF,
// escapes, bidi overrides) into a space, folds runs of spaces and cuts the
// result to maxSubject characters: one line, nothing that could end the
// header or start another.
func headerSafe(s string) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range s {
		if r == unicode.ReplacementChar || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) ||
			unicode.IsSpace(r) {
			space = b.Len() > 0
			continue
		}
		if n >= maxSubject {
			break
		}
		if space {
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
