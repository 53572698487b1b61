package connwatch

import (
	"errors"
	"testing"
	"time"

	"github.com/scanwarden/scanwarden/internal/host/netnstest"
	"golang.org/x/sys/unix"
)

// BenchmarkConnectOverhead times one connect() to a closed port over a
// namespace's loopback (socket, connect refused by RST, close) without a
// Watcher, with one on the raw tracepoint, and with one on the classic
// tracepoint. The difference is what every connect() on the host pays for
// tracing: the tracepoint, the BPF program and a ring buffer write, plus
// the reader's share of the CPUs. A refused connect makes two state
// changes; a completed connection makes about five on each end, which the
// raw tracepoint passes over more cheaply than the classic one.
func BenchmarkConnectOverhead(b *testing.B) {
	netnstest.Require(b)
	ns := newNetns(b)
	connect := func(b *testing.B) { connectIn(b, ns) }
	b.Run("off", connect)
	for _, mode := range []struct {
		name string
		opts Options
	}{{"raw", Options{}}, {"classic", Options{classic: true}}} {
		b.Run(mode.name, func(b *testing.B) {
			w := startWatcher(b, mode.opts)
			before := w.Stats()
			connect(b)
			b.StopTimer()
			// Let Run catch up (it polls every pollInterval), then count.
			var after Stats
			for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(pollInterval) {
				if after = w.Stats(); after.Read-before.Read+after.Lost-before.Lost >= uint64(b.N) {
					break
				}
			}
			b.ReportMetric(float64(after.Indexed-before.Indexed)/float64(b.N), "indexed/op")
			b.ReportMetric(float64(after.Lost-before.Lost)/float64(b.N), "lost/op")
		})
	}
}

// connectIn connect()s to a closed port in ns b.N times.
func connectIn(b *testing.B, ns *netnstest.NS) {
	sa := &unix.SockaddrInet4{Port: 9, Addr: nsAddr4.As4()}
	err := ns.Do(func() error {
		for b.Loop() {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			err = unix.Connect(fd, sa)
			unix.Close(fd)
			if !errors.Is(err, unix.ECONNREFUSED) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}
