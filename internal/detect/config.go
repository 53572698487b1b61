package detect

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Sensitivity trades detection speed against false alarms. It sets how much
// weighted evidence a source needs, beyond the sequential test, before it is
// called a scan.
type Sensitivity string

// Sensitivities.
const (
	Low    Sensitivity = "low"
	Medium Sensitivity = "medium"
	High   Sensitivity = "high"
)

// ParseSensitivity validates s.
func ParseSensitivity(s string) (Sensitivity, error) {
	switch Sensitivity(s) {
	case Low, Medium, High:
		return Sensitivity(s), nil
	}
	return "", fmt.Errorf("unknown sensitivity %q (want low, medium or high)", s)
}

// Config tunes the detector. The zero value is not valid; start from
// DefaultConfig.
type Config struct {
	// Threshold Random Walk (Jung, Paxson, Berger, Balakrishnan: "Fast
	// Portscan Detection Using Sequential Hypothesis Testing", IEEE S&P
	// 2004). Theta0 is the chance a benign source's first contact succeeds,
	// Theta1 a scanner's; Alpha and Beta are the target false-positive and
	// detection probabilities. The paper's values, measured on two sites'
	// traces, are the defaults: 0.8, 0.2, 0.01, 0.99. With them each failed
	// first contact multiplies the likelihood ratio by 4 and each success by
	// 1/4; a source is a scanner at ratio 99, so four failures in a row with
	// no success decide.
	Theta0, Theta1 float64
	Alpha, Beta    float64

	Sensitivity Sensitivity

	// AnswerTimeout is how long a first contact may go unanswered before it
	// counts as failed (dropped or filtered). 3 s is the initial RTO of RFC
	// 1122 and longer than any RTT a scan cares about; a live sensor that
	// knows the listeners does not need to wait.
	AnswerTimeout time.Duration
	// RetransmitWindow is how long a repeated first packet on the same
	// 4-tuple (and same ISN where known) is a retransmission of the same
	// attempt, not a new one. Linux gives up on a SYN after 127 s with the
	// default tcp_syn_retries=6 (1+2+4+8+16+32+64 s); Windows after 21 s.
	RetransmitWindow time.Duration

	// MaxSources caps the sources tracked at once; when full, idle sources
	// with the least evidence are evicted first. About 200 bytes each for a
	// source with a few contacts (docs/benchmarks.md).
	MaxSources int
	// MaxAttempts caps the connection attempts remembered at once (for
	// answers and retransmissions). When full the oldest is resolved early.
	MaxAttempts int
	// MaxPairsPerSource caps exact tracking of one source's distinct
	// (host, port) contacts; past it counts become lower bounds.
	MaxPairsPerSource int

	// IdleForget drops a source with no evidence against it after this long
	// without traffic; SlowMemory keeps a source with evidence this long, so
	// a slow scan (one probe every few minutes) still adds up.
	IdleForget time.Duration
	SlowMemory time.Duration

	// PrivilegedWeight is the weight of a failed contact to a port below
	// 1024; other ports weigh 1. scanlogd uses 3 and 1.
	PrivilegedWeight int

	// DistributedWindow bounds in time the probes that make up one
	// distributed scan of a target.
	DistributedWindow time.Duration

	// BaitTrigger: a source whose bait contacts (attempts, not packets)
	// within BaitWindow of the first one counted exceed this number is a
	// scan, whatever else it did. 0 acts on the first contact, as
	// PortSentry's SCAN_TRIGGER=0 does; PortSentry counted in one global
	// ring of 50 events with no time limit, this is per source and timed.
	BaitTrigger int
	BaitWindow  time.Duration

	// Threshold is an lfd-style rule beside the sequential test: a source
	// with Attempts failed attempts (attempts, not packets: retransmissions
	// folded in) at DistinctPorts different ports or more within a sliding
	// Window is a scan. Attempts 0 turns it off. Port, when set, says which
	// ports count (CSF's PS_PORTS).
	Threshold Threshold
}

// Threshold configures the lfd-style rule.
type Threshold struct {
	Attempts      int
	DistinctPorts int
	Window        time.Duration
	Port          func(port uint16) bool
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Theta0:            0.8,
		Theta1:            0.2,
		Alpha:             0.01,
		Beta:              0.99,
		Sensitivity:       Medium,
		AnswerTimeout:     3 * time.Second,
		RetransmitWindow:  3 * time.Minute,
		MaxSources:        200_000,
		MaxAttempts:       1_000_000,
		MaxPairsPerSource: 65_536,
		IdleForget:        10 * time.Minute,
		SlowMemory:        24 * time.Hour,
		PrivilegedWeight:  3,
		DistributedWindow: 10 * time.Minute,
		BaitTrigger:       0,
		BaitWindow:        5 * time.Minute,
	}
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(c.Theta0 > 0 && c.Theta0 < 1, "theta0 must be between 0 and 1, got %v", c.Theta0)
	check(c.Theta1 > 0 && c.Theta1 < 1, "theta1 must be between 0 and 1, got %v", c.Theta1)
	check(c.Theta1 < c.Theta0, "theta1 (%v) must be below theta0 (%v): scanners succeed less often than benign sources", c.Theta1, c.Theta0)
	check(c.Alpha > 0 && c.Alpha < 1, "alpha must be between 0 and 1, got %v", c.Alpha)
	check(c.Beta > 0 && c.Beta < 1, "beta must be between 0 and 1, got %v", c.Beta)
	check(c.Alpha < c.Beta, "alpha (%v) must be below beta (%v)", c.Alpha, c.Beta)
	_, err := ParseSensitivity(string(c.Sensitivity))
	check(err == nil, "%v", err)
	check(c.AnswerTimeout > 0, "answer timeout must be positive")
	check(c.RetransmitWindow >= c.AnswerTimeout, "retransmit window must be at least the answer timeout")
	check(c.MaxSources >= 16, "max sources must be at least 16, got %d", c.MaxSources)
	check(c.MaxAttempts >= 16, "max attempts must be at least 16, got %d", c.MaxAttempts)
	check(c.MaxPairsPerSource >= 16, "max pairs per source must be at least 16, got %d", c.MaxPairsPerSource)
	check(c.IdleForget > 0 && c.SlowMemory >= c.IdleForget, "slow memory must be at least idle forget, and both positive")
	check(c.PrivilegedWeight >= 1, "privileged weight must be at least 1")
	check(c.DistributedWindow > 0, "distributed window must be positive")
	check(c.BaitTrigger >= 0 && c.BaitTrigger < 1<<15, "bait trigger must be between 0 and 32767")
	check(c.BaitWindow > 0, "bait window must be positive")
	check(c.Threshold.Attempts >= 0 && c.Threshold.Attempts <= 1<<16, "threshold attempts must be between 0 (off) and 65536")
	check(c.Threshold.Attempts == 0 || c.Threshold.DistinctPorts >= 1 && c.Threshold.Window > 0, "threshold needs distinct ports >= 1 and a positive window")
	return errors.Join(errs...)
}

// thresholds are the evidence levels a sensitivity asks for.
type thresholds struct {
	scanScore    int // weighted failed first contacts for a scan (with the sequential test)
	suspectScore int // for suspicious
	bigFailures  int // distinct failed first contacts that make a scan even without the test
	stealthScan  int // distinct ports probed with stealth packets for a scan
}

// Why these numbers: a privileged port weighs 3 (scanlogd), so at medium
// four failed privileged first contacts (score 12) together with the
// sequential test's verdict make a scan — what nmap's first probes (80, 23,
// 443, 21, 22, ...) produce — while a client that fails on one or two
// services and then succeeds never gets there. Twelve unprivileged ports
// are needed for the same call. bigFailures catches scanners that defeat the
// test by also hitting open ports.
func (c *Config) thresholds() thresholds {
	switch c.Sensitivity {
	case Low:
		return thresholds{scanScore: 30, suspectScore: 12, bigFailures: 100, stealthScan: 6}
	case High:
		return thresholds{scanScore: 6, suspectScore: 3, bigFailures: 25, stealthScan: 2}
	}
	return thresholds{scanScore: 12, suspectScore: 6, bigFailures: 50, stealthScan: 3}
}

// trw holds the sequential test's constants in log space.
type trw struct {
	fail, success float32 // log-ratio steps
	upper, lower  float32 // log(eta1), log(eta0)
}

func (c *Config) trw() trw {
	return trw{
		fail:    float32(math.Log((1 - c.Theta1) / (1 - c.Theta0))),
		success: float32(math.Log(c.Theta1 / c.Theta0)),
		upper:   float32(math.Log(c.Beta / c.Alpha)),
		lower:   float32(math.Log((1 - c.Beta) / (1 - c.Alpha))),
	}
}
