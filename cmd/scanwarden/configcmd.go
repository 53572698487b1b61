package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/scanwarden/scanwarden/internal/config"
	"github.com/scanwarden/scanwarden/internal/enforce/nft"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a configuration file, or print the annotated default",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Check a configuration file; exit 1 with every error (file:line) if it is broken",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("config check needs exactly one FILE")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := config.Load(args[0]); err != nil {
				if os.IsNotExist(err) {
					return fmt.Errorf("%s: no such file", args[0])
				}
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: ok\n", args[0])
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "default",
		Short: "Print the full annotated default configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(config.Default())
			return err
		},
	})
	return cmd
}

func newFirewallCmd() *cobra.Command {
	var cfgPath, table string
	cmd := &cobra.Command{
		Use:   "firewall",
		Short: "Manage scanwarden's nftables table",
	}
	remove := &cobra.Command{
		Use:   "remove",
		Short: "Delete scanwarden's nftables table (every ban with it); nothing else is touched",
		Long: `Delete the table inet scanwarden (or the configured one) with its sets and
rules. Other tables are never touched. Stop the daemon first, or it sets the
table up again at its next start; the bans stay recorded in the store and
are restored then.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if table == "" {
				cfg, err := config.Load(cfgPath)
				if err != nil {
					return err
				}
				table = cfg.Firewall.Table
			}
			e, err := nft.New(nft.Config{Table: table})
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.Teardown(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "removed table inet %s\n", table)
			return nil
		},
	}
	remove.Flags().StringVar(&cfgPath, "config", "", "configuration file (for firewall.table)")
	remove.Flags().StringVar(&table, "table", "", "table name (default: from the configuration, scanwarden)")
	cmd.AddCommand(remove)
	return cmd
}
