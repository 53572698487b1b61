package follow

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
	"github.com/scanwarden/scanwarden/internal/sensor/kernlog"
)

// The journal is read through journalctl, which knows its file format and
// follows it across journald's rotation and vacuuming:
//
//	journalctl -k -f -o json --all -n 0          from now on (the default)
//	journalctl -k -f -o json --all --no-tail     this boot from its start (FromStart)
//	journalctl -k -f -o json --all --no-tail --after-cursor=C   after a restart
//
// -k is this boot's kernel transport (_TRANSPORT=kernel); --all keeps
// journalctl from writing null for fields over 4 KiB. "-n 0" and
// "--since now" both start at the end with systemd 252; "-n 0" has meant
// that since systemd's first -f. Each entry's __CURSOR is kept, so that a
// journalctl that dies is restarted after the last entry read: nothing read
// twice, nothing missed while it was down (unless journald vacuumed it).

// Restarting journalctl: 1 s doubling to 30 s, back to 1 s after a run of a
// minute.
const (
	backoffMin    = time.Second
	backoffMax    = 30 * time.Second
	backoffForgot = time.Minute
)

type journal struct {
	path      string
	fromStart bool
	cursor    string
}

func newJournal(path string, fromStart bool) (*journal, error) {
	p, err := lookJournalctl(path)
	if err != nil {
		return nil, err
	}
	return &journal{path: p, fromStart: fromStart}, nil
}

func (j *journal) args() []string {
	a := []string{"-k", "-f", "-o", "json", "--all"}
	switch {
	case j.cursor != "":
		return append(a, "--no-tail", "--after-cursor="+j.cursor)
	case j.fromStart:
		return append(a, "--no-tail")
	}
	return append(a, "-n", "0")
}

// run runs journalctl until ctx ends, restarting it when it exits.
func (j *journal) run(ctx context.Context, s *Sensor, out func(*probe.Probe)) error {
	backoff := backoffMin
	var p probe.Probe
	for n := 0; ; n++ {
		if n > 0 {
			s.c.restarts.Add(1)
		}
		start := time.Now()
		err := j.once(ctx, func(line []byte) { s.journalEntry(line, &p, out) }, func() {
			s.c.base.Read.Add(1)
			s.c.base.Problem("journal entry longer than %d bytes, skipped", kernlog.MaxLine)
		})
		if ctx.Err() != nil {
			return nil
		}
		s.c.fail(err)
		if time.Since(start) > backoffForgot {
			backoff = backoffMin
		}
		sleep(ctx, backoff)
		if ctx.Err() != nil {
			return nil
		}
		backoff = min(2*backoff, backoffMax)
	}
}

// once runs journalctl and hands on each line it writes, until it exits or
// ctx ends; then its whole process group is killed.
func (j *journal) once(ctx context.Context, line func([]byte), tooLong func()) error {
	cmd := exec.Command(j.path, j.args()...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr lastBytes
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", j.path, err)
	}
	pid := cmd.Process.Pid
	kill := func() { _ = syscall.Kill(-pid, syscall.SIGKILL) }
	stop := context.AfterFunc(ctx, kill)
	readLines(stdout, line, tooLong)
	stop()
	kill() // the process is not reaped yet, so its group id is still ours
	err = cmd.Wait()
	if msg := bytes.TrimSpace(stderr.bytes()); len(msg) > 0 {
		return fmt.Errorf("%s exited (%v): %s", j.path, err, msg)
	}
	return fmt.Errorf("%s exited (%v)", j.path, err)
}

// readLines calls line for each line of r, skipping those over
// kernlog.MaxLine (tooLong is told), until EOF or an error.
func readLines(r io.Reader, line func([]byte), tooLong func()) {
	br := bufio.NewReaderSize(r, kernlog.MaxLine+1)
	skipping := false
	for {
		b, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !skipping {
				tooLong()
			}
			skipping = true
			continue
		case skipping:
			skipping = false
		case len(b) > 0:
			line(b)
		}
		if err != nil {
			return
		}
	}
}

// journalEntry handles one line of journalctl -o json.
func (s *Sensor) journalEntry(line []byte, p *probe.Probe, out func(*probe.Probe)) {
	c := &s.c
	c.base.Read.Add(1)
	e, err := decodeEntry(line)
	if e.cursor != "" {
		s.journal.cursor = e.cursor
	}
	switch {
	case err != nil:
		c.base.Problem("journal entry %.60q: %v", line, err)
		return
	case !e.kernel():
		if kernlog.LooksLikeLogLine(e.msg) {
			c.unverified.Add(1)
		} else {
			c.base.Ignored.Add(1)
		}
		return
	}
	ok, err := s.parser.ParseMessage(e.msg, e.time, p)
	switch {
	case err != nil:
		c.base.Problem("journal entry %s: %v", e.cursor, err)
	case ok:
		c.base.Probes.Add(1)
		out(p)
	default:
		c.base.Ignored.Add(1)
	}
}

// entry is what we read of a journal entry. journalctl -o json writes every
// value as a string, as an array of byte values when it is not valid UTF-8,
// as an array of those when the field occurs more than once in the entry,
// and as null when it is over 4 KiB and --all was not given.
type entry struct {
	transport, facility, cursor string
	msg                         []byte
	time                        time.Time
}

// kernel reports whether the kernel logged the entry: journald sets
// _TRANSPORT itself (user-supplied fields starting with "_" are dropped),
// and gives records that user space wrote to /dev/kmsg their own facility.
func (e *entry) kernel() bool { return e.transport == "kernel" && e.facility == "0" }

func decodeEntry(line []byte) (entry, error) {
	var raw struct {
		Transport json.RawMessage `json:"_TRANSPORT"`
		Facility  json.RawMessage `json:"SYSLOG_FACILITY"`
		Message   json.RawMessage `json:"MESSAGE"`
		Realtime  json.RawMessage `json:"__REALTIME_TIMESTAMP"`
		Cursor    json.RawMessage `json:"__CURSOR"`
	}
	var e entry
	if err := json.Unmarshal(line, &raw); err != nil {
		return e, err
	}
	e.cursor, _ = jsonString(raw.Cursor)
	e.transport, _ = jsonString(raw.Transport)
	e.facility, _ = jsonString(raw.Facility)
	var err error
	if e.msg, err = jsonBytes(raw.Message); err != nil {
		return e, fmt.Errorf("MESSAGE: %w", err)
	}
	us, _ := jsonString(raw.Realtime)
	usec, err := strconv.ParseInt(us, 10, 64)
	if err != nil || usec <= 0 {
		return e, fmt.Errorf("__REALTIME_TIMESTAMP %q is not a time", raw.Realtime)
	}
	e.time = time.UnixMicro(usec)
	return e, nil
}

// jsonString reads a value that is a single string.
func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}

// jsonBytes reads a value that is a string or an array of byte values.
func jsonBytes(raw json.RawMessage) ([]byte, error) {
	switch {
	case len(raw) == 0:
		return nil, errors.New("missing")
	case raw[0] == '"':
		var s string
		err := json.Unmarshal(raw, &s)
		return []byte(s), err
	case raw[0] == '[':
		var v []int
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, errors.New("not a string or an array of bytes (a field given twice?)")
		}
		b := make([]byte, len(v))
		for i, x := range v {
			if x < 0 || x > 255 {
				return nil, fmt.Errorf("byte value %d", x)
			}
			b[i] = byte(x)
		}
		return b, nil
	}
	return nil, fmt.Errorf("%.20s is not a string or an array of bytes", raw)
}

// lastBytes keeps the last 512 bytes written to it: journalctl's complaint.
type lastBytes struct {
	mu  sync.Mutex
	buf []byte
}

const lastBytesMax = 512

func (l *lastBytes) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	if len(l.buf) > lastBytesMax {
		l.buf = append(l.buf[:0], l.buf[len(l.buf)-lastBytesMax:]...)
	}
	return len(b), nil
}

func (l *lastBytes) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]byte(nil), l.buf...)
}
