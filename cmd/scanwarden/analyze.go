package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/scanwarden/scanwarden/internal/analyze"
	"github.com/scanwarden/scanwarden/internal/detect"
	"github.com/scanwarden/scanwarden/internal/report"
)

func newAnalyzeCmd() *cobra.Command {
	var (
		format, sensitivity, minVerdict, tz, boot string
		quiet                                     bool
	)
	opts := analyze.DefaultOptions()
	cmd := &cobra.Command{
		Use:   "analyze [flags] FILE...",
		Short: "Find port scans in captures, firewall logs and abuse reports",
		Long: `Analyze runs the detector over files, on the files' own timestamps, and
prints one verdict per source (scan, suspicious or benign) with its reason.

Each FILE may be a pcap or pcapng capture (any link type tcpdump writes on
Linux), kernel firewall log lines (iptables/ip6tables LOG or nftables log,
from syslog, journalctl -k or dmesg, with any prefix), or flow/abuse-report
lines ("YYYY-MM-DD HH:MM:SS" SRC/SPORT->DST/DPORT ... or SRC:SPORT -> DST:DPORT
with a timestamp). The format is read from the content; .gz files are
decompressed; "-" reads standard input. Several files are merged in time.

Exit status: 0 when the input was read (whether or not there were scans),
1 when an input could not be read, 2 on a usage error.`,
		Example: `  scanwarden analyze capture.pcap
  scanwarden analyze --format json /var/log/kern.log.1.gz
  journalctl -k --since today | scanwarden analyze -
  scanwarden analyze --sensitivity high --min-verdict suspicious report.txt`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("analyze needs at least one FILE (or - for standard input)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return usagef("--format must be text or json, not %q", format)
			}
			s, err := detect.ParseSensitivity(sensitivity)
			if err != nil {
				return usageError{fmt.Errorf("--sensitivity: %w", err)}
			}
			opts.Detect.Sensitivity = s
			min, ok := detect.ParseVerdict(minVerdict)
			if !ok {
				return usagef("--min-verdict must be benign, suspicious or scan, not %q", minVerdict)
			}
			if tz != "" {
				loc, err := time.LoadLocation(tz)
				if err != nil {
					return usagef("--tz %q: %v", tz, err)
				}
				opts.Input.Location = loc
			}
			if boot != "" {
				t, err := time.Parse(time.RFC3339, boot)
				if err != nil {
					return usagef("--boot-time wants RFC 3339 (2026-11-21T05:00:00Z): %v", err)
				}
				opts.Input.Boot = t
			}
			if err := opts.Detect.Validate(); err != nil {
				return usageError{err}
			}
			return runAnalyze(cmd.OutOrStdout(), cmd.ErrOrStderr(), args, opts, format, min, quiet)
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "text", "output format: text or json (one object per line)")
	f.StringVar(&sensitivity, "sensitivity", "medium", "low, medium or high: how much evidence a scan verdict needs")
	f.StringVar(&minVerdict, "min-verdict", "benign", "show only sources with this verdict or worse: benign, suspicious, scan")
	f.StringVar(&tz, "tz", "", "time zone for log and report stamps that carry none (default: local for kernel logs, UTC for reports)")
	f.StringVar(&boot, "boot-time", "", "boot time (RFC 3339) to turn dmesg's seconds-since-boot stamps into wall time")
	f.BoolVarP(&quiet, "quiet", "q", false, "do not print the summary of what was read to standard error")
	f.Float64Var(&opts.Detect.Theta0, "theta0", opts.Detect.Theta0, "sequential test: probability that a benign source's first contact succeeds")
	f.Float64Var(&opts.Detect.Theta1, "theta1", opts.Detect.Theta1, "sequential test: probability that a scanner's first contact succeeds")
	f.Float64Var(&opts.Detect.Alpha, "alpha", opts.Detect.Alpha, "sequential test: target false-positive rate")
	f.Float64Var(&opts.Detect.Beta, "beta", opts.Detect.Beta, "sequential test: target detection rate")
	f.DurationVar(&opts.Detect.AnswerTimeout, "answer-timeout", opts.Detect.AnswerTimeout, "how long an unanswered first contact waits before it counts as failed")
	f.DurationVar(&opts.Detect.RetransmitWindow, "retransmit-window", opts.Detect.RetransmitWindow, "how long a repeat of the same connection's first packet is a retransmission")
	f.IntVar(&opts.Detect.MaxSources, "max-sources", opts.Detect.MaxSources, "cap on sources tracked at once (memory bound)")
	return cmd
}

func runAnalyze(stdout, stderr io.Writer, files []string, opts analyze.Options, format string, min detect.Verdict, quiet bool) error {
	res, err := analyze.Run(files, opts)
	if err != nil {
		var oe *analyze.OpenError
		if errors.As(err, &oe) {
			return fmt.Errorf("cannot read %s: %w", oe.Name, stripName(oe))
		}
		return err
	}
	shown := res.Findings[:0:0]
	for _, f := range res.Findings {
		if f.Verdict >= min {
			shown = append(shown, f)
		}
	}
	if format == "json" {
		err = report.WriteJSON(stdout, shown)
	} else {
		err = report.WriteText(stdout, shown)
	}
	if err != nil {
		return err
	}
	if !quiet {
		for _, in := range res.Inputs {
			fmt.Fprintf(stderr, "%s (%s): %s\n", report.Safe(in.Name), in.Format, report.Safe(in.Stats.String()))
		}
		fmt.Fprintf(stderr, "%s\n", report.Counts(res.Findings))
		if res.DroppedBenign > 0 {
			fmt.Fprintf(stderr, "%d benign sources were evicted from tracking (source cap reached) and are not listed\n", res.DroppedBenign)
		}
	}
	if err := res.Err(); err != nil {
		fmt.Fprintf(stderr, "scanwarden: reading stopped early: %v\n", err)
		return silentError{code: exitFail}
	}
	return nil
}

// stripName avoids "cannot read x: x: ..." when the error already names the file.
func stripName(oe *analyze.OpenError) error {
	msg := oe.Err.Error()
	prefix := oe.Name + ": "
	if len(msg) > len(prefix) && msg[:len(prefix)] == prefix {
		return errors.New(msg[len(prefix):])
	}
	return oe.Err
}
