package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scanwarden/scanwarden/internal/api"
	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/report"
)

// defaultSocket is where the daemon listens unless configured otherwise.
const defaultSocket = "/run/scanwarden/scanwarden.sock"

// clientFlags are the flags every client command takes.
type clientFlags struct {
	socket  string
	json    bool
	timeout time.Duration
}

func (c *clientFlags) add(cmd *cobra.Command, withJSON bool) {
	cmd.Flags().StringVar(&c.socket, "socket", defaultSocket, "the daemon's control socket")
	cmd.Flags().DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for the daemon")
	if withJSON {
		cmd.Flags().BoolVar(&c.json, "json", false, "print JSON")
	}
}

func (c *clientFlags) call(req *api.Request, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	return api.Call(ctx, c.socket, req, out)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

func oneTarget(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef("%s needs exactly one IP address or CIDR prefix", cmd.Name())
	}
	if _, err := config.ParsePrefix(args[0]); err != nil {
		return usageError{err}
	}
	return nil
}

func newStatusCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show what the daemon is doing",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var st api.Status
			if err := cf.call(&api.Request{Cmd: api.CmdStatus}, &st); err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			ifs := "all"
			if len(st.Interfaces) > 0 {
				ifs = strings.Join(st.Interfaces, ", ")
			}
			mode := "detecting and blocking"
			if st.DryRun {
				mode = "dry run: detecting only, blocking nothing"
			}
			fmt.Fprintf(w, "scanwarden %s\tpid %d, up %s, %s\n", st.Version, st.PID, st.Uptime, mode)
			fmt.Fprintf(w, "firewall\t%s\n", st.Firewall)
			if !st.PacketSensor {
				ifs = "none: the packet sensor is off (sensor.packet)"
			}
			fmt.Fprintf(w, "interfaces\t%s\n", ifs)
			fmt.Fprintf(w, "active bans\t%d\n", st.ActiveBans)
			fmt.Fprintf(w, "packets\t%d seen, %d probes, %d dropped by the kernel before we saw them\n", st.Sensor.Packets, st.Sensor.Probes, st.Sensor.KernelDrops)
			fmt.Fprintf(w, "not analysed\t%d from ignored sources, %d from banned sources\n", st.Sensor.Ignored, st.Sensor.WhileBanned)
			fmt.Fprintf(w, "detector\t%d sources tracked (cap %d), %d attempts, %d retransmissions folded, %d evicted\n", st.Sources, st.MaxSources, st.Detector.Attempts, st.Detector.Retransmits, st.Detector.Evicted)
			fmt.Fprintf(w, "decisions\t%d findings, %d bans, %d not acted upon (%d over the rate cap)\n", st.Detector.Findings, st.Decisions.Bans, st.Decisions.NotActed, st.Decisions.RateCapped)
			fmt.Fprintf(w, "never blocked\town %s; gateways %s; nameservers %s; SSH peers %s; allow %s\n",
				list(st.Guards.Addresses), list(st.Guards.Gateways), list(st.Guards.Nameservers), list(st.Guards.SSHPeers), list(st.Guards.Allow))
			for _, p := range st.Parts {
				line := p.Summary
				if p.Problem != "" {
					line += "; problem: " + report.Safe(p.Problem)
				}
				fmt.Fprintf(w, "%s\t%s\n", p.Name, line)
			}
			fmt.Fprintf(w, "listeners\t%d sockets\n", st.Listeners)
			fmt.Fprintf(w, "memory\t%.1f MiB heap\n", float64(st.HeapBytes)/(1<<20))
			fmt.Fprintf(w, "state\t%s\n", st.StateDir)
			for _, n := range st.Notes {
				fmt.Fprintf(w, "note\t%s\n", n)
			}
			return w.Flush()
		},
	}
	cf.add(cmd, true)
	return cmd
}

func list(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

func newListCmd() *cobra.Command {
	var (
		cf       clientFlags
		outbound bool
		since    string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List active bans (--outbound: scans this host or its NAT clients made)",
		Long: `List the bans in force.

With --outbound, list instead the scans this host made (outbound, with the
process behind each) or a client behind its NAT made (forwarded, with the
client's address and MAC), in the last day (--since): they are reported,
never banned, and restricted only as outbound.response says.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if outbound {
				return listOutbound(cmd, &cf, since)
			}
			var bans []api.Ban
			if err := cf.call(&api.Request{Cmd: api.CmdList}, &bans); err != nil {
				return err
			}
			if cf.json {
				if bans == nil {
					bans = []api.Ban{}
				}
				return printJSON(cmd.OutOrStdout(), bans)
			}
			if len(bans) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "no active bans")
				return nil
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
			fmt.Fprintln(w, "TARGET\tREMAINING\tOFFENCE\tSINCE\tBY\tREASON")
			for _, b := range bans {
				warn := ""
				if !b.InKernel {
					warn = " [not in the kernel!]"
				}
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s%s\n", b.Target, b.Remaining, b.Offence, b.Created.Local().Format("2006-01-02 15:04"), b.By, report.Safe(b.Reason), warn)
			}
			return w.Flush()
		},
	}
	cf.add(cmd, true)
	cmd.Flags().BoolVar(&outbound, "outbound", false, "list outbound and NAT clients' scans instead of bans")
	cmd.Flags().StringVar(&since, "since", "24h", "with --outbound: how far back (e.g. 1h, 7d)")
	return cmd
}

func listOutbound(cmd *cobra.Command, cf *clientFlags, since string) error {
	var outs []api.Outbound
	if err := cf.call(&api.Request{Cmd: api.CmdOutbound, Since: since}, &outs); err != nil {
		return err
	}
	if cf.json {
		if outs == nil {
			outs = []api.Outbound{}
		}
		return printJSON(cmd.OutOrStdout(), outs)
	}
	if len(outs) == 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "no outbound scans in the last %s\n", since)
		return nil
	}
	w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "SOURCE\tDIRECTION\tVERDICT\tTYPE\tPORTS\tHOSTS\tLAST SEEN\tWHO\tRESPONSE")
	for _, o := range outs {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\n", o.Src, o.Direction, o.Verdict, report.Safe(o.ScanType), o.Ports, o.Hosts,
			o.LastSeen, report.Safe(o.Who), report.Safe(o.Response))
	}
	return w.Flush()
}

func newBanCmd() *cobra.Command {
	var (
		cf       clientFlags
		dur, why string
	)
	cmd := &cobra.Command{
		Use:   "ban IP|CIDR",
		Short: "Ban an address or prefix by hand",
		Long: `Ban an address or prefix now. The ban expires after --for (default: the
configured ban_time); --for permanent never expires. Addresses the daemon
never blocks (this host, its gateways and nameservers, live SSH peers) are
refused, also inside a prefix.`,
		Example: "  scanwarden ban 203.0.113.9 --for 7d --reason \"abuse report 4711\"\n  scanwarden ban 2001:db8:bad::/48 --for permanent",
		Args:    oneTarget,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.BanResult
			if err := cf.call(&api.Request{Cmd: api.CmdBan, Target: args[0], For: dur, Reason: why}, &res); err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\nundo: %s\n", res.Message, res.Undo)
			return nil
		},
	}
	cmd.Flags().StringVar(&dur, "for", "", "how long: 90m, 12h, 7d, or permanent (default: the configured ban_time)")
	cmd.Flags().StringVar(&why, "reason", "", "why, for the record")
	cf.add(cmd, true)
	return cmd
}

func newUnbanCmd() *cobra.Command {
	var (
		cf  clientFlags
		why string
	)
	cmd := &cobra.Command{
		Use:   "unban IP|CIDR",
		Short: "Lift a ban (and any ban inside a prefix)",
		Args:  oneTarget,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.BanResult
			if err := cf.call(&api.Request{Cmd: api.CmdUnban, Target: args[0], Reason: why}, &res); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Message)
			return nil
		},
	}
	cmd.Flags().StringVar(&why, "reason", "", "why, for the record")
	cf.add(cmd, false)
	return cmd
}

func newAllowCmd() *cobra.Command {
	var (
		cf  clientFlags
		why string
	)
	cmd := &cobra.Command{
		Use:   "allow IP|CIDR",
		Short: "Never ban an address or prefix (and lift its bans)",
		Args:  oneTarget,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.BanResult
			if err := cf.call(&api.Request{Cmd: api.CmdAllow, Target: args[0], Reason: why}, &res); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\nundo: %s\n", res.Message, res.Undo)
			return nil
		},
	}
	cmd.Flags().StringVar(&why, "reason", "", "why, for the record")
	cf.add(cmd, false)
	return cmd
}

func newUnallowCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "unallow IP|CIDR",
		Short: "Remove a run-time allow-list entry",
		Args:  oneTarget,
		RunE: func(cmd *cobra.Command, args []string) error {
			var res api.BanResult
			if err := cf.call(&api.Request{Cmd: api.CmdUnallow, Target: args[0]}, &res); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Message)
			return nil
		},
	}
	cf.add(cmd, false)
	return cmd
}

func oneAddr(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef("%s needs exactly one IP address", cmd.Name())
	}
	if p, err := config.ParsePrefix(args[0]); err != nil || !p.IsSingleIP() {
		return usagef("%q is not an IP address", args[0])
	}
	return nil
}

func newExplainCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "explain IP",
		Short: "Why an address was (or was not) blocked, and how to undo it",
		Args:  oneAddr,
		RunE: func(cmd *cobra.Command, args []string) error {
			var ex api.Explain
			if err := cf.call(&api.Request{Cmd: api.CmdExplain, Target: args[0]}, &ex); err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), ex)
			}
			writeExplain(cmd.OutOrStdout(), &ex)
			return nil
		},
	}
	cf.add(cmd, true)
	return cmd
}

func writeExplain(w io.Writer, ex *api.Explain) {
	if ex.Country != "" {
		fmt.Fprintf(w, "%s (country %s)\n", ex.Address, ex.Country)
	} else {
		fmt.Fprintf(w, "%s\n", ex.Address)
	}
	switch {
	case ex.Ban != nil:
		fmt.Fprintf(w, "  BANNED (%s left, offence %d, by %s, since %s)\n", ex.Ban.Remaining, ex.Ban.Offence, ex.Ban.By, ex.Ban.Created.Local().Format(time.RFC3339))
		fmt.Fprintf(w, "  why: %s\n", report.Safe(ex.Ban.Reason))
	case ex.Verdict != "":
		fmt.Fprintf(w, "  not banned; verdict %s\n", ex.Verdict)
	default:
		fmt.Fprintln(w, "  nothing known: no finding, no decision")
	}
	if ex.Allowed != "" {
		fmt.Fprintf(w, "  on the allow list (%s): never banned\n", ex.Allowed)
	}
	if ex.Ignored {
		fmt.Fprintln(w, "  on the ignore list: not analysed at all")
	}
	if ex.Guard != "" {
		fmt.Fprintf(w, "  never blocked: %s\n", ex.Guard)
	}
	if ex.Live != nil {
		fmt.Fprintln(w, "\n  now (live detector):")
		writeFinding(w, ex.Live)
	}
	for i := range ex.Findings {
		if i == 0 {
			fmt.Fprintln(w, "\n  findings (newest first):")
		}
		writeFinding(w, &ex.Findings[i])
	}
	for i, d := range ex.Decisions {
		if i == 0 {
			fmt.Fprintln(w, "\n  timeline (newest first):")
		}
		line := fmt.Sprintf("    %s  %-6s %s by %s", d.Created.Local().Format("2006-01-02 15:04:05"), d.Kind, d.Target, d.By)
		if !d.Expires.IsZero() {
			line += fmt.Sprintf(" until %s", d.Expires.Local().Format("2006-01-02 15:04:05"))
		} else if d.Kind == "ban" {
			line += " permanently"
		}
		if d.NotActed != "" {
			line += " — not acted upon: " + report.Safe(d.NotActed)
		}
		fmt.Fprintln(w, line)
	}
	if ex.Undo != "" {
		fmt.Fprintf(w, "\n  undo: %s\n", ex.Undo)
	}
}

func writeFinding(w io.Writer, f *report.JSONFinding) {
	fmt.Fprintf(w, "    %s  %s %s %s: %d ports, %d hosts, %d attempts (%d packets), first %s, last %s\n",
		f.ID, f.Verdict, f.ScanType, f.Class, f.Ports, f.Hosts, f.Attempts, f.Packets, f.FirstSeen, f.LastSeen)
	fmt.Fprintf(w, "      %s\n", report.Safe(f.Reason))
	e := f.Evidence
	if len(e.FailedPorts) > 0 || len(e.OpenPorts) > 0 {
		fmt.Fprintf(w, "      evidence: failed %s; open %s; score %d; outcomes %v\n", list(e.FailedPorts), list(e.OpenPorts), e.Score, e.Outcomes)
	}
}

func newGrepCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "grep IP",
		Short: "Every place an address appears: bans, lists, guards, history",
		Args:  oneAddr,
		RunE: func(cmd *cobra.Command, args []string) error {
			var g api.Grep
			if err := cf.call(&api.Request{Cmd: api.CmdGrep, Target: args[0]}, &g); err != nil {
				return err
			}
			if cf.json {
				return printJSON(cmd.OutOrStdout(), g)
			}
			w := cmd.OutOrStdout()
			n := 0
			for _, b := range g.Bans {
				fmt.Fprintf(w, "ban       %s (%s left): %s\n", b.Target, b.Remaining, report.Safe(b.Reason))
				n++
			}
			for _, e := range g.Allow {
				fmt.Fprintf(w, "allow     %s (%s) %s\n", e.Prefix, e.Origin, report.Safe(e.Comment))
				n++
			}
			for _, e := range g.Ignore {
				fmt.Fprintf(w, "ignore    %s (%s) %s\n", e.Prefix, e.Origin, report.Safe(e.Comment))
				n++
			}
			if g.Guard != "" {
				fmt.Fprintf(w, "guard     never blocked: %s\n", g.Guard)
				n++
			}
			if g.Country != "" {
				fmt.Fprintf(w, "country   %s\n", g.Country)
			}
			if g.Live != nil {
				fmt.Fprintf(w, "live      %s: %s\n", g.Live.Verdict, report.Safe(g.Live.Reason))
				n++
			}
			for _, d := range g.Decisions {
				extra := ""
				if d.NotActed != "" {
					extra = " (not acted upon: " + d.NotActed + ")"
				}
				fmt.Fprintf(w, "decision  %s %s %s by %s%s\n", d.Created.Local().Format("2006-01-02 15:04:05"), d.Kind, d.Target, d.By, report.Safe(extra))
				n++
			}
			for _, f := range g.Findings {
				fmt.Fprintf(w, "finding   %s %s: %s\n", f.LastSeen, f.Verdict, report.Safe(f.Reason))
				n++
			}
			if n == 0 {
				fmt.Fprintf(w, "%s appears nowhere\n", g.Address)
			}
			return nil
		},
	}
	cf.add(cmd, true)
	return cmd
}

func newFindingsCmd() *cobra.Command {
	var (
		cf    clientFlags
		since string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "findings",
		Short: "Recent findings, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := config.ParseDuration(since); err != nil {
				return usageError{fmt.Errorf("--since: %w", err)}
			}
			var fs []report.JSONFinding
			if err := cf.call(&api.Request{Cmd: api.CmdFindings, Since: since, Limit: limit}, &fs); err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if cf.json {
				enc := json.NewEncoder(w)
				enc.SetEscapeHTML(false)
				for _, f := range fs {
					if err := enc.Encode(f); err != nil {
						return err
					}
				}
				return nil
			}
			if len(fs) == 0 {
				fmt.Fprintf(w, "no findings in the last %s\n", since)
				return nil
			}
			tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
			fmt.Fprintln(tw, "LAST SEEN\tSOURCE\tDIRECTION\tVERDICT\tTYPE\tCLASS\tREASON")
			for _, f := range fs {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.LastSeen, f.Src, f.Direction, f.Verdict, f.ScanType, f.Class, report.Safe(f.Reason))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&since, "since", "24h", "how far back (90m, 24h, 7d)")
	cmd.Flags().IntVar(&limit, "limit", 1000, "at most this many")
	cf.add(cmd, true)
	return cmd
}
