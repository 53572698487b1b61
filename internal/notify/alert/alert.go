package alert

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/detect"
)

// Kind is what an event reports.
type Kind string

// Event kinds, as the `alerts.on` setting names them.
const (
	KindBan     Kind = "ban"     // a ban was made
	KindWatch   Kind = "watch"   // a ban the detector asked for was not carried out
	KindFinding Kind = "finding" // a scan or suspicious finding
)

// Defaults and bounds.
const (
	// MaxListed is how many events a message lists in full; the rest are
	// counted by kind. 50 blocks of ~8 lines is a mail one still reads to the
	// end, and a webhook body well under 100 KiB.
	MaxListed = 50
	// maxPending is how many sealed messages a channel keeps undelivered;
	// past it, events go into the one digest after them.
	maxPending = 100

	defaultDigest     = time.Minute
	defaultMaxPerHour = 20
	// Backoff as most mail and webhook senders do it: quick retries for a
	// receiver restarting, 5 minutes at most so a long outage costs little.
	defaultRetryMin = time.Second
	defaultRetryMax = 5 * time.Minute
	// SMTP servers answer within seconds; RFC 5321 4.5.3.2 allows minutes
	// per command, but an alert that waits that long is stale anyway.
	defaultMailTimeout = 30 * time.Second
	webhookTimeout     = 10 * time.Second
	// On stop, what is waiting gets one last try for this long.
	defaultFlushTimeout = 5 * time.Second
	maxSubject          = 200
)

// Config configures the alerter (the `alerts` section of the
// configuration, with the template files already read).
type Config struct {
	On         []string      // "ban", "watch", "finding"; empty: ban
	Digest     time.Duration // collect events this long after the first; 0: 1m
	MaxPerHour int           // messages per channel in any hour; 0: 20
	Email      EmailConfig
	Webhook    WebhookConfig
	// text/template sources; "" for the built-in ones (see the package doc
	// for the data they see).
	SubjectTemplate, BodyTemplate string
	Host                          string // this host's name; "": os.Hostname
	// Delivery retries: RetryMin, doubled after each failure up to
	// RetryMax, with jitter. 0: 1s and 5m.
	RetryMin, RetryMax time.Duration

	// For tests: the cap's window (an hour) and the time a stop gives
	// waiting messages.
	capWindow, flushTimeout time.Duration
}

// EmailConfig configures SMTP delivery.
type EmailConfig struct {
	Enabled bool
	To      []string
	From    string // "": scanwarden@<Host>
	Host    string
	Port    int // 0: 587 for starttls, 465 for tls, 25 for none
	// Security is "starttls" (the server must offer STARTTLS, or nothing is
	// sent), "tls" (implicit TLS) or "none" (plain: a relay on localhost).
	Security           string
	Username, Password string // auth (PLAIN or LOGIN, only over TLS) when Username is set
	// TLSConfig, when set, replaces the default TLS settings (system roots,
	// ServerName = Host); tests use it to trust their own certificate.
	TLSConfig *tls.Config
	Timeout   time.Duration // per connection; 0: 30s
}

// WebhookConfig configures JSON POST delivery.
type WebhookConfig struct {
	Enabled bool
	URL     string
	Headers map[string]string
}

// Alerter queues events and sends them in digests. Its methods are safe
// for concurrent use.
type Alerter struct {
	cfg      Config
	log      *slog.Logger
	on       map[Kind]bool
	subject  *template.Template
	body     *template.Template
	channels []*channel
	events   atomic.Uint64
	running  atomic.Bool
}

// New checks the configuration and parses the templates. It sends nothing;
// Run does.
func New(cfg Config, log *slog.Logger) (*Alerter, error) {
	if log == nil {
		log = slog.Default()
	}
	a := &Alerter{log: log, on: map[Kind]bool{}}
	if err := setDefaults(&cfg); err != nil {
		return nil, err
	}
	a.cfg = cfg
	for _, on := range cfg.On {
		switch k := Kind(on); k {
		case KindBan, KindWatch, KindFinding:
			a.on[k] = true
		default:
			return nil, fmt.Errorf("alerts.on: %q is not ban, watch or finding", on)
		}
	}
	var err error
	if a.subject, err = parseTemplate("subject", cfg.SubjectTemplate, DefaultSubjectTemplate); err != nil {
		return nil, err
	}
	if a.body, err = parseTemplate("body", cfg.BodyTemplate, DefaultBodyTemplate); err != nil {
		return nil, err
	}
	if cfg.Email.Enabled {
		m, err := newMailer(cfg.Email, cfg.Host)
		if err != nil {
			return nil, err
		}
		a.channels = append(a.channels, newChannel(a, m))
	}
	if cfg.Webhook.Enabled {
		w, err := newWebhook(cfg.Webhook)
		if err != nil {
			return nil, err
		}
		a.channels = append(a.channels, newChannel(a, w))
	}
	return a, nil
}

func setDefaults(cfg *Config) error {
	if len(cfg.On) == 0 {
		cfg.On = []string{string(KindBan)}
	}
	if cfg.Digest == 0 {
		cfg.Digest = defaultDigest
	}
	if cfg.MaxPerHour == 0 {
		cfg.MaxPerHour = defaultMaxPerHour
	}
	if cfg.Digest < 0 || cfg.MaxPerHour < 0 || cfg.RetryMin < 0 || cfg.RetryMax < 0 {
		return errors.New("alerts: digest, max_per_hour and the retry times must not be negative")
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = defaultRetryMin
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = max(defaultRetryMax, cfg.RetryMin)
	}
	if cfg.RetryMax < cfg.RetryMin {
		return fmt.Errorf("alerts: the longest retry wait (%v) is shorter than the first (%v)", cfg.RetryMax, cfg.RetryMin)
	}
	if cfg.capWindow == 0 {
		cfg.capWindow = time.Hour
	}
	if cfg.flushTimeout == 0 {
		cfg.flushTimeout = defaultFlushTimeout
	}
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		cfg.Host = h
	}
	return nil
}

func newMailer(e EmailConfig, host string) (*mailer, error) {
	if len(e.To) == 0 {
		return nil, errors.New("alerts.email.to: no recipients: name at least one address to send alerts to")
	}
	for _, to := range e.To {
		if err := checkAddress(to); err != nil {
			return nil, fmt.Errorf("alerts.email.to: %w", err)
		}
	}
	if e.From == "" {
		e.From = "scanwarden@" + host
		if checkAddress(e.From) != nil {
			return nil, fmt.Errorf("alerts.email.from: the host name %q does not make a mail address; set from", host)
		}
	} else if err := checkAddress(e.From); err != nil {
		return nil, fmt.Errorf("alerts.email.from: %w", err)
	}
	if e.Host == "" {
		return nil, errors.New("alerts.email.host: no SMTP server named")
	}
	switch e.Security {
	case "starttls", "tls", "none":
	case "":
		e.Security = "starttls"
	default:
		return nil, fmt.Errorf("alerts.email.security: %q is not starttls, tls or none", e.Security)
	}
	if e.Port == 0 {
		e.Port = map[string]int{"starttls": 587, "tls": 465, "none": 25}[e.Security]
	}
	if e.Port < 1 || e.Port > 65535 {
		return nil, fmt.Errorf("alerts.email.port: %d is not a port", e.Port)
	}
	if e.Timeout <= 0 {
		e.Timeout = defaultMailTimeout
	}
	return &mailer{cfg: e}, nil
}

// checkAddress accepts one bare or named address ("a@b", "Ops <a@b>"),
// without line breaks.
func checkAddress(s string) error {
	if strings.ContainsAny(s, "\r\n") {
		return fmt.Errorf("%q holds a line break", s)
	}
	if _, err := mail.ParseAddress(s); err != nil {
		return fmt.Errorf("%q is not a mail address: %v", s, err)
	}
	return nil
}

func newWebhook(w WebhookConfig) (*webhook, error) {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("alerts.webhook.url: %q is not an http(s) URL", w.URL)
	}
	h := http.Header{}
	for k, v := range w.Headers {
		if !validHeaderName(k) {
			return nil, fmt.Errorf("alerts.webhook.headers: %q is not a header name", k)
		}
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("alerts.webhook.headers: the value of %s holds a line break or NUL", k)
		}
		h.Set(k, v)
	}
	client := &http.Client{
		Timeout: webhookTimeout,
		// A redirect is a failure, not something to follow: the headers
		// (often a bearer token) go only where the configuration says.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &webhook{url: u.String(), header: h, client: client}, nil
}

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r > '~' || r <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, r) {
			return false
		}
	}
	return true
}

// Finding reports a scan or suspicious finding (when alerts.on has
// finding). It never blocks.
func (a *Alerter) Finding(f *detect.Finding) {
	if f == nil || f.Verdict == detect.Benign || !a.on[KindFinding] {
		return
	}
	a.add(newEvent(KindFinding, f, nil))
}

// Ban reports a ban in force (when alerts.on has ban); f is nil for a ban
// made by hand. It never blocks.
func (a *Alerter) Ban(d *decision.Decision, f *detect.Finding) {
	if d == nil {
		return
	}
	if d.Kind == decision.Watch {
		a.Watch(d, f)
		return
	}
	if d.Kind != decision.Ban || !a.on[KindBan] {
		return
	}
	a.add(newEvent(KindBan, f, d))
}

// Watch reports a ban the detector asked for that was not carried out
// (when alerts.on has watch). It never blocks.
func (a *Alerter) Watch(d *decision.Decision, f *detect.Finding) {
	if d == nil || !a.on[KindWatch] {
		return
	}
	a.add(newEvent(KindWatch, f, d))
}

func (a *Alerter) add(ev *event) {
	a.events.Add(1)
	for _, c := range a.channels {
		c.add(ev)
	}
}

// Run sends digests until ctx ends, then gives what is waiting one last
// try (a few seconds) and returns. With no channel enabled it only waits
// for ctx. Call it once.
func (a *Alerter) Run(ctx context.Context) error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("alert: Run called twice")
	}
	if len(a.channels) == 0 {
		<-ctx.Done()
		return nil
	}
	var wg sync.WaitGroup
	for _, c := range a.channels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.run(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// Stats is what the alerter counted.
type Stats struct {
	Events  uint64 // events accepted (after the alerts.on filter)
	Email   ChannelStats
	Webhook ChannelStats
}

// ChannelStats is one channel's delivery record.
type ChannelStats struct {
	Enabled   bool
	Sent      uint64    // messages delivered
	Failed    uint64    // delivery attempts that failed
	Pending   int       // messages sealed and not yet delivered
	Waiting   int       // events collected for the next message
	Unlisted  uint64    // events delivered by count only (past the first MaxListed of a message)
	Dropped   uint64    // events never delivered (still waiting when Run stopped)
	LastError string    // the last delivery failure, "" after a success
	LastSent  time.Time // the last delivery
}

// Stats returns the counters.
func (a *Alerter) Stats() Stats {
	s := Stats{Events: a.events.Load()}
	for _, c := range a.channels {
		switch c.s.name() {
		case "email":
			s.Email = c.stats()
		case "webhook":
			s.Webhook = c.stats()
		}
	}
	return s
}
