package alert

import (
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/scanwarden/scanwarden/internal/decision"
)

func TestNewErrors(t *testing.T) {
	mail := EmailConfig{Enabled: true, To: []string{"ops@example.net"}, Host: "smtp.example.net"}
	hook := WebhookConfig{Enabled: true, URL: "https://hooks.example.net/x"}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"subject syntax", Config{SubjectTemplate: "{{.Host"}, "alerts.templates.subject: template: subject:1: unclosed action"},
		{"subject field", Config{SubjectTemplate: "{{.Hostname}}"}, `alerts.templates.subject: template: subject:1:2: executing "subject" at <.Hostname>: can't evaluate field Hostname`},
		{"body syntax", Config{BodyTemplate: "{{range .Events}}"}, "alerts.templates.body: template: body:1: unexpected EOF"},
		{"body function", Config{BodyTemplate: "{{shout .Host}}"}, `alerts.templates.body: template: body:1: function "shout" not defined`},
		{"no recipients", Config{Email: EmailConfig{Enabled: true, Host: "smtp.example.net"}}, "alerts.email.to: no recipients"},
		{"bad recipient", Config{Email: EmailConfig{Enabled: true, Host: "smtp.example.net", To: []string{"ops"}}}, `alerts.email.to: "ops" is not a mail address`},
		{"recipient with CRLF", Config{Email: EmailConfig{Enabled: true, Host: "smtp.example.net", To: []string{"ops@example.net\r\nBcc: x@y"}}}, "line break"},
		{"no server", Config{Email: EmailConfig{Enabled: true, To: []string{"ops@example.net"}}}, "alerts.email.host: no SMTP server"},
		{"security", Config{Email: EmailConfig{Enabled: true, To: mail.To, Host: mail.Host, Security: "ssl"}}, `alerts.email.security: "ssl" is not starttls, tls or none`},
		{"port", Config{Email: EmailConfig{Enabled: true, To: mail.To, Host: mail.Host, Port: 70000}}, "alerts.email.port: 70000"},
		{"url", Config{Webhook: WebhookConfig{Enabled: true, URL: "ftp://x"}}, `alerts.webhook.url: "ftp://x" is not an http(s) URL`},
		{"header name", Config{Webhook: WebhookConfig{Enabled: true, URL: hook.URL, Headers: map[string]string{"X Bad": "1"}}}, `alerts.webhook.headers: "X Bad" is not a header name`},
		{"header value", Config{Webhook: WebhookConfig{Enabled: true, URL: hook.URL, Headers: map[string]string{"X-Token": "a\r\nX-Evil: 1"}}}, "line break"},
		{"on", Config{On: []string{"ban", "unban"}}, `alerts.on: "unban" is not ban, watch or finding`},
		{"retry", Config{RetryMin: time.Minute, RetryMax: time.Second}, "shorter than the first"},
	} {
		_, err := New(tc.cfg, quietLog())
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(Config{Email: mail, Webhook: hook}, quietLog()); err != nil {
		t.Errorf("a good configuration: %v", err)
	}
}

// TestNeverBlocks: without Run, events pile up in the open digest, which
// keeps MaxListed of them and counts the rest.
func TestNeverBlocks(t *testing.T) {
	a, err := New(Config{On: []string{"finding", "ban"}, Webhook: WebhookConfig{Enabled: true, URL: "http://127.0.0.1:9/"},
		Email: EmailConfig{Enabled: true, To: []string{"ops@example.net"}, Host: "127.0.0.1"}}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	f := finding("203.0.113.9")
	for range 100000 {
		a.Finding(f)
	}
	a.Ban(banOf(f), f)
	a.Watch(watchOf(f, "dry-run"), f) // not in alerts.on
	st := a.Stats()
	if st.Events != 100001 || st.Email.Waiting != 100001 || st.Webhook.Waiting != 100001 {
		t.Errorf("stats %+v", st)
	}
	for _, c := range a.channels {
		if n := len(c.open.listed); n != MaxListed {
			t.Errorf("%s keeps %d events in full", c.s.name(), n)
		}
	}
}

func TestTexts(t *testing.T) {
	f := finding("203.0.113.9")
	for _, tc := range []struct {
		why, want string
	}{
		{"dry-run", "turn policy.dry_run off"},
		{"allow list: 203.0.113.0/24", "remove 203.0.113.0/24 from the allow list (scanwarden unallow 203.0.113.0/24, or policy.allow), then: scanwarden ban 203.0.113.9"},
		{"guard: ssh session", "nothing: guarded addresses are never banned"},
		{"rate cap: at most 60 new bans a minute", "scanwarden ban 203.0.113.9"},
		{"decoys: one of 5 sources probing in lockstep (policy.decoys: ban-none)", "scanwarden ban 203.0.113.9"},
		{"not a real source address (0.0.0.0/8)", "nothing: it is not a unicast source address"},
	} {
		if got := wouldBan(watchOf(f, tc.why)); !strings.HasPrefix(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.why, got, tc.want)
		}
	}
	for d, want := range map[time.Duration]string{time.Hour: "1h", 90 * time.Minute: "1h30m", 2 * time.Minute: "2m",
		48 * time.Hour: "2d", 90 * time.Second: "1m30s", 36 * time.Hour: "36h"} {
		if got := duration(d); got != want {
			t.Errorf("duration(%v) = %q, want %q", d, got, want)
		}
	}
	perm := banOf(f)
	perm.Expires, perm.Offence = time.Time{}, 5
	if got := decisionText(perm); got != "banned permanently (offence 5)" {
		t.Errorf("%q", got)
	}
	byHand := &decision.Decision{Kind: decision.Ban, Target: decision.HostPrefix(f.Src), Created: t0,
		Expires: t0.Add(24 * time.Hour), Reason: "seen in the logs", By: "cli: uid 0"}
	ev := newEvent(KindBan, nil, byHand).text()
	if ev.HasFinding || ev.Src != "203.0.113.9" || ev.Reason != "seen in the logs" || ev.Decision != "banned for 1d by cli: uid 0" {
		t.Errorf("%+v", ev)
	}
	var counts [len(kinds)]int
	counts[0], counts[1], counts[2] = 3, 1, 0
	if got := summary(counts); got != "3 bans, 1 scan not acted upon" {
		t.Errorf("%q", got)
	}
}

func TestHeaderSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain subject":               "plain subject",
		"a\r\nBcc: x@y":               "a Bcc: x@y",
		"\r\n  lead and trail \t\n":   "lead and trail",
		"esc\x1b[31mred\x07":          "esc [31mred",
		"bidi\u202eevil":              "bidi evil",
		strings.Repeat("x", 300):      strings.Repeat("x", maxSubject),
		"bad utf8 \xff\xfe end":       "bad utf8 end",
		"nbsp\u00a0and\u2028line-sep": "nbsp and line-sep",
	} {
		if got := headerSafe(in); got != want {
			t.Errorf("headerSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzRender: whatever a finding's texts hold, the subject is one line of
// printable characters and the body holds no control character but
// newlines.
func FuzzRender(f *testing.F) {
	f.Add("Vertical SYN scan", "nmap", "cli: uid 0")
	f.Add("\x1b]0;t\x07\r\nBcc: a@b\r\n\r\nbody", "x\ry", "\u202e\x00")
	f.Add("\xff\xfe", "\u2028", "\t")
	a, err := New(Config{Host: "fuzz", SubjectTemplate: "{{range .Events}}{{.Reason}} {{.Tool}} {{.Decision}}{{end}}"}, quietLog())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, reason, tool, by string) {
		fd := finding("203.0.113.9")
		fd.Reason, fd.Tool = reason, tool
		d := banOf(fd)
		d.By = by
		g := &digest{}
		g.add(newEvent(KindBan, fd, d))
		subject, body := a.render(g)
		for _, r := range subject {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == unicode.ReplacementChar || (unicode.IsSpace(r) && r != ' ') {
				t.Fatalf("subject %q holds %U", subject, r)
			}
		}
		for _, r := range body {
			if r != '\n' && (unicode.IsControl(r) || unicode.Is(unicode.Cf, r)) {
				t.Fatalf("body holds %U", r)
			}
		}
	})
}
