package alert

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// receiver is a webhook receiver: a real HTTP server on loopback that
// keeps the arrays it accepted and can be told to fail.
type receiver struct {
	srv  *httptest.Server
	down atomic.Bool // answer 503

	mu       sync.Mutex
	accepted [][]JSONEvent
	ids      []string // X-Scanwarden-Message-Id of each accepted POST
	refused  []string // ... of each refused one
	headers  http.Header
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(r)
	t.Cleanup(func() { r.srv.Close() })
	return r
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	id := req.Header.Get("X-Scanwarden-Message-Id")
	if r.down.Load() {
		r.mu.Lock()
		r.refused = append(r.refused, id)
		r.mu.Unlock()
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	b, _ := io.ReadAll(req.Body)
	var evs []JSONEvent
	if req.Method != http.MethodPost || json.Unmarshal(b, &evs) != nil {
		http.Error(w, "want a JSON array", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.accepted = append(r.accepted, evs)
	r.ids = append(r.ids, id)
	r.headers = req.Header.Clone()
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) got() [][]JSONEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]JSONEvent(nil), r.accepted...)
}

func hookConfig(url string) Config {
	return Config{
		On: []string{"ban", "watch", "finding"}, Digest: 100 * time.Millisecond, MaxPerHour: 100, Host: "testhost",
		RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, flushTimeout: time.Second,
		Webhook: WebhookConfig{Enabled: true, URL: url, Headers: map[string]string{"Authorization": "Bearer t0k3n"}},
	}
}

func TestWebhookArray(t *testing.T) {
	r := newReceiver(t)
	a, err := New(hookConfig(r.srv.URL+"/alerts"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	f, g := finding("203.0.113.9"), finding("192.0.2.254")
	a.Finding(f)
	a.Ban(banOf(f), f)
	a.Watch(watchOf(g, "guard: default gateway"), g)
	waitFor(t, "the POST", 5*time.Second, func() bool { return len(r.got()) == 1 })
	evs := r.got()[0]
	if len(evs) != 3 || evs[0].Kind != "finding" || evs[1].Kind != "ban" || evs[2].Kind != "watch" {
		t.Fatalf("%+v", evs)
	}
	if h := r.headers; h.Get("Authorization") != "Bearer t0k3n" || h.Get("Content-Type") != "application/json" || r.ids[0] == "" {
		t.Errorf("headers %v", h)
	}
	fe, be, we := evs[0], evs[1], evs[2]
	if fe.Finding == nil || fe.Finding.Src != "203.0.113.9" || fe.Finding.Reason != f.Reason || fe.Decision != nil || fe.Host != "testhost" {
		t.Errorf("finding %+v", fe)
	}
	if be.Decision == nil || be.Decision.Kind != "ban" || be.Decision.Target.String() != "203.0.113.9/32" ||
		be.Undo != "scanwarden unban 203.0.113.9" || be.Action != "banned for 1h (offence 1)" || be.Finding == nil {
		t.Errorf("ban %+v", be)
	}
	if we.Decision == nil || we.Decision.NotActed != "guard: default gateway" || we.Undo != "" ||
		!strings.HasPrefix(we.WouldBan, "nothing") || we.Finding.Src != "192.0.2.254" {
		t.Errorf("watch %+v", we)
	}
}

func TestWebhookStorm(t *testing.T) {
	r := newReceiver(t)
	a, err := New(hookConfig(r.srv.URL), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	for i := range 120 {
		a.Finding(finding("10.0.0." + strconv.Itoa(i)))
	}
	f := finding("203.0.113.9")
	a.Ban(banOf(f), f)
	waitFor(t, "the POST", 5*time.Second, func() bool { return len(r.got()) == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := len(r.got()); n != 1 {
		t.Fatalf("%d POSTs for one storm", n)
	}
	evs := r.got()[0]
	last := evs[len(evs)-1]
	if len(evs) != MaxListed+1 || last.Kind != "unlisted" || last.Count != 71 || last.Counts["finding"] != 70 || last.Counts["ban"] != 1 {
		t.Errorf("%d elements, last %+v", len(evs), last)
	}
}

// TestWebhookReceiverDown: while the receiver answers 503, then while it
// is gone altogether, messages wait; once it is back each is delivered
// once, in order.
func TestWebhookReceiverDown(t *testing.T) {
	r := newReceiver(t)
	cfg := hookConfig(r.srv.URL)
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	r.down.Store(true)
	srcs := []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"}
	for _, src := range srcs {
		a.Finding(finding(src))
		time.Sleep(3 * cfg.Digest) // one digest each
	}
	waitFor(t, "failed attempts", 5*time.Second, func() bool { return a.Stats().Webhook.Failed >= 3 })
	if st := a.Stats(); st.Webhook.Pending != 3 || st.Webhook.Sent != 0 || !strings.Contains(st.Webhook.LastError, "503") {
		t.Errorf("stats while down %+v", st)
	}
	r.down.Store(false)
	waitFor(t, "delivery", 5*time.Second, func() bool { return len(r.got()) == 3 })
	time.Sleep(3 * cfg.RetryMax)
	got := r.got()
	if len(got) != 3 {
		t.Fatalf("%d deliveries, want 3", len(got))
	}
	for i, evs := range got {
		if len(evs) != 1 || evs[0].Finding.Src != srcs[i] {
			t.Errorf("delivery %d: %+v, want %s", i, evs, srcs[i])
		}
	}
	r.mu.Lock()
	if len(r.refused) == 0 || r.refused[0] != r.ids[0] {
		t.Errorf("the retried message changed its id: refused %v, accepted %v", r.refused, r.ids)
	}
	r.mu.Unlock()

	// Now the receiver is gone (connection refused), then back on the
	// same address.
	addr := r.srv.Listener.Addr().String()
	r.srv.Close()
	a.Finding(finding("198.51.100.4"))
	waitFor(t, "a failed attempt", 5*time.Second, func() bool { return a.Stats().Webhook.Failed >= 5 })
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	r.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: r}}
	r.srv.Start()
	waitFor(t, "delivery after the restart", 5*time.Second, func() bool { return len(r.got()) == 4 })
	if evs := r.got()[3]; evs[0].Finding.Src != "198.51.100.4" {
		t.Errorf("%+v", evs)
	}
	if st := a.Stats(); st.Webhook.Sent != 4 || st.Webhook.Pending != 0 || st.Webhook.LastError != "" {
		t.Errorf("stats %+v", st)
	}
}

// TestWebhookPileUp: when maxPending messages wait, further events go
// into the one digest after them, and nothing is lost.
func TestWebhookPileUp(t *testing.T) {
	r := newReceiver(t)
	cfg := hookConfig(r.srv.URL)
	cfg.Digest = 20 * time.Millisecond
	cfg.MaxPerHour = 1000
	a, err := New(cfg, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	run(t, a)
	r.down.Store(true)
	n := 0
	waitFor(t, "the pile-up", 20*time.Second, func() bool {
		a.Finding(finding("198.51.100.1"))
		n++
		return a.Stats().Webhook.Pending == maxPending && a.Stats().Webhook.Waiting > 1
	})
	r.down.Store(false)
	waitFor(t, "delivery", 10*time.Second, func() bool {
		return a.Stats().Webhook.Pending == 0 && a.Stats().Webhook.Waiting == 0
	})
	total := 0
	for _, evs := range r.got() {
		for _, e := range evs {
			if e.Kind == "unlisted" {
				total += e.Count
			} else {
				total++
			}
		}
	}
	if total != n || len(r.got()) != maxPending+1 {
		t.Errorf("%d events in %d messages, want %d in %d", total, len(r.got()), n, maxPending+1)
	}
}
