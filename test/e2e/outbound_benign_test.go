package e2e

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	be "encoding/binary"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/report"
)

// helperEnv names the role a re-executed test binary plays inside a lab
// namespace (a TLS server, a resolver's client, a load generator...). The
// workloads are Go's own client and server stacks, so they need nothing
// beyond the toolchain, and each role is bounded in time by its arguments.
const helperEnv = "SWD_E2E_HELPER"

// init turns the test binary into a helper when helperEnv is set: it runs
// the role and exits before any test starts.
func init() {
	role := os.Getenv(helperEnv)
	if role == "" {
		return
	}
	f := benignRoles[role]
	if f == nil {
		f = benchRoles[role]
	}
	if f == nil {
		fmt.Fprintf(os.Stderr, "unknown helper role %q\n", role)
		os.Exit(2)
	}
	if err := f(os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", role, err)
		os.Exit(1)
	}
	os.Exit(0)
}

// benignRoles are the servers and clients of TestOutboundBenignIsNotFlagged.
var benignRoles = map[string]func(args []string) error{
	"tls-server":  tlsServer,
	"tls-burst":   tlsBurst,
	"dns-server":  dnsServer,
	"dns-lookups": dnsLookups,
	"smtp-server": smtpServer,
	"smtp-burst":  smtpBurst,
}

// helperCmd is the command line that runs this test binary as role in ns.
func helperCmd(ns, role string, args ...string) (string, []string) {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	return "env", append([]string{helperEnv + "=" + role, exe}, args...)
}

// helper runs role in ns in the background (killed on cleanup).
func (l *lab) helper(ns, role string, args ...string) *exec.Cmd {
	l.t.Helper()
	name, argv := helperCmd(ns, role, args...)
	return l.bg(ns, name, argv...)
}

// runHelper runs role in ns to completion within timeout and fails the test
// if it fails.
func (l *lab) runHelper(ns string, timeout time.Duration, role string, args ...string) string {
	l.t.Helper()
	name, argv := helperCmd(ns, role, args...)
	out, err := l.in(ns, timeout, name, argv...)
	if err != nil {
		l.t.Fatalf("%s in %s: %v\n%s", role, ns, err, out)
	}
	return out
}

// addAddrs adds addresses to a namespace's eth0 in one ip -batch.
func (l *lab) addAddrs(ns string, addrs []string) {
	l.t.Helper()
	var b strings.Builder
	for _, a := range addrs {
		if strings.Contains(a, ":") {
			fmt.Fprintf(&b, "addr add %s/64 dev eth0 nodad\n", a)
		} else {
			fmt.Fprintf(&b, "addr add %s/24 dev eth0\n", a)
		}
	}
	file := filepath.Join(l.t.TempDir(), "addrs.batch")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		l.t.Fatal(err)
	}
	run(l.t, "ip", "-n", ns, "-batch", file)
}

// waitUDP waits until something listens on UDP port in ns.
func (l *lab) waitUDP(ns, port string, want int) {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := l.in(ns, 2*time.Second, "ss", "-Hlun", "sport", "= :"+port)
		if strings.Count(strings.TrimSpace(out), "\n")+1 >= want && strings.TrimSpace(out) != "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.t.Fatalf("fewer than %d UDP sockets on %s in %s", want, port, ns)
}

// findingsFrom returns the outbound findings with source in srcs.
func (l *lab) findingsFrom(srcs ...string) []report.JSONFinding {
	l.t.Helper()
	out, err := l.cli("findings", "--json", "--since", "10m")
	if err != nil {
		l.t.Fatalf("findings: %v\n%s", err, out)
	}
	var fs []report.JSONFinding
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var f report.JSONFinding
		if json.Unmarshal(sc.Bytes(), &f) != nil {
			continue
		}
		for _, s := range srcs {
			if f.Src == s && f.Direction == "outbound" {
				fs = append(fs, f)
			}
		}
	}
	return fs
}

// TestOutboundBenignIsNotFlagged: a host that talks to many servers the way
// busy hosts do — a package manager fetching from mirrors over HTTPS, a
// resolver's client looking up hundreds of names, a mail relay delivering to
// many MXs — is not an outbound scanner: every first contact succeeds. The
// same daemon then does report a connect scan from the same host (the
// positive control, so the test can fail).
func TestOutboundBenignIsNotFlagged(t *testing.T) {
	l := newLab(t, "")
	certDir := t.TempDir()

	// Servers in the scan namespace, which here plays the Internet.
	var web, mx []string
	for i := 100; i < 160; i++ {
		web = append(web, fmt.Sprintf("10.88.%d.%d", l.n, i))
	}
	for i := 0x100; i < 0x114; i++ {
		web = append(web, fmt.Sprintf("fd00:88:%d::%x", l.n, i))
	}
	for i := 160; i < 200; i++ {
		mx = append(mx, fmt.Sprintf("10.88.%d.%d", l.n, i))
	}
	resolvers := []string{fmt.Sprintf("10.88.%d.53", l.n), fmt.Sprintf("10.88.%d.54", l.n), fmt.Sprintf("fd00:88:%d::53", l.n)}
	l.addAddrs(l.scan, append(append(append([]string{}, web...), mx...), resolvers...))
	l.helper(l.scan, "tls-server", "-listen", "[::]:443", "-certdir", certDir)
	l.helper(l.scan, "smtp-server", "-listen", "[::]:25")
	l.helper(l.scan, "dns-server", resolvers...)
	l.waitPort(l.scan, "443")
	l.waitPort(l.scan, "25")
	l.waitUDP(l.scan, "53", len(resolvers))
	waitFile(t, filepath.Join(certDir, "ca.pem"), 10*time.Second)

	l.startDaemon()
	start := time.Now()

	// a) A package manager refreshing its index: apt, dnf or pip fetch one
	// file from each of dozens of mirrors and CDN nodes on 443, several at
	// a time, each with a full TLS handshake and a small request.
	out := l.runHelper(l.target, 30*time.Second, "tls-burst", "-ca", filepath.Join(certDir, "ca.pem"), "-parallel", "8", strings.Join(web, ","))
	t.Logf("https: %s", strings.TrimSpace(out))

	// b) A resolver's client: a host's stub asks two or three configured
	// resolvers (IPv4 and IPv6) A and AAAA for hundreds of distinct names
	// (a mail server checking senders, a crawler, a CI job), some of which
	// do not exist; each query comes from a fresh source port, as glibc's
	// and Go's stubs do.
	out = l.runHelper(l.target, 30*time.Second, "dns-lookups", "-names", "300", "-nx-every", "5", "-parallel", "8", strings.Join(resolvers, ","))
	t.Logf("dns: %s", strings.TrimSpace(out))

	// c) A mail relay flushing its queue: one full SMTP transaction (EHLO,
	// MAIL, RCPT, DATA, QUIT) to each of 40 recipients' MX hosts on 25.
	out = l.runHelper(l.target, 30*time.Second, "smtp-burst", "-parallel", "4", strings.Join(mx, ","))
	t.Logf("smtp: %s", strings.TrimSpace(out))

	// Every attempt was answered; wait past answer_timeout (3 s) so any
	// attempt the daemon missed an answer to would have counted as failed.
	t.Logf("workloads took %v", time.Since(start).Round(time.Millisecond))
	time.Sleep(5 * time.Second)
	if st, err := l.cli("status"); err == nil {
		t.Logf("status after the workloads:\n%s", tail(st, 20))
	}
	ex, _ := l.cli("explain", l.targetIP())
	t.Logf("explain %s:\n%s", l.targetIP(), ex)
	for _, f := range l.findingsFrom(l.targetIP(), l.addr6(2)) {
		if f.Verdict == "scan" || f.Verdict == "suspicious" {
			t.Errorf("benign outbound traffic flagged: %s %s, %d hosts, %d ports, %d attempts (%d failed, %d open): %s",
				f.Src, f.Verdict, f.Hosts, f.Ports, f.Attempts, f.Failed, f.Open, f.Reason)
		}
	}
	if t.Failed() {
		return
	}

	// The positive control: a connect scan of 200 filtered ports from the
	// same host, after all that benign history, is an outbound scan.
	l.filterSYNs()
	l.bg(l.target, "python3", "-c", connectScan, l.scanIP())
	f := l.outboundFinding(l.targetIP(), 30*time.Second)
	t.Logf("control: %s %s after %d attempts: %s", f.Src, f.Verdict, f.DetectedAtAttempt, f.Reason)
}

func waitFile(t *testing.T, path string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s did not appear within %v", path, within)
}

// parallel runs f on each item, n at a time, and returns how many failed
// and the first error.
func parallel(items []string, n int, f func(string) error) (failed int, first error) {
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, n)
	for _, it := range items {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(it); err != nil {
				mu.Lock()
				failed++
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return failed, first
}

// hostPort joins an address and a port, bracketing IPv6.
func hostPort(addr, port string) string { return net.JoinHostPort(addr, port) }

// mirrorName is the name the TLS server's certificate is for.
const mirrorName = "mirror.swd.test"

// tlsServer serves HTTPS with a fresh self-signed certificate, whose PEM it
// writes to -certdir/ca.pem for clients to trust.
func tlsServer(args []string) error {
	fs := flag.NewFlagSet("tls-server", flag.ContinueOnError)
	listen := fs.String("listen", "[::]:443", "address")
	dir := fs.String("certdir", "", "where ca.pem goes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: mirrorName},
		DNSNames:              []string{mirrorName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	ln, err := tls.Listen("tcp", *listen, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		return err
	}
	tmp := filepath.Join(*dir, "ca.pem.tmp")
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(*dir, "ca.pem")); err != nil {
		return err
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "Origin: swd\nSuite: stable\n")
		}),
		ReadHeaderTimeout: 5 * time.Second,
	}
	return srv.Serve(ln)
}

// tlsBurst fetches /dists/stable/InRelease from every host in the
// comma-separated list, over a verified TLS connection each.
func tlsBurst(args []string) error {
	fs := flag.NewFlagSet("tls-burst", flag.ContinueOnError)
	ca := fs.String("ca", "", "PEM file of the server's certificate")
	n := fs.Int("parallel", 8, "connections at a time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	pemBytes, err := os.ReadFile(*ca)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemBytes) {
		return errors.New("no certificate in " + *ca)
	}
	hosts := strings.Split(fs.Arg(0), ",")
	t0 := time.Now()
	failed, first := parallel(hosts, *n, func(h string) error {
		// One client per mirror, as a package manager has one connection per
		// mirror; no keep-alive across mirrors is possible anyway.
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: mirrorName},
			DisableKeepAlives: true,
		}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr, Timeout: 5 * time.Second}
		resp, err := c.Get("https://" + hostPort(h, "443") + "/dists/stable/InRelease")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		if resp.StatusCode != 200 || !strings.Contains(string(body), "Suite") || resp.TLS == nil || !resp.TLS.HandshakeComplete {
			return fmt.Errorf("%s: status %d, tls %v", h, resp.StatusCode, resp.TLS != nil)
		}
		return nil
	})
	fmt.Printf("%d HTTPS fetches from %d hosts in %v, %d failed\n", len(hosts), len(hosts), time.Since(t0).Round(time.Millisecond), failed)
	if failed > 0 {
		return first
	}
	return nil
}

// DNS wire format (RFC 1035 section 4), the part a stub's queries use.
const (
	dnsTypeA    = 1
	dnsTypeAAAA = 28
	rcodeNX     = 3
)

// dnsServer answers queries on each address given (bound one by one, so a
// reply leaves from the address the query went to): names starting with
// "nx-" do not exist, A and AAAA of others get a documentation address.
func dnsServer(addrs []string) error {
	errc := make(chan error, len(addrs))
	for _, a := range addrs {
		pc, err := net.ListenPacket("udp", hostPort(a, "53"))
		if err != nil {
			return err
		}
		go func() {
			buf := make([]byte, 1500)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					errc <- err
					return
				}
				if resp := dnsAnswer(buf[:n]); resp != nil {
					pc.WriteTo(resp, from)
				}
			}
		}()
	}
	return <-errc
}

// dnsAnswer builds the response to one query, or nil for garbage.
func dnsAnswer(q []byte) []byte {
	if len(q) < 12 || be.BigEndian.Uint16(q[4:6]) != 1 {
		return nil
	}
	i := 12
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if l > 63 || i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) || len(labels) == 0 {
		return nil
	}
	qend := i + 5 // root label, type, class
	qtype := be.BigEndian.Uint16(q[i+1 : i+3])
	resp := append([]byte{}, q[:qend]...)
	flags := uint16(0x8180) // QR, RD, RA
	var rdata []byte
	switch {
	case strings.HasPrefix(strings.ToLower(labels[0]), "nx-"):
		flags |= rcodeNX
	case qtype == dnsTypeA:
		rdata = []byte{192, 0, 2, byte(len(labels[0]))}
	case qtype == dnsTypeAAAA:
		a := netip.MustParseAddr("2001:db8::1").As16()
		rdata = a[:]
	}
	be.BigEndian.PutUint16(resp[2:4], flags)
	be.BigEndian.PutUint16(resp[6:8], 0)   // answers
	be.BigEndian.PutUint16(resp[8:10], 0)  // authority
	be.BigEndian.PutUint16(resp[10:12], 0) // additional
	if rdata != nil {
		be.BigEndian.PutUint16(resp[6:8], 1)
		resp = append(resp, 0xc0, 0x0c) // the question's name
		resp = be.BigEndian.AppendUint16(resp, qtype)
		resp = be.BigEndian.AppendUint16(resp, 1) // IN
		resp = be.BigEndian.AppendUint32(resp, 300)
		resp = be.BigEndian.AppendUint16(resp, uint16(len(rdata)))
		resp = append(resp, rdata...)
	}
	return resp
}

// dnsLookups looks up -names distinct names (A and AAAA, with Go's own stub
// resolver), every -nx-every'th of them nonexistent, each against the next
// of the comma-separated resolvers in turn.
func dnsLookups(args []string) error {
	fs := flag.NewFlagSet("dns-lookups", flag.ContinueOnError)
	names := fs.Int("names", 300, "distinct names")
	nxEvery := fs.Int("nx-every", 5, "every Nth name does not exist")
	n := fs.Int("parallel", 8, "lookups at a time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	resolvers := strings.Split(fs.Arg(0), ",")
	var items []string
	for i := range *names {
		name := fmt.Sprintf("host%d.pkg%d.swd.test.", i, i%17)
		if i%*nxEvery == 0 {
			name = fmt.Sprintf("nx-%d.swd.test.", i)
		}
		items = append(items, fmt.Sprintf("%s %s", resolvers[i%len(resolvers)], name))
	}
	var found, nx, queries atomic.Int64
	t0 := time.Now()
	failed, first := parallel(items, *n, func(it string) error {
		server, name, _ := strings.Cut(it, " ")
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			queries.Add(1)
			var d net.Dialer
			return d.DialContext(ctx, "udp", hostPort(server, "53"))
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		addrs, err := r.LookupIPAddr(ctx, name)
		var de *net.DNSError
		switch {
		case strings.HasPrefix(name, "nx-") && errors.As(err, &de) && de.IsNotFound:
			nx.Add(1)
			return nil
		case err != nil:
			return fmt.Errorf("%s at %s: %w", name, server, err)
		case len(addrs) != 2:
			return fmt.Errorf("%s at %s: %v", name, server, addrs)
		}
		found.Add(1)
		return nil
	})
	fmt.Printf("%d lookups (%d found, %d NXDOMAIN, %d failed; %d queries) against %d resolvers in %v\n",
		len(items), found.Load(), nx.Load(), failed, queries.Load(), len(resolvers), time.Since(t0).Round(time.Millisecond))
	if failed > 0 {
		return first
	}
	return nil
}

// smtpServer accepts every message: a minimal ESMTP responder.
func smtpServer(args []string) error {
	fs := flag.NewFlagSet("smtp-server", flag.ContinueOnError)
	listen := fs.String("listen", "[::]:25", "address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go smtpSession(c)
	}
}

func smtpSession(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	fmt.Fprintf(c, "220 mx.swd.test ESMTP\r\n")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO":
			fmt.Fprintf(c, "250-mx.swd.test\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
		case "DATA":
			fmt.Fprintf(c, "354 go ahead\r\n")
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
			}
			fmt.Fprintf(c, "250 2.0.0 queued\r\n")
		case "QUIT":
			fmt.Fprintf(c, "221 2.0.0 bye\r\n")
			return
		default: // HELO, MAIL, RCPT, RSET, NOOP
			fmt.Fprintf(c, "250 2.0.0 ok\r\n")
		}
	}
}

// smtpBurst delivers one message to each MX in the comma-separated list.
func smtpBurst(args []string) error {
	fs := flag.NewFlagSet("smtp-burst", flag.ContinueOnError)
	n := fs.Int("parallel", 4, "deliveries at a time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mxs := strings.Split(fs.Arg(0), ",")
	t0 := time.Now()
	failed, first := parallel(mxs, *n, func(mx string) error {
		conn, err := net.DialTimeout("tcp", hostPort(mx, "25"), 5*time.Second)
		if err != nil {
			return err
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		c, err := smtp.NewClient(conn, "mx.swd.test")
		if err != nil {
			conn.Close()
			return err
		}
		defer c.Close()
		if err := c.Hello("relay.swd.test"); err != nil {
			return err
		}
		if err := c.Mail("alerts@relay.swd.test"); err != nil {
			return err
		}
		if err := c.Rcpt("ops@example.swd.test"); err != nil {
			return err
		}
		w, err := c.Data()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "Subject: nightly report\r\n\r\nAll good.\r\n")
		if err := w.Close(); err != nil {
			return err
		}
		return c.Quit()
	})
	fmt.Printf("%d SMTP deliveries in %v, %d failed\n", len(mxs), time.Since(t0).Round(time.Millisecond), failed)
	if failed > 0 {
		return first
	}
	return nil
}
