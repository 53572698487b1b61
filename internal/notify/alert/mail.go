package alert

import (
	"context"
	"crypto/tls"
	"fmt"
	"time"

	mail "github.com/wneessen/go-mail"
)

// mailer sends a message as one plain-text mail to every recipient.
type mailer struct {
	cfg EmailConfig // defaults filled in
}

func (m *mailer) name() string { return "email" }

func (m *mailer) send(ctx context.Context, a *Alerter, s *sealed) error {
	subject, body := a.render(s.digest)
	msg := mail.NewMsg()
	if err := msg.From(m.cfg.From); err != nil {
		return fmt.Errorf("from address: %w", err)
	}
	if err := msg.To(m.cfg.To...); err != nil {
		return fmt.Errorf("to address: %w", err)
	}
	msg.Subject(subject)
	msg.SetDate()
	msg.SetMessageIDWithValue(s.id + "@scanwarden")
	msg.SetUserAgent("scanwarden")
	// RFC 3834: machine-made, so no vacation replies to it.
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBodyString(mail.TypeTextPlain, body)
	c, err := mail.NewClient(m.cfg.Host, m.options(ctx)...)
	if err != nil {
		return fmt.Errorf("mail client: %w", err)
	}
	if err := c.DialAndSendWithContext(ctx, msg); err != nil {
		return fmt.Errorf("mail to %s:%d: %w", m.cfg.Host, m.cfg.Port, err)
	}
	return nil
}

// options maps the settings to go-mail's. With starttls, go-mail's
// TLSMandatory refuses to go on (before MAIL FROM) when the server does
// not offer STARTTLS or the handshake fails: nothing is sent in clear.
func (m *mailer) options(ctx context.Context) []mail.Option {
	timeout := m.cfg.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(min(timeout, time.Until(dl)), time.Millisecond)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if m.cfg.TLSConfig != nil {
		tc = m.cfg.TLSConfig.Clone()
	}
	if tc.ServerName == "" {
		tc.ServerName = m.cfg.Host
	}
	opts := []mail.Option{mail.WithPort(m.cfg.Port), mail.WithTimeout(timeout), mail.WithTLSConfig(tc)}
	switch m.cfg.Security {
	case "tls":
		opts = append(opts, mail.WithSSL())
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if m.cfg.Username != "" {
		// PLAIN or LOGIN, whichever the server offers; go-mail sends
		// either only over TLS (or to localhost).
		opts = append(opts, mail.WithUsername(m.cfg.Username), mail.WithPassword(m.cfg.Password),
			mail.WithOpportunisticSMTPAuth(mail.SMTPAuthPlain, mail.SMTPAuthLogin))
	}
	return opts
}
