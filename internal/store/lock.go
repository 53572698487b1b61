package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/scanwarden/scanwarden/internal/pidlock"
)

// acquireLock takes the directory's lock (internal/pidlock) on
// dir/scanwarden.lock.
func acquireLock(dir string) (*os.File, error) {
	path := filepath.Join(dir, LockName)
	f, holder, err := pidlock.Acquire(path)
	switch {
	case err == nil:
		return f, nil
	case errors.Is(err, pidlock.ErrHeld):
		return nil, &LockedError{Dir: dir, PID: holder}
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EROFS):
		return nil, notWritable(dir, err)
	}
	return nil, fmt.Errorf("store: lock file: %w", err)
}
