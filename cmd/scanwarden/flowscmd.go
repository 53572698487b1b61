package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/flowlog"
)

// flowsFlags are the flags shared by commands that read the connection
// log: where it is.
type flowsFlags struct {
	config, dir string
}

func (ff *flowsFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&ff.config, "config", "", "configuration file whose flows.dir (or state_dir) locates the log (default: built-in)")
	fs.StringVar(&ff.dir, "flows-dir", "", "the connection log's directory (overrides --config)")
}

// path is the log's directory.
func (ff *flowsFlags) path() (string, error) {
	if ff.dir != "" {
		return ff.dir, nil
	}
	cfg, err := config.Load(ff.config)
	if err != nil {
		return "", err
	}
	return cfg.FlowsDir(), nil
}

// open opens the log read-only; the daemon may be writing it.
func (ff *flowsFlags) open() (*flowlog.Log, error) {
	dir, err := ff.path()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no connection log in %s: the daemon writes one when flows.enabled is on (auto: on a router); give its directory with --flows-dir or --config", dir)
	}
	return flowlog.OpenReadOnly(dir)
}

func newFlowsCmd() *cobra.Command {
	var (
		ff                     flowsFlags
		src, dst, since, until string
		tz, proto              string
		port                   uint16
		limit                  int
		asJSON                 bool
	)
	cmd := &cobra.Command{
		Use:   "flows [flags]",
		Short: "Query the connection log: who connected where, when, behind NAT too",
		Long: `Flows lists connections from the connection log (flows: in the
configuration), newest partitions first within the window, oldest first in
each: start and end, protocol, the initiator (for a router's clients, the
internal address before NAT), the destination, the address and port the
connection left with when it was translated, its outcome (established,
refused: answered but never established, unanswered), packets and bytes each
way, the interface and, for this host's own connections, the process.

--src and --dst take an address or a prefix and match either side of the
NAT: --src 203.0.113.9 finds the connections that left with that public
address, and names the clients behind it. --port is the destination port.
--since and --until take a time ("2026-06-18 15:50", RFC 3339, a date) in
--tz (default: this machine's zone; a time with its own zone keeps it), or a
duration before now ("2h").

A connection is logged when it ends (an unanswered SYN when the kernel's
SYN_SENT timeout ends it, 2 minutes by default). Reading the log needs no
daemon: it is opened read-only.`,
		Example: `  scanwarden flows --dst 198.51.100.103 --port 6881 --since "2026-06-18 15:50" --until "2026-06-18 16:05" --tz UTC
  scanwarden flows --src 203.0.113.9 --since 2h --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			loc, err := loadZone(tz)
			if err != nil {
				return usageError{fmt.Errorf("--tz: %w", err)}
			}
			var f flowlog.Filter
			if f.Src, err = parsePrefixFlag(src); err != nil {
				return usageError{fmt.Errorf("--src: %w", err)}
			}
			if f.Dst, err = parsePrefixFlag(dst); err != nil {
				return usageError{fmt.Errorf("--dst: %w", err)}
			}
			now := time.Now()
			if f.Since, err = parseTimeFlag(since, loc, now); err != nil {
				return usageError{fmt.Errorf("--since: %w", err)}
			}
			if f.Until, err = parseTimeFlag(until, loc, now); err != nil {
				return usageError{fmt.Errorf("--until: %w", err)}
			}
			if !f.Since.IsZero() && !f.Until.IsZero() && f.Until.Before(f.Since) {
				return usagef("--until (%s) is before --since (%s)", f.Until.Format(time.RFC3339), f.Since.Format(time.RFC3339))
			}
			if f.Proto, err = parseProtoFlag(proto); err != nil {
				return usageError{fmt.Errorf("--proto: %w", err)}
			}
			if limit < 1 {
				return usagef("--limit must be at least 1")
			}
			f.Port, f.Limit = port, limit
			lg, err := ff.open()
			if err != nil {
				return err
			}
			defer lg.Close()
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				return lg.Query(cmd.Context(), f, func(fl *flowlog.Flow) error { return enc.Encode(flowJSONOf(fl)) })
			}
			return printFlows(cmd.Context(), out, lg, f, loc)
		},
	}
	ff.add(cmd.PersistentFlags()) // the archive subcommands share them
	cmd.AddCommand(newFlowsPartitionsCmd(&ff), newFlowsExportCmd(&ff), newFlowsImportCmd(&ff))
	cmd.Flags().StringVar(&src, "src", "", "initiator address or prefix (inside or outside the NAT)")
	cmd.Flags().StringVar(&dst, "dst", "", "destination address or prefix")
	cmd.Flags().Uint16Var(&port, "port", 0, "destination port")
	cmd.Flags().StringVar(&proto, "proto", "", "protocol: tcp, udp, icmp, icmpv6 or a number")
	cmd.Flags().StringVar(&since, "since", "", "connections still open at or after this time (a time, or a duration before now)")
	cmd.Flags().StringVar(&until, "until", "", "connections started at or before this time")
	cmd.Flags().StringVar(&tz, "tz", "Local", "time zone of --since/--until without one, and of the output")
	cmd.Flags().IntVar(&limit, "limit", 1000, "print at most this many connections")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

// flowJSON is a flow as `flows --json` prints it.
type flowJSON struct {
	Start        time.Time `json:"start"`
	End          time.Time `json:"end,omitzero"`
	Proto        string    `json:"proto"`
	Src          string    `json:"src"`
	Dst          string    `json:"dst"`
	NATSrc       string    `json:"nat_src,omitempty"`
	NATDst       string    `json:"nat_dst,omitempty"`
	Outcome      string    `json:"outcome"`
	OrigPackets  uint64    `json:"orig_packets"`
	OrigBytes    uint64    `json:"orig_bytes"`
	ReplyPackets uint64    `json:"reply_packets"`
	ReplyBytes   uint64    `json:"reply_bytes"`
	Iface        string    `json:"iface,omitempty"`
	PID          uint32    `json:"pid,omitempty"`
	UID          *uint32   `json:"uid,omitempty"`
	Comm         string    `json:"comm,omitempty"`
}

func flowJSONOf(f *flowlog.Flow) flowJSON {
	j := flowJSON{
		Start: f.Start.UTC(), End: f.End.UTC(), Proto: protoName(f.Proto), Src: f.Src.String(), Dst: f.Dst.String(),
		Outcome: f.Outcome.String(), OrigPackets: f.OrigPackets, OrigBytes: f.OrigBytes,
		ReplyPackets: f.ReplyPackets, ReplyBytes: f.ReplyBytes, Iface: f.Iface, PID: f.PID, Comm: f.Comm,
	}
	if f.NATSrc != f.Src || f.NATDst != f.Dst {
		j.NATSrc, j.NATDst = f.NATSrc.String(), f.NATDst.String()
	}
	if f.PID != 0 {
		uid := f.UID
		j.UID = &uid
	}
	return j
}

func printFlows(ctx context.Context, out io.Writer, lg *flowlog.Log, f flowlog.Filter, loc *time.Location) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "START\tEND\tPROTO\tSRC\tDST\tNAT (AS SEEN OUTSIDE)\tOUTCOME\tPACKETS\tBYTES\tIFACE\tPROCESS")
	n := 0
	err := lg.Query(ctx, f, func(fl *flowlog.Flow) error {
		n++
		nat := "-"
		if fl.NATSrc != fl.Src || fl.NATDst != fl.Dst {
			nat = fl.NATSrc.String() + " → " + fl.NATDst.String()
		}
		end := "open"
		if !fl.End.IsZero() {
			end = fl.End.In(loc).Format("15:04:05")
		}
		proc := "-"
		if fl.PID != 0 {
			proc = fmt.Sprintf("%s[%d] uid %d", strconv.Quote(fl.Comm), fl.PID, fl.UID)
		}
		iface := fl.Iface
		if iface == "" {
			iface = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d/%d\t%d/%d\t%s\t%s\n",
			fl.Start.In(loc).Format("2006-01-02 15:04:05 MST"), end, protoName(fl.Proto), fl.Src, fl.Dst, nat,
			fl.Outcome, fl.OrigPackets, fl.ReplyPackets, fl.OrigBytes, fl.ReplyBytes, safeText(iface), proc)
		return nil
	})
	if ferr := tw.Flush(); err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintln(out, "no connections match")
	} else if n == f.Limit {
		fmt.Fprintf(out, "(stopped at --limit %d)\n", f.Limit)
	}
	return nil
}

// safeText is s with anything but printable ASCII escaped, for a table
// cell: interface names and process names are chosen by whoever made them.
func safeText(s string) string {
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

func protoName(p uint8) string {
	switch p {
	case 6:
		return "tcp"
	case 17:
		return "udp"
	case 1:
		return "icmp"
	case 58:
		return "icmpv6"
	}
	return strconv.Itoa(int(p))
}

func parseProtoFlag(s string) (uint8, error) {
	switch strings.ToLower(s) {
	case "":
		return 0, nil
	case "tcp":
		return 6, nil
	case "udp":
		return 17, nil
	case "icmp":
		return 1, nil
	case "icmpv6", "ipv6-icmp":
		return 58, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not tcp, udp, icmp, icmpv6 or a protocol number 1-255", s)
	}
	return uint8(n), nil
}

// parsePrefixFlag reads an address (as a single-address prefix) or a
// prefix; "" is the zero prefix (any).
func parsePrefixFlag(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func loadZone(name string) (*time.Location, error) {
	switch name {
	case "", "Local", "local":
		return time.Local, nil
	case "UTC", "utc", "Z":
		return time.UTC, nil
	}
	return time.LoadLocation(name)
}

// timeLayouts are the forms --since and --until take, besides durations.
var timeLayouts = []string{
	time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02",
}

// parseTimeFlag reads a time in loc, or a duration before now; "" is the
// zero time (open).
func parseTimeFlag(s string, loc *time.Location, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := config.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a negative duration", s)
		}
		return now.Add(-d), nil
	}
	for _, l := range timeLayouts {
		if t, err := time.ParseInLocation(l, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is neither a time (2026-06-18 15:50, RFC 3339, 2026-06-18) nor a duration (2h)", s)
}
