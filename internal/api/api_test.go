package api

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type echo struct{}

func (echo) Handle(_ context.Context, r *Request, p Peer) (any, error) {
	if r.Cmd == "fail" {
		return nil, errors.New("no such thing")
	}
	return map[string]any{"cmd": r.Cmd, "target": r.Target, "uid": p.UID}, nil
}

func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "s.sock")
	l, _, err := Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, l, echo{}, nil)
	var out map[string]any
	if err := Call(ctx, path, &Request{Cmd: "ban", Target: "192.0.2.1"}, &out); err != nil {
		t.Fatal(err)
	}
	if out["cmd"] != "ban" || out["target"] != "192.0.2.1" || int(out["uid"].(float64)) != os.Getuid() {
		t.Fatalf("%v", out)
	}
	if err := Call(ctx, path, &Request{Cmd: "fail"}, nil); err == nil || err.Error() != "no such thing" {
		t.Fatalf("error not passed through: %v", err)
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o660 {
		t.Fatalf("socket mode %v", st.Mode().Perm())
	}
	// A second daemon on the same socket is refused.
	if _, _, err := Listen(path, ""); err == nil || !strings.Contains(err.Error(), "already listening") {
		t.Fatalf("second listener: %v", err)
	}
}

func TestNotRunning(t *testing.T) {
	err := Call(context.Background(), filepath.Join(t.TempDir(), "none.sock"), &Request{Cmd: "status"}, nil)
	if err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("got %v", err)
	}
}

func TestStaleSocketIsReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close() // leaves the file, as a crashed daemon does
	l2, _, err := Listen(path, "")
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	l2.Close()
}

func TestHostileClientCannotHoldTheServer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.sock")
	l, _, err := Listen(path, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, l, echo{}, nil)
	// A client that connects and sends garbage, and one that sends nothing.
	c1, _ := net.Dial("unix", path)
	c1.Write([]byte("{not json"))
	c1.(*net.UnixConn).CloseWrite()
	c2, _ := net.Dial("unix", path)
	defer c1.Close()
	defer c2.Close()
	done := make(chan error, 1)
	go func() { done <- Call(ctx, path, &Request{Cmd: "status"}, nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("server blocked by an idle client")
	}
}
