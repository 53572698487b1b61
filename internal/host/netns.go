package host

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// A network namespace is a property of an OS thread, and Go moves goroutines
// between threads. Sockets, on the other hand, belong for life to the
// namespace of the thread that created them. So the Host remembers the
// namespace that was current when Start was called, and every socket it (or
// a sensor, through Do) creates later is created on a thread that is in that
// namespace. A daemon started with `ip netns exec` has every thread there
// already and never switches; a test that enters a namespace on one locked
// thread gets the same behaviour as the daemon.

// threadNetNS opens the network namespace of the calling thread. The caller
// must hold the thread (runtime.LockOSThread) for the answer to mean anything.
func threadNetNS() (int, error) {
	fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening this thread's network namespace: %w", err)
	}
	return fd, nil
}

// sameNetNS reports whether two namespace file descriptors name the same
// namespace (same nsfs device and inode).
func sameNetNS(a, b int) (bool, error) {
	var sa, sb unix.Stat_t
	if err := unix.Fstat(a, &sa); err != nil {
		return false, err
	}
	if err := unix.Fstat(b, &sb); err != nil {
		return false, err
	}
	return sa.Dev == sb.Dev && sa.Ino == sb.Ino, nil
}

// Do runs f on an OS thread that is in the host's network namespace, so that
// sockets f creates (AF_PACKET, netlink, ...) belong to it. When the calling
// process is already there, as the daemon is, no namespace is switched and no
// privilege beyond f's own is needed; otherwise entering the namespace needs
// CAP_SYS_ADMIN.
func (h *Host) Do(f func() error) error {
	return doInNetNS(h.nsFD, f)
}

func doInNetNS(nsFD int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		cur, err := threadNetNS()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer unix.Close(cur)
		same, err := sameNetNS(cur, nsFD)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("comparing network namespaces: %w", err)
			return
		}
		if same {
			err := f()
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		if err := unix.Setns(nsFD, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("entering the host's network namespace: %w", err)
			return
		}
		ferr := f()
		if err := unix.Setns(cur, unix.CLONE_NEWNET); err != nil {
			// The thread is stuck in the wrong namespace: leave it locked,
			// and the runtime ends it with this goroutine.
			errc <- fmt.Errorf("leaving the host's network namespace: %w", err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// lockThread runs f with the calling goroutine held on its OS thread.
func lockThread(f func()) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	f()
}
