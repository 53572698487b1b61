package alert

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// smtpServer is a real SMTP server (go-smtp) on loopback that keeps what
// it receives.
type smtpServer struct {
	port int
	pool *x509.CertPool // trusts the server's self-signed certificate

	mu       sync.Mutex
	mails    []received
	commands []string // AUTH, MAIL, RCPT, DATA as the server saw them, with "+tls" when encrypted
}

type received struct {
	at   time.Time
	tls  bool
	user string
	from string
	to   []string
	data []byte
}

type smtpMode int

const (
	plainOnly   smtpMode = iota // no STARTTLS offered
	starttls                    // STARTTLS offered; AUTH only after it
	implicitTLS                 // TLS from the first byte
)

// selfSigned makes a certificate for 127.0.0.1 and localhost.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "scanwarden test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func startSMTP(t *testing.T, mode smtpMode) *smtpServer {
	t.Helper()
	cert, pool := selfSigned(t)
	s := &smtpServer{pool: pool}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.AllowInsecureAuth = false
	tc := &tls.Config{Certificates: []tls.Certificate{cert}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	switch mode {
	case starttls:
		srv.TLSConfig = tc
	case implicitTLS:
		ln = tls.NewListener(ln, tc)
	}
	s.port = ln.Addr().(*net.TCPAddr).Port
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *smtpServer) got() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.mails...)
}

func (s *smtpServer) seen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// session is one SMTP connection; it demands AUTH (user alerts, password
// s3cret) when the server runs TLS.
type session struct {
	srv  *smtpServer
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (s *session) isTLS() bool { _, ok := s.conn.TLSConnectionState(); return ok }

func (s *session) note(cmd string) {
	if s.isTLS() {
		cmd += "+tls"
	}
	s.srv.mu.Lock()
	s.srv.commands = append(s.srv.commands, cmd)
	s.srv.mu.Unlock()
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	s.note("AUTH")
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "alerts" || pass != "s3cret" {
			return errors.New("bad credentials")
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.note("MAIL")
	if s.isTLS() && s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.note("RCPT")
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	s.note("DATA")
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, received{at: time.Now(), tls: s.isTLS(), user: s.user, from: s.from, to: s.to, data: b})
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// parse reads a received mail: its header and its decoded body.
func parse(t *testing.T, r received) (mail.Header, string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(r.data))
	if err != nil {
		t.Fatalf("reading the mail: %v\n%s", err, r.data)
	}
	var body io.Reader = m.Body
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		t.Fatal(err)
	}
	return m.Header, strings.ReplaceAll(string(b), "\r\n", "\n")
}

func subjectOf(t *testing.T, r received) string {
	t.Helper()
	h, _ := parse(t, r)
	s, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mailConfig(s *smtpServer) Config {
	return Config{
		On: []string{"ban", "watch", "finding"}, Digest: 150 * time.Millisecond, MaxPerHour: 100, Host: "testhost",
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, flushTimeout: time.Second,
		Email: EmailConfig{Enabled: true, To: []string{"ops@example.net"}, Host: "127.0.0.1", Port: s.port,
			Security: "starttls", Username: "alerts", Password: "s3cret", TLSConfig: &tls.Config{RootCAs: s.pool},
			Timeout: 5 * time.Second},
	}
}

func TestMailBan(t *testing.T) {
	s := startSMTP(t, starttls)
	cfg := mailConfig(s)
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	f := finding("203.0.113.9")
	start := time.Now()
	a.Ban(banOf(f), f)
	waitFor(t, "the mail", 5*time.Second, func() bool { return len(s.got()) == 1 })
	if waited := time.Since(start); waited < cfg.Digest {
		t.Errorf("the mail left after %v, before the digest time %v", waited, cfg.Digest)
	}
	m := s.got()[0]
	if !m.tls || m.user != "alerts" || m.from != "scanwarden@testhost" || len(m.to) != 1 || m.to[0] != "ops@example.net" {
		t.Errorf("tls=%v user=%q from=%q to=%q", m.tls, m.user, m.from, m.to)
	}
	for _, c := range s.seen() {
		if !strings.HasSuffix(c, "+tls") {
			t.Errorf("%s in clear", c)
		}
	}
	h, body := parse(t, m)
	if got := subjectOf(t, m); got != "scanwarden on testhost: 1 ban" {
		t.Errorf("subject %q", got)
	}
	if h.Get("Auto-Submitted") != "auto-generated" || h.Get("Message-Id") == "" {
		t.Errorf("header %v", h)
	}
	for _, want := range []string{
		"[ban] 203.0.113.9",
		"Decision: banned for 1h (offence 1)",
		"Reason:   " + f.Reason,
		"Evidence: scan, syn scan, vertical; 1000 ports on 1 host, 1000 attempts, 2020 packets; tool nmap",
		"Seen:     2026-05-01 10:00:00 UTC to 2026-05-01 10:00:04 UTC",
		"Undo:     scanwarden unban 203.0.113.9",
		"Details:  scanwarden explain 203.0.113.9",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the body lacks %q:\n%s", want, body)
		}
	}
	time.Sleep(3 * cfg.Digest)
	if n := len(s.got()); n != 1 {
		t.Errorf("%d mails for one ban", n)
	}
	if st := a.Stats(); st.Email.Sent != 1 || st.Email.Failed != 0 || st.Email.Pending != 0 || st.Events != 1 || st.Webhook.Enabled {
		t.Errorf("stats %+v", st)
	}
}

func TestMailWatch(t *testing.T) {
	s := startSMTP(t, starttls)
	a, err := New(mailConfig(s), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	gw, dry := finding("192.0.2.254"), finding("198.51.100.7")
	a.Watch(watchOf(gw, "guard: default gateway"), gw)
	dw := banOf(dry)
	dw.Kind, dw.NotActed, dw.DryRun = "watch", "dry-run", true
	a.Watch(dw, dry)
	waitFor(t, "the mail", 5*time.Second, func() bool { return len(s.got()) == 1 })
	_, body := parse(t, s.got()[0])
	if got := subjectOf(t, s.got()[0]); got != "scanwarden on testhost: 2 scans not acted upon" {
		t.Errorf("subject %q", got)
	}
	for _, want := range []string{
		"[watch] 192.0.2.254\n  Decision: not acted upon: guard: default gateway\n",
		"To ban:   nothing: guarded addresses are never banned, not even by hand",
		"Decision: not acted upon: dry-run; a real run would ban it for 1h",
		"To ban:   turn policy.dry_run off",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the body lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "Undo:") {
		t.Errorf("a watch decision has nothing to undo:\n%s", body)
	}
}

var countRE = regexp.MustCompile(`(\d+) findings?`)

// TestMailStorm: a storm of 1000 findings in one digest window is one
// mail; then the cap holds further digests back, and every event is
// counted in some mail.
func TestMailStorm(t *testing.T) {
	s := startSMTP(t, starttls)
	cfg := mailConfig(s)
	cfg.Digest, cfg.MaxPerHour, cfg.capWindow = 200*time.Millisecond, 2, 2*time.Second
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	sent := 0
	burst := func(n int) {
		for i := range n {
			a.Finding(finding(fmt.Sprintf("10.%d.%d.%d", sent>>16&255, sent>>8&255, i&255)))
			sent++
		}
	}
	burst(1000)
	waitFor(t, "the storm's mail", 5*time.Second, func() bool { return len(s.got()) == 1 })
	time.Sleep(2 * cfg.Digest)
	if n := len(s.got()); n != 1 {
		t.Fatalf("%d mails for one storm", n)
	}
	_, body := parse(t, s.got()[0])
	if got := subjectOf(t, s.got()[0]); got != "scanwarden on testhost: 1000 findings" {
		t.Errorf("subject %q", got)
	}
	if n := strings.Count(body, "\n[finding] "); n != MaxListed {
		t.Errorf("%d events listed, want %d", n, MaxListed)
	}
	if !strings.Contains(body, "... and 950 more events not listed (1000 in all: 1000 findings).") {
		t.Errorf("the body does not count the rest:\n%s", body[len(body)-300:])
	}

	// One slot left in the window: the next digest goes; the two after it
	// wait until the storm's mail is a window old, and go as one.
	burst(10)
	waitFor(t, "the second mail", 5*time.Second, func() bool { return len(s.got()) == 2 })
	burst(10)
	time.Sleep(300 * time.Millisecond)
	burst(5)
	waitFor(t, "the third mail", 5*time.Second, func() bool { return len(s.got()) == 3 })
	time.Sleep(2 * cfg.Digest)
	mails := s.got()
	if len(mails) != 3 {
		t.Fatalf("%d mails, want 3", len(mails))
	}
	if gap := mails[2].at.Sub(mails[0].at); gap < cfg.capWindow {
		t.Errorf("3 mails within %v: the cap is %d per %v", gap, cfg.MaxPerHour, cfg.capWindow)
	}
	total := 0
	for _, m := range mails {
		c := countRE.FindStringSubmatch(subjectOf(t, m))
		if c == nil {
			t.Fatalf("subject %q", subjectOf(t, m))
		}
		n, _ := strconv.Atoi(c[1])
		total += n
	}
	if total != sent {
		t.Errorf("the mails count %d events, %d were reported", total, sent)
	}
	st := a.Stats()
	if st.Email.Sent != 3 || st.Email.Unlisted != 950 || st.Events != uint64(sent) || st.Email.Dropped != 0 {
		t.Errorf("stats %+v", st)
	}
}

// TestMailNeedsSTARTTLS: with security starttls, a server that offers no
// STARTTLS gets no mail at all, and the error says why.
func TestMailNeedsSTARTTLS(t *testing.T) {
	s := startSMTP(t, plainOnly)
	a, err := New(mailConfig(s), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, a)
	f := finding("203.0.113.9")
	a.Ban(banOf(f), f)
	waitFor(t, "a failed attempt", 5*time.Second, func() bool { return a.Stats().Email.Failed >= 2 })
	st := a.Stats()
	if !strings.Contains(st.Email.LastError, "STARTTLS") || st.Email.Sent != 0 || st.Email.Pending != 1 {
		t.Errorf("stats %+v", st)
	}
	stop()
	if len(s.got()) != 0 || len(s.seen()) != 0 {
		t.Errorf("the server saw %v", s.seen())
	}
	if st := a.Stats(); st.Email.Dropped != 1 {
		t.Errorf("the undelivered ban is not counted as dropped at stop: %+v", st)
	}
}

func TestMailImplicitTLS(t *testing.T) {
	s := startSMTP(t, implicitTLS)
	cfg := mailConfig(s)
	cfg.Email.Security = "tls"
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	f := finding("203.0.113.9")
	a.Ban(banOf(f), f)
	waitFor(t, "the mail", 5*time.Second, func() bool { return len(s.got()) == 1 })
	if m := s.got()[0]; !m.tls || m.user != "alerts" {
		t.Errorf("tls=%v user=%q", m.tls, m.user)
	}
}

// TestMailWrongCertificate: a server whose certificate is not trusted
// gets nothing.
func TestMailWrongCertificate(t *testing.T) {
	s := startSMTP(t, starttls)
	cfg := mailConfig(s)
	_, other := selfSigned(t)
	cfg.Email.TLSConfig = &tls.Config{RootCAs: other}
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	f := finding("203.0.113.9")
	a.Ban(banOf(f), f)
	waitFor(t, "a failed attempt", 5*time.Second, func() bool { return a.Stats().Email.Failed >= 1 })
	if !strings.Contains(a.Stats().Email.LastError, "certificate") {
		t.Errorf("error %q", a.Stats().Email.LastError)
	}
	for _, c := range s.seen() {
		if c != "AUTH" { // never reached: the handshake failed first
			t.Errorf("the server saw %s", c)
		}
	}
	if len(s.got()) != 0 {
		t.Error("a mail went to a server with an untrusted certificate")
	}
}

func TestMailTemplateOverride(t *testing.T) {
	s := startSMTP(t, starttls)
	cfg := mailConfig(s)
	cfg.SubjectTemplate = `[{{.Host}}] {{.Total}} alert{{if ne .Total 1}}s{{end}}:{{range .Events}} {{.Src}}{{end}}`
	cfg.BodyTemplate = "{{range .Events}}{{upper .Kind}} {{.Src}} -> {{.Undo}}\n{{end}}"
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	f := finding("203.0.113.9")
	a.Ban(banOf(f), f)
	waitFor(t, "the mail", 5*time.Second, func() bool { return len(s.got()) == 1 })
	if got := subjectOf(t, s.got()[0]); got != "[testhost] 1 alert: 203.0.113.9" {
		t.Errorf("subject %q", got)
	}
	if _, body := parse(t, s.got()[0]); body != "BAN 203.0.113.9 -> scanwarden unban 203.0.113.9\n" {
		t.Errorf("body %q", body)
	}
}

// TestMailHostileText: text from the network (a reason, a tool name, a
// log prefix) cannot add headers or recipients, or send terminal escapes
// to whoever reads the mail.
func TestMailHostileText(t *testing.T) {
	s := startSMTP(t, starttls)
	cfg := mailConfig(s)
	// A template that puts raw CR LF into the subject, and the hostile
	// fields after it.
	cfg.SubjectTemplate = "Alert{{printf \"\\r\\nBcc: evil@example.org\\r\\n\"}} {{range .Events}}{{.Reason}} {{.Tool}}{{end}}"
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	f := finding("203.0.113.9")
	f.Reason = "\x1b]0;owned\x07\x1b[2JSYN scan\r\nBcc: victim@example.org\r\n\r\nforged body\u202e"
	f.Tool = "nmap\r\nX-Injected: yes"
	d := banOf(f)
	d.By = "cli: \x1b[31mroot\n"
	a.Ban(d, f)
	waitFor(t, "the mail", 5*time.Second, func() bool { return len(s.got()) == 1 })
	m := s.got()[0]
	if len(m.to) != 1 || m.to[0] != "ops@example.net" {
		t.Errorf("recipients %q", m.to)
	}
	head, _, _ := bytes.Cut(m.data, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(head), "\r\n") {
		name, _, _ := strings.Cut(line, ":")
		switch strings.ToLower(name) {
		case "bcc", "x-injected":
			t.Errorf("injected header %q", line)
		}
	}
	h, body := parse(t, m)
	subj := subjectOf(t, m)
	if strings.ContainsAny(subj, "\r\n\x1b\x07\u202e") || h.Get("Bcc") != "" || h.Get("X-Injected") != "" {
		t.Errorf("subject %q, header %v", subj, h)
	}
	if strings.ContainsAny(body, "\x1b\x07\r\u202e") || strings.Contains(body, "\nBcc:") || strings.Contains(body, "\nforged body") {
		t.Errorf("raw hostile text in the body:\n%q", body)
	}
	if !strings.Contains(body, `\x1b[2JSYN scan\r\nBcc: victim@example.org`) || !strings.Contains(body, `by cli: \x1b[31mroot\n`) {
		t.Errorf("the hostile text is not shown escaped:\n%s", body)
	}
}

func TestMailDefaultFrom(t *testing.T) {
	_, err := New(Config{Host: "bad host\r\nBcc: x@y", Email: EmailConfig{Enabled: true, To: []string{"ops@example.net"}, Host: "127.0.0.1"}}, quietLog())
	if err == nil || !strings.Contains(err.Error(), "alerts.email.from") {
		t.Errorf("a host name that makes no address: %v", err)
	}
}
