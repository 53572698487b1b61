package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaultParses(t *testing.T) {
	c, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	if c.StateDir != "/var/lib/scanwarden" || c.Policy.BanTime.D() != time.Hour || c.Policy.Escalation.Period.D() != 7*24*time.Hour {
		t.Fatalf("%+v", c)
	}
	if dc := c.DetectConfig(); dc.Validate() != nil {
		t.Fatal("default detect config invalid")
	}
	if f := c.Flows; f.Enabled != "auto" || f.Keep.D() != 180*24*time.Hour || f.Partition.D() != 24*time.Hour || c.FlowsDir() != "/var/lib/scanwarden/flows" {
		t.Errorf("flows defaults: %+v in %s", f, c.FlowsDir())
	}
}

func TestOverlay(t *testing.T) {
	c, err := Parse([]byte("policy:\n  allow: [10.0.0.0/8, 192.0.2.7, 2001:db8::/32]\n  ban_time: 2d\ndetect:\n  sensitivity: high\n"), "my.yaml")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	got := Prefixes(c.Policy.Allow)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("allow[%d] = %v, want %v", i, got[i], want[i])
		}
	}
	if c.Policy.BanTime.D() != 48*time.Hour || c.Detect.Sensitivity != "high" || c.Log.Format != "text" {
		t.Fatalf("%+v", c)
	}
}

func TestErrorsNameFileAndLine(t *testing.T) {
	for _, tc := range []struct {
		yaml, want string
	}{
		{"policy:\n  alow: []\n", "my.yaml:2: unknown key \"alow\""},
		{"log:\n  format: text\n  colour: red\n", "my.yaml:3: unknown key \"colour\""},
		{"policy:\n  allow:\n    - 10.0.0.0/33\n", "my.yaml:3: bad prefix"},
		{"policy:\n  ban_time: forever\n", "my.yaml:2: bad duration"},
		{"detect:\n  sensitivity: paranoid\n", "my.yaml:2: detect.sensitivity: \"paranoid\" is not one of low, medium, high"},
		{"detect:\n  theta1: 0.9\n", "theta1 (0.9) must be below theta0"},
		{"policy:\n  max_bans_per_minute: 0\n", "my.yaml:2: policy.max_bans_per_minute"},
		{"detect: [1, 2\n", "my.yaml"},
		{"policy:\n  allow:\n    - fe80::1%eth0\n", "zones are not allowed"},
		{"flows:\n  enabled: yes\n", "my.yaml:2: flows.enabled: \"yes\" is not auto, on or off"},
		{"flows:\n  dir: flows\n", "my.yaml:2: flows.dir: \"flows\" is not an absolute path"},
		{"flows:\n  partition: 7h\n", "my.yaml:2: flows.partition: 7h0m0s: must be between 1h and 7d"},
		{"flows:\n  partition: 24h\n  keep: 1h\n", "my.yaml:3: flows.keep: 1h0m0s is shorter than one partition"},
	} {
		_, err := Parse([]byte(tc.yaml), "my.yaml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.yaml, err, tc.want)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !os.IsNotExist(err) {
		t.Fatalf("got %v", err)
	}
}

func TestDefaultIsAnnotatedAndComplete(t *testing.T) {
	d := string(Default())
	for _, key := range []string{"state_dir", "socket_group", "theta0", "ban_time", "permanent_after", "max_bans_per_minute", "remove_on_stop", "retention", "decoys"} {
		if !strings.Contains(d, key+":") {
			t.Errorf("default lacks %s", key)
		}
	}
	if strings.Count(d, "#") < 30 {
		t.Error("default is not annotated")
	}
}

func TestPortLists(t *testing.T) {
	c, err := Parse([]byte("bait:\n  tcp: [1, 11, \"6660-6670\", 31337]\n  udp: \"1,7,9, 66-67\"\n"), "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Bait.TCP.Ports(); len(got) != 14 || got[0] != 1 || got[13] != 31337 || !c.Bait.TCP.Contains(6665) || c.Bait.TCP.Contains(6671) {
		t.Fatalf("tcp %v", got)
	}
	if got := c.Bait.UDP.Ports(); len(got) != 5 {
		t.Fatalf("udp %v", got)
	}
	for _, bad := range []string{"bait:\n  tcp: [0]\n", "bait:\n  tcp: [\"9-3\"]\n", "bait:\n  tcp: [70000]\n", "bait:\n  udp: \"1,x\"\n"} {
		if _, err := Parse([]byte(bad), "p.yaml"); err == nil || !strings.Contains(err.Error(), "p.yaml:") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestHookChecks(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"hooks:\n  - command: [notify]\n", "absolute path"},
		{"hooks:\n  - command: []\n", "must name a program"},
		{"hooks:\n  - command: [/bin/true]\n    on: [finding]\n", "not ban or unban"},
		{"hooks:\n  - command: [/bin/true]\n    order: first\n", "not before or after"},
		{"hooks:\n  - command: [/bin/true]\n    colour: red\n", "unknown key"},
	} {
		if _, err := Parse([]byte(tc.yaml), "h.yaml"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	if _, err := Parse([]byte("hooks:\n  - command: [/usr/bin/logger, \"$TARGET$\"]\n    on: [ban, unban]\n    order: before\n    timeout: 5s\n"), "h.yaml"); err != nil {
		t.Fatal(err)
	}
}
