package connwatch

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// ErrUnsupported is wrapped by Open's error when this kernel or process
// cannot trace connects: not root, no BPF ring buffers, no tracefs, no such
// tracepoint. Callers fall back to sock_diag attribution.
var ErrUnsupported = errors.New("eBPF connect tracing unavailable")

// Conn is one TCP connect() as the kernel saw it. Ids are those of the
// initial PID and user namespaces (the host's /proc), whatever namespace
// the process runs in.
type Conn struct {
	Time     time.Time      // wall clock, from the boot clock and an offset taken at Open
	PID      int            // thread group id: the process
	TID      int            // the thread that called connect()
	UID, GID uint32         // the task's real uid and gid
	CgroupID uint64         // cgroup v2 id (the inode of its directory in the cgroup2 mount)
	Comm     string         // task comm, control characters, \ and non-UTF-8 escaped as \xNN
	Src      netip.Addr     // local address; chosen before SYN_SENT, so set in practice
	Dst      netip.AddrPort // remote address and port
}

// Options bound the index.
type Options struct {
	// MaxConns is the most connects kept; 0 means 65536, one full sweep of
	// the port range (the scan the index exists to attribute).
	MaxConns int
	// MaxAge is how long a connect is kept; 0 means 10 minutes, twice the
	// default detection windows (detect threshold and bait, 5m in
	// config/default.yaml), so a report made at the end of a slow scan
	// still finds its first connects.
	MaxAge time.Duration

	// classic uses the classic tracepoint even where the raw one works
	// (tests of both).
	classic bool
}

// Defaults for Options.
const (
	DefaultMaxConns = 65536
	DefaultMaxAge   = 10 * time.Minute
)

// ringBytes is the ring buffer's size. A record takes 104 bytes with its
// header, so 4 MiB holds about 40 000 connects: a local connect() to a
// closed port costs a few microseconds, so this is a fraction of a second
// of the fastest single-process scan if Run falls behind, and 4 MiB of
// kernel memory.
const ringBytes = 4 << 20

// pollInterval is how often Run reads the ring buffer when the program has
// not woken it (see wakeBytes): the most a connect waits before Lookup can
// find it. A connect() scan is reported after many connects, so 10 ms of
// lag costs nothing; the idle cost is 100 epoll_wait timeouts a second.
const pollInterval = 10 * time.Millisecond

// Stats count what a Watcher has done.
type Stats struct {
	Read      uint64 // records read from the ring buffer
	Lost      uint64 // connects the kernel could not record: ring buffer full
	Malformed uint64 // records that did not decode
	Indexed   uint64 // connects added to the index
	Evicted   uint64 // connects dropped from the index, for room or age
	Live      int    // connects in the index now
}

// Watcher traces TCP connects into a bounded index. Run reads the kernel's
// records; Lookup, Stats and Close may be called from other goroutines.
type Watcher struct {
	prog  *ebpf.Program
	ring  *ebpf.Map
	drops *ebpf.Map
	tp    link.Link
	rd    *ringbuf.Reader
	boot  time.Time
	idx   *index

	running         atomic.Bool
	read, malformed atomic.Uint64
	lostAtClose     atomic.Uint64
	closeOnce       sync.Once
	closeErr        error
	attach          string // see Attach
	rawErr          error
}

// Open loads the BPF program and attaches it to sock/inet_sock_set_state.
// Connects are recorded from then on, and buffered in the kernel until Run
// reads them.
func Open(opts Options) (*Watcher, error) {
	if opts.MaxConns < 0 || opts.MaxAge < 0 {
		return nil, fmt.Errorf("connwatch: negative MaxConns (%d) or MaxAge (%v)", opts.MaxConns, opts.MaxAge)
	}
	if opts.MaxConns == 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.MaxAge == 0 {
		opts.MaxAge = DefaultMaxAge
	}
	w := &Watcher{idx: newIndex(opts.MaxConns, opts.MaxAge, time.Now)}
	if err := w.load(opts.classic); err != nil {
		w.Close()
		return nil, fmt.Errorf("connwatch: %w", err)
	}
	return w, nil
}

func (w *Watcher) load(classic bool) error {
	// Before 5.11 BPF memory counts against RLIMIT_MEMLOCK; after, this is
	// a no-op. A failure shows up below as EPERM creating the maps.
	_ = rlimit.RemoveMemlock()

	var err error
	w.ring, err = ebpf.NewMap(&ebpf.MapSpec{Name: "swcw_ring", Type: ebpf.RingBuf, MaxEntries: ringBytes})
	if err != nil {
		return bpfErr("creating the ring buffer (needs Linux 5.8)", err)
	}
	w.drops, err = ebpf.NewMap(&ebpf.MapSpec{Name: "swcw_drops", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return bpfErr("creating the drop counter", err)
	}
	w.boot, err = bootTime()
	if err != nil {
		return err
	}
	if w.rd, err = ringbuf.NewReader(w.ring); err != nil {
		return fmt.Errorf("reading the ring buffer: %w", err)
	}
	if !classic {
		if w.rawErr = w.attachRaw(); w.rawErr == nil {
			return nil
		}
	}
	return w.attachClassic()
}

// attachRaw loads the raw tracepoint program and attaches it.
func (w *Watcher) attachRaw() error {
	l, err := loadSockLayout()
	if err != nil {
		return err
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "swcw_connect_raw",
		Type:         ebpf.RawTracepoint,
		Instructions: rawProgram(l, w.ring.FD(), w.drops.FD()),
		License:      "GPL", // bpf_probe_read_kernel is GPL-only
	})
	if err != nil {
		return fmt.Errorf("loading the raw tracepoint program: %w", err)
	}
	tp, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: tpName, Program: prog})
	if err != nil {
		prog.Close()
		return fmt.Errorf("attaching to raw tracepoint %s: %w", tpName, err)
	}
	w.prog, w.tp, w.attach = prog, tp, "raw_tracepoint/"+tpName
	return nil
}

// attachClassic loads the program for the classic tracepoint, whose record
// layout tracefs describes, and attaches it.
func (w *Watcher) attachClassic() error {
	f, err := readFormat()
	if err != nil {
		return err
	}
	if err := checkFormat(f); err != nil {
		return fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	w.prog, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "swcw_connect",
		Type:         ebpf.TracePoint,
		Instructions: program(f, w.ring.FD(), w.drops.FD()),
		// No helper used is GPL-only; "GPL" keeps that true if one is added.
		License: "GPL",
	})
	if err != nil {
		return bpfErr("loading the BPF program", err)
	}
	if w.tp, err = link.Tracepoint(tpGroup, tpName, w.prog, nil); err != nil {
		return bpfErr("attaching to tracepoint "+tpGroup+"/"+tpName, err)
	}
	w.attach = "tracepoint/" + tpGroup + "/" + tpName
	return nil
}

// Attach says where the program is attached: "raw_tracepoint/…" (the
// socket read with the kernel's BTF) or "tracepoint/…" (the classic
// tracepoint, when BTF is missing or the raw program was refused; then
// the second value says why).
func (w *Watcher) Attach() (string, error) { return w.attach, w.rawErr }

// bpfErr marks as ErrUnsupported the failures that mean "not here": too
// old a kernel, or too few privileges.
func bpfErr(what string, err error) error {
	switch {
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%w: %s: kernel lacks support: %v", ErrUnsupported, what, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: %s: needs root, or CAP_BPF and CAP_PERFMON: %v", ErrUnsupported, what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// bootTime returns the wall-clock time at which CLOCK_BOOTTIME, the clock
// of bpf_ktime_get_boot_ns, read zero. It carries no monotonic reading, so
// Conn times compare as wall-clock times.
func bootTime() (time.Time, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return time.Time{}, fmt.Errorf("reading CLOCK_BOOTTIME: %w", err)
	}
	return time.Now().Round(0).Add(-time.Duration(ts.Nano())), nil
}

// Run reads connects from the kernel into the index until ctx ends (it
// returns nil) or the Watcher is closed (nil too). Only one Run at a time.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("connwatch: Run is already running")
	}
	defer w.running.Store(false)
	// Flush wakes a blocked read; the reader returns what is buffered, then
	// ErrFlushed.
	stop := context.AfterFunc(ctx, func() { w.rd.Flush() })
	defer stop()
	// The deadline makes the reader return what is buffered every
	// pollInterval, when the program has not woken it.
	var rec ringbuf.Record
	bootNs := w.boot.UnixNano()
	w.rd.SetDeadline(time.Now().Add(pollInterval))
	for {
		err := w.rd.ReadInto(&rec)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			w.rd.SetDeadline(time.Now().Add(pollInterval))
			fallthrough
		case errors.Is(err, ringbuf.ErrFlushed):
			if ctx.Err() != nil {
				return nil
			}
			continue
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		case err != nil:
			return fmt.Errorf("connwatch: reading the ring buffer: %w", err)
		}
		w.read.Add(1)
		c, err := decodeRaw(rec.RawSample, bootNs)
		if err != nil {
			w.malformed.Add(1)
			continue
		}
		w.idx.add(&c)
	}
}

// Lookup returns recent connects from src to any of dsts, made at or after
// since, newest first, at most MaxLookup of them. An invalid or unspecified
// src matches any source; so does a connect recorded before its source
// address was chosen. Addresses are compared without zone, and
// IPv4-mapped addresses as IPv4. A connect reaches the index within
// pollInterval (10 ms) of its SYN_SENT, sooner when connects pour in.
func (w *Watcher) Lookup(src netip.Addr, dsts []netip.Addr, since time.Time) []Conn {
	return w.idx.lookup(src, dsts, since)
}

// Stats returns the Watcher's counters.
func (w *Watcher) Stats() Stats {
	x := w.idx.stats()
	return Stats{
		Read:      w.read.Load(),
		Lost:      w.lost(),
		Malformed: w.malformed.Load(),
		Indexed:   x.indexed,
		Evicted:   x.evicted,
		Live:      x.live,
	}
}

// lost reads the program's drop counter (kept at Close).
func (w *Watcher) lost() uint64 {
	var n uint64
	if w.drops == nil || w.drops.Lookup(uint32(0), &n) != nil {
		return w.lostAtClose.Load()
	}
	return n
}

// Close detaches the program and frees its kernel resources, which stops
// Run. Lookup keeps answering from what was indexed.
func (w *Watcher) Close() error {
	w.closeOnce.Do(func() {
		var errs []error
		if w.tp != nil {
			errs = append(errs, w.tp.Close())
		}
		w.lostAtClose.Store(w.lost())
		if w.rd != nil {
			errs = append(errs, w.rd.Close())
		}
		for _, c := range []interface{ Close() error }{w.prog, w.drops, w.ring} {
			if c != nil {
				errs = append(errs, c.Close())
			}
		}
		w.closeErr = errors.Join(errs...)
	})
	return w.closeErr
}
