// Package follow reads kernel firewall log lines (iptables LOG, nft log) live
// from one of three places: /dev/kmsg, the journal (journalctl -k -f), or a
// syslog file followed like tail -F across rotation. Each line is turned into
// a probe by kernlog.Parser.
//
// It owns following: where to start, rotation and truncation, partial lines,
// the journalctl subprocess, and checking who wrote a line. It knows nothing
// of detection: a probe says what the kernel logged.
//
// # Who wrote the line
//
// A firewall line is only worth acting on if the kernel wrote it; otherwise
// any local user could get an address of their choosing banned.
//
//   - /dev/kmsg: user space can write records there too (root only, by the
//     device's mode), but the kernel gives every such record a facility
//     other than 0 (LOG_USER unless the writer names another), so only
//     records of facility 0, kern, are read. One gap: the kernel keeps the
//     facility in a byte, so a writer naming facility 256 ("<2048>") gets
//     0 (seen on 6.18: "<2062>" is read back with facility 1). Only root can
//     do that, and root can ban any address directly anyway.
//   - The journal: only entries with _TRANSPORT=kernel and SYSLOG_FACILITY=0
//     are read. journald sets _TRANSPORT itself (a user's logger gives
//     "syslog" or "journal", systemd-cat "stdout"), and a record user space
//     wrote to /dev/kmsg arrives with _TRANSPORT=kernel but its own facility.
//   - A file: `logger -t kernel 'IN=eth0 ... SRC=...'` puts a line in syslog
//     that looks exactly like a kernel line. With Config.Verify, /dev/kmsg is
//     read alongside, a keyed hash of the LOG part of each kernel record
//     (from "IN=" to the end, whitespace normalised) is kept for two minutes,
//     and a file line is accepted only if its own hash is there; each kernel
//     record vouches for one file line. A line whose record has not been
//     read yet is held for two seconds, then counted as unverified and
//     dropped. Without Verify every line in the file is trusted: whoever can
//     write to the syslog socket can then make the detector see probes from
//     any address.
//
// Limits of the check: it proves the kernel logged the same message, not
// that this line is the copy syslog made of it, so a user who can read the
// kernel log can replay a recent real line ahead of syslog's copy (the
// detector then sees the same probe once, as it would have anyway). Kernel
// records lost before we read them (a /dev/kmsg overrun, counted in
// Stats.Overruns) make their file lines unverified. Reading /dev/kmsg needs
// CAP_SYSLOG when kernel.dmesg_restrict is 1 (Debian's default).
package follow

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor"
	"github.com/scanwarden/scanwarden/internal/sensor/kernlog"
)

// Sources besides a file path.
const (
	SourceKmsg    = "kmsg"
	SourceJournal = "journal"
)

// Config says what to follow.
type Config struct {
	// Source is "kmsg", "journal", or an absolute file path (syslog,
	// kern.log).
	Source string

	// Verify, for a file, accepts only lines the kernel wrote, checked
	// against /dev/kmsg (see the package doc). Ignored for kmsg and
	// journal, which are checked by construction.
	Verify bool

	// Boot is the wall-clock boot time for /dev/kmsg stamps. Zero means
	// kernlog.HostBootTime().
	Boot time.Time

	// KmsgPath and JournalctlPath replace /dev/kmsg and the journalctl
	// found in PATH, for tests.
	KmsgPath, JournalctlPath string

	// FromStart reads what is already there (the file from its start, the
	// kmsg ring buffer, this boot's journal) instead of starting at the
	// end, like tail -F, which is the default.
	FromStart bool
}

// Stats counts what the sensor read. For a file, Lines counts complete lines
// (including those read back from a copytruncate copy); for kmsg, records;
// for the journal, entries.
type Stats struct {
	Lines, Probes, Ignored, Malformed uint64

	// Unverified counts kernel-looking lines the kernel did not write:
	// file lines not found in /dev/kmsg in time, /dev/kmsg records of a
	// facility other than kern, journal entries not from the kernel.
	Unverified uint64

	// Rotations counts a file replaced at its path (renamed or deleted, and
	// created again) or truncated; Truncations counts the last kind alone,
	// and Recovered the lines read from a copytruncate copy because they
	// had not been read before the truncation.
	Rotations, Truncations, Recovered uint64

	// Overruns counts /dev/kmsg reads that failed with EPIPE: the ring
	// buffer wrapped and records were lost before we read them.
	Overruns uint64

	// Restarts counts journalctl runs after the first.
	Restarts uint64

	// FirstProblem describes the first malformed line; LastError the last
	// failure of the source itself (journalctl exiting, a file that cannot
	// be opened), which the sensor survives by retrying.
	FirstProblem, LastError string
}

// Sensor follows one source. Open it, Run it once, Close it.
type Sensor struct {
	cfg    Config
	parser *kernlog.Parser
	name   string

	kmsg    *kmsgReader // the source, or the verifier's feed
	tail    *tailer
	journal *journal
	verify  *verifier

	c counters

	// Used by the goroutine that follows a file.
	out  func(*probe.Probe)
	p    probe.Probe
	held holdQueue

	life sensor.Once // Run once; Close stops it
}

type counters struct {
	base                                          sensor.Stats
	unverified, rotations, truncations, recovered atomic.Uint64
	overruns, restarts                            atomic.Uint64
	lastError                                     atomic.Pointer[string]
}

func (c *counters) fail(err error) {
	msg := err.Error()
	c.lastError.Store(&msg)
}

// Open prepares the source: it opens /dev/kmsg (positioned at its end unless
// FromStart), finds journalctl, or sets up the file watch (the file itself
// may not exist yet; its directory must). Nothing is read until Run.
func Open(cfg Config) (*Sensor, error) {
	if cfg.KmsgPath == "" {
		cfg.KmsgPath = "/dev/kmsg"
	}
	s := &Sensor{cfg: cfg, name: cfg.Source}
	boot := cfg.Boot
	if boot.IsZero() {
		b, err := kernlog.HostBootTime()
		if err != nil && cfg.Source == SourceKmsg {
			return nil, fmt.Errorf("kernel log from /dev/kmsg: %w", err)
		}
		boot = b
	}
	s.parser = &kernlog.Parser{Boot: boot}

	var err error
	switch src := cfg.Source; {
	case src == SourceKmsg:
		s.kmsg, err = openKmsg(cfg.KmsgPath, cfg.FromStart)
		if err != nil {
			return nil, fmt.Errorf("kernel log: %w", err)
		}
	case src == SourceJournal:
		s.journal, err = newJournal(cfg.JournalctlPath, cfg.FromStart)
		if err != nil {
			return nil, err
		}
	case filepath.IsAbs(src):
		if err = s.openFile(); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("kernel log source %q: want kmsg, journal or an absolute file path", src)
	}
	return s, nil
}

func (s *Sensor) openFile() error {
	path := filepath.Clean(s.cfg.Source)
	if s.cfg.Verify {
		k, err := openKmsg(s.cfg.KmsgPath, true)
		if err != nil {
			return fmt.Errorf("kernel log %s: checking its lines against %s: %w; "+
				"to trust every line in the file instead (any local user can then forge one), "+
				"set sensor.kernel_log_verify: false", path, s.cfg.KmsgPath, err)
		}
		s.kmsg = k
		s.verify = newVerifier(s.parser.Boot)
	}
	t, err := newTailer(path, s.cfg.FromStart, &s.c, s.fileLine)
	if err != nil {
		if s.kmsg != nil {
			s.kmsg.close()
		}
		return fmt.Errorf("kernel log %s: %w", path, err)
	}
	s.tail = t
	return nil
}

// Run reads the source until ctx ends or Close is called, calling out for
// each probe. out is called from one goroutine at a time and must not keep
// the probe, which is reused. Failures of the source (journalctl exiting, an
// unreadable file) are retried and reported in Stats.LastError; Run returns
// nil when stopped, or an error if /dev/kmsg fails for good. It is an error
// to call it twice.
func (s *Sensor) Run(ctx context.Context, out func(*probe.Probe)) error {
	ctx, finish, err := s.life.Start(ctx, "kernel log")
	if err != nil {
		return err
	}
	defer finish()
	ctx, cancel := context.WithCancel(ctx) // the file's reader stops the kmsg reader, and back
	defer cancel()

	switch {
	case s.journal != nil:
		return s.journal.run(ctx, s, out)
	case s.tail == nil:
		var p probe.Probe
		return s.kmsg.follow(ctx, &s.c, func(r *kmsgRecord) { s.kmsgRecord(r, &p, out) })
	}
	var wg sync.WaitGroup
	var kerr error
	if s.verify != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kerr = s.kmsg.follow(ctx, &s.c, s.verify.record)
			if kerr != nil {
				s.c.fail(kerr)
				cancel()
			}
		}()
	}
	s.out = out
	var wake <-chan struct{}
	var recheck func(time.Time) time.Duration
	if s.verify != nil {
		wake, recheck = s.verify.wake, s.recheckHeld
	}
	err = s.tail.run(ctx, wake, recheck)
	cancel()
	wg.Wait()
	if err == nil {
		err = kerr
	}
	return err
}

// kmsgRecord handles a record when /dev/kmsg is the source.
func (s *Sensor) kmsgRecord(r *kmsgRecord, p *probe.Probe, out func(*probe.Probe)) {
	c := &s.c
	c.base.Read.Add(1)
	switch {
	case !r.ok:
		c.base.Problem("%s: bad record header %.40q", s.cfg.KmsgPath, r.line)
		return
	case r.facility() != 0:
		if kernlog.LooksLikeLogLine(r.msg) {
			c.unverified.Add(1)
		} else {
			c.base.Ignored.Add(1)
		}
		return
	}
	ok, err := s.parser.ParseMessage(r.text(), r.time(s.parser.Boot), p)
	switch {
	case err != nil:
		c.base.Problem("%s: record %d: %v", s.cfg.KmsgPath, r.seq, err)
	case ok:
		c.base.Probes.Add(1)
		out(p)
	default:
		c.base.Ignored.Add(1)
	}
}

// fileLine handles a complete line of the file, which starts at byte off.
func (s *Sensor) fileLine(line []byte, off int64) {
	c := &s.c
	c.base.Read.Add(1)
	ok, err := s.parser.Parse(line, &s.p)
	switch {
	case err != nil:
		c.base.Problem("%s at byte %d: %v", s.cfg.Source, off, err)
		return
	case !ok:
		c.base.Ignored.Add(1)
		return
	case s.verify == nil:
		c.base.Probes.Add(1)
		s.out(&s.p)
		return
	}
	h, _ := s.verify.hash(line) // a line Parse accepted has "IN="
	now := time.Now()
	if s.verify.take(h, now) {
		c.base.Probes.Add(1)
		s.out(&s.p)
		return
	}
	if !s.held.add(&s.p, h, now.Add(holdFor)) {
		c.unverified.Add(1)
	}
}

// recheckHeld looks again at the lines waiting for their kernel record.
func (s *Sensor) recheckHeld(now time.Time) time.Duration {
	return s.held.recheck(s.verify, now, func(p *probe.Probe) {
		s.c.base.Probes.Add(1)
		s.out(p)
	}, func() { s.c.unverified.Add(1) })
}

// Stats returns the counters. Safe to call while Run runs.
func (s *Sensor) Stats() Stats {
	c := &s.c
	st := Stats{
		Lines:        c.base.Read.Load(),
		Probes:       c.base.Probes.Load(),
		Ignored:      c.base.Ignored.Load(),
		Malformed:    c.base.Malformed.Load(),
		Unverified:   c.unverified.Load(),
		Rotations:    c.rotations.Load(),
		Truncations:  c.truncations.Load(),
		Recovered:    c.recovered.Load(),
		Overruns:     c.overruns.Load(),
		Restarts:     c.restarts.Load(),
		FirstProblem: c.base.FirstProblem(),
	}
	if e := c.lastError.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

// Name is the source as configured.
func (s *Sensor) Name() string { return s.name }

// Close stops Run, if it runs, and releases the files and the watch.
func (s *Sensor) Close() error {
	if !s.life.Stop() {
		return nil
	}
	if s.kmsg != nil {
		s.kmsg.close()
	}
	if s.tail != nil {
		s.tail.close()
	}
	return nil
}

// lookJournalctl finds journalctl, with an error that says what to do.
func lookJournalctl(path string) (string, error) {
	if path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("kernel log from the journal: %w", err)
		}
		return path, nil
	}
	p, err := exec.LookPath("journalctl")
	if err != nil {
		return "", fmt.Errorf("kernel log from the journal: journalctl not found in PATH (%w); "+
			"set sensor.kernel_log to kmsg or to the syslog file", err)
	}
	return p, nil
}
