package triage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/scanwarden/scanwarden/internal/analyze"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/sensor"
)

// Lookup is the connection log as triage sees it.
type Lookup interface {
	// Conns returns logged connections whose outside view matches q: the
	// outside source address (and port when q.SrcPort != 0) is q.Src, the
	// destination is q.Dst (any destination when q.Dst is the zero Addr,
	// which triage sends when the reporter masked it; the port when
	// q.DstPort != 0), the protocol is q.Proto (any when 0), and the
	// connection's [Start, End] overlaps [q.Since, q.Until]. At most
	// q.Limit connections.
	Conns(ctx context.Context, q Query) ([]Conn, error)
}

// Query asks the connection log about one reported connection attempt.
type Query struct {
	Src          netip.Addr
	SrcPort      uint16 // 0: any
	Dst          netip.Addr
	DstPort      uint16 // 0: any
	Proto        uint8  // 0: any
	Since, Until time.Time
	Limit        int
}

// Conn is one logged connection.
type Conn struct {
	Start, End time.Time
	Proto      uint8
	// Client is the initiator before NAT: the internal client, or one of
	// our own addresses for a local process.
	Client  netip.AddrPort
	Outside netip.AddrPort // the initiator as seen outside (after NAT)
	Dst     netip.AddrPort
	Outcome string // established, refused, unanswered or unknown

	OrigPackets, ReplyPackets uint64

	PID, UID uint32
	Comm     string
	Iface    string
}

// Defaults.
const (
	// DefaultSkew is how far a report's time may be from the log's and
	// still match. A reporter's sensor that runs NTP agrees with us within
	// a second; one that does not drifts by seconds a day, so minutes
	// cover all but neglected clocks. Wider costs little when the report
	// gives source ports: a false match needs the same outside 4-tuple
	// again within the window, and Linux picks ephemeral ports at random
	// from about 28 000 and keeps a closed 4-tuple in TIME_WAIT for 60 s.
	// Time zone mistakes are whole hours: Location and Offset are for
	// those, not the skew (and a failed search says so).
	DefaultSkew = 2 * time.Minute
	// DefaultMaxBytes bounds the input. Abuse notices are kilobytes; the
	// largest real reports (a day's DShield extract for a busy network)
	// are a few megabytes.
	DefaultMaxBytes = 32 << 20
	// DefaultMaxLookups bounds the attempts looked up in the log: a
	// thousand attributes any scan, and keeps a 65 535-port report from
	// sending 65 535 queries.
	DefaultMaxLookups = 1000
)

// Options configures a run. The zero value uses the defaults.
type Options struct {
	// Location is the zone of report timestamps that carry none. Nil means
	// UTC, which is what reporters mostly write (kernel log lines too: the
	// reporter's zone is not ours).
	Location *time.Location
	// Offset is how far the reporter's clock is ahead of ours; it is
	// subtracted from every report time.
	Offset time.Duration
	// Skew is the tolerance either side when matching report times to the
	// log; 0 means DefaultSkew, negative means exact.
	Skew time.Duration
	// Source is our address the report is about, used when the report
	// masks it ("x.x.x.x"). Optional.
	Source netip.Addr
	// Sensitivity is the detector's: low, medium (default) or high.
	Sensitivity string
	// MaxBytes bounds the input (after gzip is undone); 0 means
	// DefaultMaxBytes. Past it Run fails with ErrTooLarge.
	MaxBytes int64
	// MaxLookups bounds the attempts looked up; 0 means DefaultMaxLookups.
	MaxLookups int
	// Now is the current time, for the year of syslog stamps; nil means
	// time.Now.
	Now func() time.Time
}

func (o *Options) setDefaults() error {
	if o.Location == nil {
		o.Location = time.UTC
	}
	switch {
	case o.Skew == 0:
		o.Skew = DefaultSkew
	case o.Skew < 0:
		o.Skew = 0
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxLookups <= 0 {
		o.MaxLookups = DefaultMaxLookups
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sensitivity == "" {
		o.Sensitivity = string(detect.Medium)
	}
	if _, err := detect.ParseSensitivity(o.Sensitivity); err != nil {
		return err
	}
	if o.Source.IsValid() {
		o.Source = o.Source.Unmap()
	}
	return nil
}

// Errors callers may branch on.
var (
	// ErrNotText: the input is binary (a capture, an archive, garbage).
	ErrNotText = errors.New("not a text report")
	// ErrTooLarge: the input is larger than Options.MaxBytes.
	ErrTooLarge = errors.New("report too large")
	// ErrNoReportLines: the input is text, but no line of it is a report
	// or firewall log line.
	ErrNoReportLines = errors.New("no report lines found")
)

// Detector limits for triage. A report is about our own addresses, so it
// has few sources; these caps only bound the memory a hostile report can
// make us use (see analyze.DefaultOptions for the full-size ones).
const (
	maxSources  = 20_000
	maxAttempts = 32_768
)

// Run reads the report in r (name labels it in messages), classifies it,
// looks its attempts up in log (nil: no connection log) and returns the
// result.
func Run(ctx context.Context, r io.Reader, name string, log Lookup, opts Options) (*Result, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	rep, err := openReport(ctx, r, name, &opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, tooLarge(err, name, &opts)
	}
	aopts := analyze.DefaultOptions()
	aopts.Detect.Sensitivity = detect.Sensitivity(opts.Sensitivity)
	aopts.Detect.MaxSources = maxSources
	aopts.Detect.MaxAttempts = maxAttempts
	rep.window = aopts.Detect.RetransmitWindow
	ares := &analyze.Result{Inputs: []analyze.InputReport{{Name: rep.Name(), Stats: rep.Stats()}}}
	if err := analyze.RunSources([]sensor.Source{rep}, aopts, ares); err != nil {
		return nil, err
	}
	if err := ares.Inputs[0].Err; err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, tooLarge(err, name, &opts)
	}
	st := rep.Stats()
	if st.Probes.Load() == 0 {
		l := rep.lines()
		msg := fmt.Sprintf("%d lines read, %d ignored, %d malformed", l.Read, l.Ignored, l.Malformed)
		if l.FirstProblem != "" {
			msg += " (first: " + l.FirstProblem + ")"
		}
		if rep.norm.binaryLines > 0 {
			msg += fmt.Sprintf("; %d lines had control bytes or invalid UTF-8", rep.norm.binaryLines)
		}
		return nil, fmt.Errorf("%s: %w: %s; want lines such as \"2013-06-18 15:53:34\" 203.0.113.9/52218->198.51.100.103/6881, or firewall log lines with IN= SRC= DST= PROTO=", safe(name), ErrNoReportLines, msg)
	}
	res := newResult(rep, ares, &opts)
	if err := res.attribute(ctx, rep, log, &opts); err != nil {
		return nil, err
	}
	res.finish(rep, &opts)
	return res, nil
}

// tooLarge words ErrTooLarge with the limit; other errors pass.
func tooLarge(err error, name string, opts *Options) error {
	if errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("%s: %w: more than %d bytes, the limit (MaxBytes); nothing was concluded. Cut the report to the relevant lines or raise the limit", safe(name), ErrTooLarge, opts.MaxBytes)
	}
	return err
}
