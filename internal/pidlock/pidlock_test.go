package pidlock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestAcquire(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	f, holder, err := Acquire(path)
	if err != nil || holder != 0 {
		t.Fatalf("first: %v, holder %d", err, holder)
	}
	if got := ReadPID(f); got != os.Getpid() {
		t.Errorf("file holds PID %d, want ours %d", got, os.Getpid())
	}
	// flock locks belong to the open file description: a second open in
	// this process conflicts like another process would.
	if _, holder, err := Acquire(path); !errors.Is(err, ErrHeld) || holder != os.Getpid() {
		t.Errorf("second: %v, holder %d; want ErrHeld by %d", err, holder, os.Getpid())
	}
	f.Close()
	g, _, err := Acquire(path)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	g.Close()
	if _, _, err := Acquire(filepath.Join(t.TempDir(), "missing", "x.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("in a missing directory: %v, want the open error", err)
	}
}
