package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/scanwarden/scanwarden/internal/atomicfile"
	"github.com/scanwarden/scanwarden/internal/flowlog"
)

// The connection log's archive commands: list partitions, export closed
// ones compressed for an off-box archive, import an export back for
// querying.

func newFlowsPartitionsCmd(ff *flowsFlags) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "partitions",
		Short: "List the connection log's partitions: period, flows, size, closed",
		Long: `Partitions lists the connection log's partition files, oldest first: the
period each holds (flows are placed by when they ended, in UTC), its flows,
its size on disk and whether it is closed (no more flows will be written to
it; only a closed partition can be exported). Retention (flows.keep) deletes
whole partitions.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			lg, err := ff.open()
			if err != nil {
				return err
			}
			defer lg.Close()
			parts, err := lg.Partitions()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				for _, p := range parts {
					if err := enc.Encode(map[string]any{"name": p.Name, "start": p.Start.UTC(), "end": p.End.UTC(),
						"flows": p.Flows, "bytes": p.Bytes, "closed": p.Closed}); err != nil {
						return err
					}
				}
				return nil
			}
			if len(parts) == 0 {
				fmt.Fprintf(out, "no partitions in %s\n", lg.Dir())
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSTART (UTC)\tEND (UTC)\tFLOWS\tBYTES\tB/FLOW\tCLOSED")
			for _, p := range parts {
				per := "-"
				if p.Flows > 0 {
					per = fmt.Sprintf("%.1f", float64(p.Bytes)/float64(p.Flows))
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%v\n", p.Name, p.Start.UTC().Format("2006-01-02 15:04"),
					p.End.UTC().Format("2006-01-02 15:04"), p.Flows, p.Bytes, per, p.Closed)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per line")
	return cmd
}

func newFlowsExportCmd(ff *flowsFlags) *cobra.Command {
	var outDir string
	var all bool
	cmd := &cobra.Command{
		Use:   "export [--all | PARTITION...] --out DIR",
		Short: "Write closed partitions as compressed files for an off-box archive",
		Long: `Export writes each named partition (as "flows partitions" lists them, e.g.
flows-20260618), or with --all every closed one, to DIR as NAME.swflows.zst:
a zstd stream readable without SQLite, with a trailer that tells a complete
export from a cut one. An export that exists already is left alone. The
partition being written cannot be exported until its period ends.

Bring an export back with "scanwarden flows import" into any directory and
query it with --flows-dir.`,
		Example: `  scanwarden flows export --all --out /srv/archive/flows
  scanwarden flows export flows-20260618 --out .`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if outDir == "" {
				return usagef("--out DIR is required")
			}
			if all == (len(args) > 0) {
				return usagef("name partitions or give --all, not both or neither")
			}
			lg, err := ff.open()
			if err != nil {
				return err
			}
			defer lg.Close()
			names := args
			if all {
				parts, err := lg.Partitions()
				if err != nil {
					return err
				}
				for _, p := range parts {
					if p.Closed {
						names = append(names, p.Name)
					}
				}
			}
			if err := os.MkdirAll(outDir, 0o750); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var failed int
			for _, name := range names {
				path, err := exportPartition(lg, name, outDir)
				switch {
				case errors.Is(err, os.ErrExist):
					fmt.Fprintf(out, "%s: %s exists, left alone\n", name, path)
				case err != nil:
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", name, err)
				default:
					fi, _ := os.Stat(path)
					fmt.Fprintf(out, "%s: %s (%d bytes)\n", name, path, fi.Size())
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d partitions not exported", failed, len(names))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&outDir, "out", "o", "", "directory to write the exports to")
	cmd.Flags().BoolVar(&all, "all", false, "export every closed partition")
	return cmd
}

// exportSuffix names an export file.
const exportSuffix = ".swflows.zst"

// exportPartition writes one export to dir, atomically: a failed or
// interrupted export leaves no file that looks whole.
func exportPartition(lg *flowlog.Log, name, dir string) (string, error) {
	path := filepath.Join(dir, filepath.Base(name)+exportSuffix)
	if _, err := os.Stat(path); err == nil {
		return path, os.ErrExist
	}
	return path, atomicfile.Write(path, 0o640, func(w io.Writer) error { return lg.Export(name, w) })
}

func newFlowsImportCmd(ff *flowsFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "import EXPORT...",
		Short: "Read exported partitions back into a connection-log directory",
		Long: `Import reads exports (from "scanwarden flows export") into the directory
given by --flows-dir (or the configuration's), creating it if needed, so
that flows and triage can query them. A damaged or cut export is refused
whole; a partition the directory already has is refused. Into the directory
a running daemon writes, import only partitions older than its newest.`,
		Example: `  scanwarden flows import --flows-dir /tmp/june /srv/archive/flows/flows-202606*.swflows.zst
  scanwarden flows --flows-dir /tmp/june --dst 198.51.100.103 --port 6881`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := ff.path()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			var failed int
			for _, path := range args {
				p, err := importExport(dir, path)
				if err != nil {
					failed++
					fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", path, err)
					continue
				}
				fmt.Fprintf(out, "%s: %s, %d flows, %s – %s UTC\n", path, p.Name, p.Flows,
					p.Start.UTC().Format(time.DateTime), p.End.UTC().Format(time.DateTime))
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d exports not imported", failed, len(args))
			}
			return nil
		},
	}
}

func importExport(dir, path string) (flowlog.Partition, error) {
	f, err := os.Open(path)
	if err != nil {
		return flowlog.Partition{}, err
	}
	defer f.Close()
	return flowlog.Import(dir, f)
}
