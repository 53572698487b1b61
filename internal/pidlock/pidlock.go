// Package pidlock is the "one process owns this directory" lock of the
// state store and the connection log: an exclusive flock on a file that
// holds the owner's PID, so that a second process can say who holds it.
//
// flock, not the PID alone: the kernel drops the lock when the holder dies,
// however it dies, so a stale file from a kill -9 never blocks a restart.
// Go opens files close-on-exec, so hook commands do not inherit it.
package pidlock

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// ErrHeld: another process holds the lock.
var ErrHeld = errors.New("held by another process")

// Acquire takes the lock on path, creating the file (0640) if needed, and
// writes our PID into it. When another process holds it, Acquire returns
// ErrHeld and that process's PID (0 if the file does not say). An error
// opening the file is os.OpenFile's, unwrapped, for the caller to judge
// (permission, read-only file system).
func Acquire(path string) (f *os.File, holder int, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, 0, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ReadPID(f), ErrHeld
		}
		return nil, 0, fmt.Errorf("locking %s: %w", path, err)
	}
	if err = f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("writing %s: %w", path, err)
	}
	return f, 0, nil
}

// ReadPID returns the PID a lock file holds, 0 if none.
func ReadPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}
