// Package config reads scanwarden's YAML configuration: an annotated default
// is embedded in the binary (so no file is needed), and a user's file
// overlays it. Decoding is strict: an unknown key, a bad address or duration
// is an error naming the file and line.
//
// It knows the shape of the settings, not what the daemon does with them.
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/scanwarden/scanwarden/internal/detect"
)

//go:embed default.yaml
var defaultYAML []byte

// Default returns the annotated default configuration, as `scanwarden
// config default` prints it.
func Default() []byte { return bytes.Clone(defaultYAML) }

// Config is the whole configuration.
type Config struct {
	StateDir    string    `yaml:"state_dir"`
	Socket      string    `yaml:"socket"`
	SocketGroup string    `yaml:"socket_group"`
	Log         Log       `yaml:"log"`
	Sensor      Sensor    `yaml:"sensor"`
	Detect      Detect    `yaml:"detect"`
	Policy      Policy    `yaml:"policy"`
	Firewall    Firewall  `yaml:"firewall"`
	Store       Store     `yaml:"store"`
	Bait        Bait      `yaml:"bait"`
	Hooks       []Hook    `yaml:"hooks"`
	Enforcers   Enforcers `yaml:"enforcers"`
	Compat      Compat    `yaml:"compat"`
	Lists       Lists     `yaml:"lists"`
	Alerts      Alerts    `yaml:"alerts"`
	Outbound    Outbound  `yaml:"outbound"`
	Flows       Flows     `yaml:"flows"`
}

// Flows configures the connection log: one record per connection
// conntrack saw end, with its NAT mapping, kept in time partitions.
type Flows struct {
	Enabled   string   `yaml:"enabled"` // auto (when forwarding), on, off
	Dir       string   `yaml:"dir"`     // "" = state_dir/flows
	Keep      Duration `yaml:"keep"`
	Partition Duration `yaml:"partition"`
	// Sysctls lets the daemon turn on conntrack accounting and timestamps
	// (net.netfilter.nf_conntrack_acct, nf_conntrack_timestamp).
	Sysctls bool `yaml:"sysctls"`
}

// FlowsDir is where the connection log lives.
func (c *Config) FlowsDir() string {
	if c.Flows.Dir != "" {
		return c.Flows.Dir
	}
	return filepath.Join(c.StateDir, "flows")
}

// Outbound configures the watch on this host's own connection attempts
// and, on a router, its clients' forwarded ones.
type Outbound struct {
	Enabled   bool             `yaml:"enabled"`
	Attribute bool             `yaml:"attribute"`
	EBPF      string           `yaml:"ebpf"`
	Conntrack string           `yaml:"conntrack"`
	Response  string           `yaml:"response"`
	Restrict  string           `yaml:"restrict"`
	For       Duration         `yaml:"for"`
	Throttle  OutboundThrottle `yaml:"throttle"`
}

// OutboundThrottle is the new-connection rate a throttled user, cgroup or
// client keeps.
type OutboundThrottle struct {
	Rate  uint32 `yaml:"rate"`
	Burst uint32 `yaml:"burst"`
}

// Lists configures dynamic allow entries, blocklist feeds and countries.
type Lists struct {
	AllowHosts     []string `yaml:"allow_hosts"`
	DynDNSInterval Duration `yaml:"dyndns_interval"`
	Feeds          []Feed   `yaml:"feeds"`
	GeoIP          GeoIP    `yaml:"geoip"`
}

// Feed is a blocklist feed.
type Feed struct {
	Name     string   `yaml:"name"`
	URL      string   `yaml:"url"`
	File     string   `yaml:"file"`
	Interval Duration `yaml:"interval"`
	Max      int      `yaml:"max"`
}

// GeoIP configures country lists.
type GeoIP struct {
	Database string   `yaml:"database"`
	Deny     []string `yaml:"deny"`
	Allow    []string `yaml:"allow"`
}

// Alerts configures e-mail and webhook alerts.
type Alerts struct {
	On         []string  `yaml:"on"`
	Digest     Duration  `yaml:"digest"`
	MaxPerHour int       `yaml:"max_per_hour"`
	Email      Email     `yaml:"email"`
	Webhook    Webhook   `yaml:"webhook"`
	Templates  Templates `yaml:"templates"`
}

// Email configures SMTP alerts.
type Email struct {
	Enabled      bool     `yaml:"enabled"`
	To           []string `yaml:"to"`
	From         string   `yaml:"from"`
	Host         string   `yaml:"host"`
	Port         int      `yaml:"port"`
	Security     string   `yaml:"security"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
}

// Webhook configures JSON POST alerts.
type Webhook struct {
	Enabled bool              `yaml:"enabled"`
	URL     string            `yaml:"url"`
	Headers map[string]string `yaml:"headers"`
}

// Templates names files that replace the built-in alert texts.
type Templates struct {
	Subject string `yaml:"subject"`
	Body    string `yaml:"body"`
}

// Bait configures bait ports.
type Bait struct {
	TCP      PortList `yaml:"tcp"`
	UDP      PortList `yaml:"udp"`
	Banner   string   `yaml:"banner"`
	Advanced Advanced `yaml:"advanced"`
	Trigger  int      `yaml:"trigger"`
	Window   Duration `yaml:"window"`
}

// Advanced configures advanced (listener-less) bait mode.
type Advanced struct {
	Enabled    bool     `yaml:"enabled"`
	TCPBelow   int      `yaml:"tcp_below"`
	UDPBelow   int      `yaml:"udp_below"`
	ExcludeTCP PortList `yaml:"exclude_tcp"`
	ExcludeUDP PortList `yaml:"exclude_udp"`
}

// Hook is a command run on bans and unbans.
type Hook struct {
	Command []string `yaml:"command"`
	On      []string `yaml:"on"`
	Order   string   `yaml:"order"`
	Timeout Duration `yaml:"timeout"`
}

// Enforcers configures the enforcers besides nftables.
type Enforcers struct {
	HostsDeny      HostsDeny `yaml:"hosts_deny"`
	BlackholeRoute Toggle    `yaml:"blackhole_route"`
}

// HostsDeny configures the TCP-wrappers enforcer.
type HostsDeny struct {
	Enabled bool   `yaml:"enabled"`
	Path    string `yaml:"path"`
	Line    string `yaml:"line"`
}

// Toggle is a section with only an on/off switch.
type Toggle struct {
	Enabled bool `yaml:"enabled"`
}

// Compat configures PortSentry-compatible output.
type Compat struct {
	PortsentrySyslog  bool   `yaml:"portsentry_syslog"`
	PortsentryHistory string `yaml:"portsentry_history"`
	ResolveHost       bool   `yaml:"resolve_host"`
}

// PortList is a list of ports and inclusive ranges, from YAML numbers and
// "a-b" strings (or one comma-separated string, as PortSentry writes them).
type PortList []PortRange

// PortRange is an inclusive range of ports.
type PortRange struct{ Lo, Hi uint16 }

// Contains reports whether port is in the list.
func (l PortList) Contains(port uint16) bool {
	for _, r := range l {
		if port >= r.Lo && port <= r.Hi {
			return true
		}
	}
	return false
}

// Ports expands the list (ranges included), without duplicates, ascending.
func (l PortList) Ports() []uint16 {
	seen := make(map[uint16]bool)
	var out []uint16
	for _, r := range l {
		for p := int(r.Lo); p <= int(r.Hi); p++ {
			if !seen[uint16(p)] {
				seen[uint16(p)] = true
				out = append(out, uint16(p))
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ParsePortList reads "1,11,15,6660-6670" (spaces allowed).
func ParsePortList(s string) (PortList, error) {
	var out PortList
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		r, err := parsePortRange(f)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func parsePortRange(s string) (PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	if err != nil || a == 0 {
		return PortRange{}, fmt.Errorf("bad port %q (want 1-65535 or a range a-b)", s)
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16); err != nil || b == 0 || b < a {
			return PortRange{}, fmt.Errorf("bad port range %q", s)
		}
	}
	return PortRange{uint16(a), uint16(b)}, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (l *PortList) UnmarshalYAML(n *yaml.Node) error {
	switch n.Kind {
	case yaml.ScalarNode:
		v, err := ParsePortList(n.Value)
		if err != nil {
			return lineError{n.Line, err}
		}
		*l = v
		return nil
	case yaml.SequenceNode:
		var out PortList
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return lineError{item.Line, fmt.Errorf("a port list holds numbers and \"a-b\" ranges")}
			}
			r, err := parsePortRange(item.Value)
			if err != nil {
				return lineError{item.Line, err}
			}
			out = append(out, r)
		}
		*l = out
		return nil
	}
	return lineError{n.Line, fmt.Errorf("want a list of ports")}
}

// MarshalYAML implements yaml.Marshaler: numbers, and "a-b" for ranges.
func (l PortList) MarshalYAML() (any, error) {
	out := make([]any, len(l))
	for i, r := range l {
		if r.Lo == r.Hi {
			out[i] = int(r.Lo)
		} else {
			out[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return out, nil
}

// Log configures logging.
type Log struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

// Sensor configures the packet sensor.
type Sensor struct {
	Interfaces      []string `yaml:"interfaces"`
	ListenerRefresh Duration `yaml:"listener_refresh"`
	Packet          bool     `yaml:"packet"`
	NFLog           NFLog    `yaml:"nflog"`
	KernelLog       string   `yaml:"kernel_log"`
	KernelLogVerify bool     `yaml:"kernel_log_verify"`
}

// NFLog configures the netfilter log sensor.
type NFLog struct {
	Groups []uint16 `yaml:"groups"`
}

// Detect configures the detector (see detect.Config).
type Detect struct {
	Sensitivity      string    `yaml:"sensitivity"`
	Theta0           float64   `yaml:"theta0"`
	Theta1           float64   `yaml:"theta1"`
	Alpha            float64   `yaml:"alpha"`
	Beta             float64   `yaml:"beta"`
	AnswerTimeout    Duration  `yaml:"answer_timeout"`
	RetransmitWindow Duration  `yaml:"retransmit_window"`
	MaxSources       int       `yaml:"max_sources"`
	MaxAttempts      int       `yaml:"max_attempts"`
	IdleForget       Duration  `yaml:"idle_forget"`
	SlowMemory       Duration  `yaml:"slow_memory"`
	Threshold        Threshold `yaml:"threshold"`
}

// Threshold is the lfd-style rule: attempts at distinct ports in a window.
type Threshold struct {
	Attempts      int      `yaml:"attempts"`
	DistinctPorts int      `yaml:"distinct_ports"`
	Window        Duration `yaml:"window"`
	Ports         PortList `yaml:"ports"`
}

// Policy configures what findings lead to.
type Policy struct {
	DryRun           bool       `yaml:"dry_run"`
	BanOn            string     `yaml:"ban_on"`
	Allow            []Prefix   `yaml:"allow"`
	Ignore           []Prefix   `yaml:"ignore"`
	ResolvConf       string     `yaml:"resolv_conf"`
	SSHPorts         []uint16   `yaml:"ssh_ports"`
	MaxBansPerMinute int        `yaml:"max_bans_per_minute"`
	BanTime          Duration   `yaml:"ban_time"`
	Escalation       Escalation `yaml:"escalation"`
	Decoys           string     `yaml:"decoys"`
}

// Escalation configures repeat-offender bans.
type Escalation struct {
	Factor         float64  `yaml:"factor"`
	Period         Duration `yaml:"period"`
	PermanentAfter int      `yaml:"permanent_after"`
	MaxBanTime     Duration `yaml:"max_ban_time"`
}

// Firewall configures the nftables enforcer.
type Firewall struct {
	Enabled      bool        `yaml:"enabled"`
	Table        string      `yaml:"table"`
	Forward      bool        `yaml:"forward"`
	RemoveOnStop bool        `yaml:"remove_on_stop"`
	Throttle     Throttle    `yaml:"throttle"`
	Logging      string      `yaml:"logging"`
	LogGroup     uint16      `yaml:"log_group"`
	PortFlood    []PortFlood `yaml:"portflood"`
	ConnLimit    []ConnLimit `yaml:"connlimit"`
}

// PortFlood limits one source's new connections to a port (CSF PORTFLOOD).
type PortFlood struct {
	Port    uint16 `yaml:"port"`
	Proto   string `yaml:"proto"`
	Hits    int    `yaml:"hits"`
	Seconds int    `yaml:"seconds"`
}

// ConnLimit limits one source's concurrent connections to a port (CSF
// CONNLIMIT).
type ConnLimit struct {
	Port  uint16 `yaml:"port"`
	Limit int    `yaml:"limit"`
}

// Throttle configures the kernel's per-source limit on attempts at closed
// ports until a ban lands.
type Throttle struct {
	Enabled bool   `yaml:"enabled"`
	Rate    uint32 `yaml:"rate"`
	Burst   uint32 `yaml:"burst"`
}

// Store configures the state database.
type Store struct {
	Retention Duration `yaml:"retention"`
}

// Duration is a time.Duration that also accepts days ("7d").
type Duration time.Duration

// D returns the duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String renders whole days as "Nd".
func (d Duration) String() string {
	td := time.Duration(d)
	if td > 0 && td%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(td/(24*time.Hour)), 10) + "d"
	}
	return td.String()
}

// ParseDuration reads Go durations and whole or fractional days.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n * float64(24*time.Hour)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (want e.g. 90s, 15m, 1h, 7d)", s)
	}
	return d, nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseDuration(n.Value)
	if err != nil {
		return lineError{n.Line, err}
	}
	if v < 0 {
		return lineError{n.Line, fmt.Errorf("negative duration %q", n.Value)}
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Prefix is a CIDR prefix that also accepts a single address.
type Prefix netip.Prefix

// P returns the prefix, masked.
func (p Prefix) P() netip.Prefix { return netip.Prefix(p) }

// ParsePrefix reads "10.0.0.0/8", "2001:db8::/32" or a single address.
func ParsePrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad prefix %q: %v", s, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad address %q: %v", s, err)
	}
	if a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("bad address %q: zones are not allowed", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParsePrefix(n.Value)
	if err != nil {
		return lineError{n.Line, err}
	}
	*p = Prefix(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (p Prefix) MarshalYAML() (any, error) { return netip.Prefix(p).String(), nil }

// Prefixes converts a list.
func Prefixes(ps []Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(ps))
	for i, p := range ps {
		out[i] = p.P()
	}
	return out
}

// lineError is an error at a line of the file being read.
type lineError struct {
	line int
	err  error
}

func (e lineError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }

// Error is a configuration error: a file, a line (0 when the error is about
// how settings combine) and what is wrong.
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load returns the defaults overlaid with the file at path ("" for the
// defaults alone).
func Load(path string) (*Config, error) {
	if path == "" {
		return Parse(nil, "")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data, path)
}

// Parse returns the defaults overlaid with data, read from file name.
func Parse(data []byte, name string) (*Config, error) {
	var c Config
	if err := decode(defaultYAML, "built-in default", &c); err != nil {
		return nil, fmt.Errorf("the built-in default configuration is broken: %w", err)
	}
	if len(bytes.TrimSpace(data)) > 0 {
		if err := decode(data, name, &c); err != nil {
			return nil, err
		}
	}
	var root yaml.Node
	yaml.Unmarshal(data, &root)
	if errs := c.validate(name, &root); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// decode unmarshals strictly, turning yaml's errors into Errors with lines.
func decode(data []byte, name string, c *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	err := dec.Decode(c)
	if err == nil || errors.Is(err, io.EOF) {
		return nil
	}
	var le lineError
	if errors.As(err, &le) {
		return &Error{File: name, Line: le.line, Msg: le.err.Error()}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, msg := range te.Errors {
			errs = append(errs, lineMsg(name, msg))
		}
		return errors.Join(errs...)
	}
	return lineMsg(name, err.Error())
}

func lineMsg(name, msg string) error {
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		msg = m[2]
		msg = strings.Replace(msg, "not found in type", "is not a known key (in", 1)
		if strings.Contains(msg, "is not a known key (in") {
			msg = strings.TrimPrefix(msg, "field ")
			msg = strings.SplitN(msg, " is not a known key", 2)[0]
			msg = fmt.Sprintf("unknown key %q (see `scanwarden config default` for every key)", msg)
		}
		return &Error{File: name, Line: n, Msg: msg}
	}
	return &Error{File: name, Msg: strings.TrimPrefix(msg, "yaml: ")}
}

// lineOf finds the line of a dotted key path in the user's file (0 if the
// key is not there, i.e. the value is a default).
func lineOf(root *yaml.Node, path string) int {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, key := range strings.Split(path, ".") {
		if n.Kind != yaml.MappingNode {
			return 0
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == key {
				next = n.Content[i+1]
				break
			}
		}
		if next == nil {
			return 0
		}
		n = next
	}
	return n.Line
}

// validate checks values and how they combine.
func (c *Config) validate(name string, root *yaml.Node) []error {
	if name == "" {
		name = "built-in default"
	}
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &Error{File: name, Line: lineOf(root, path), Msg: path + ": " + fmt.Sprintf(format, args...)})
	}
	oneOf := func(path, v string, allowed ...string) {
		for _, a := range allowed {
			if v == a {
				return
			}
		}
		bad(path, "%q is not one of %s", v, strings.Join(allowed, ", "))
	}
	if c.StateDir == "" {
		bad("state_dir", "must not be empty")
	}
	if c.Socket == "" {
		bad("socket", "must not be empty")
	}
	oneOf("log.format", c.Log.Format, "text", "json")
	oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	for _, i := range c.Sensor.Interfaces {
		if i == "" || len(i) > 15 || strings.ContainsAny(i, "/ \t") {
			bad("sensor.interfaces", "%q is not an interface name", i)
		}
	}
	if c.Sensor.ListenerRefresh.D() < 100*time.Millisecond {
		bad("sensor.listener_refresh", "must be at least 100ms")
	}
	oneOf("detect.sensitivity", c.Detect.Sensitivity, "low", "medium", "high")
	if dc := c.DetectConfig(); dc.Validate() != nil {
		err := dc.Validate()
		for _, e := range strings.Split(err.Error(), "\n") {
			bad("detect", "%s", e)
		}
	}
	oneOf("policy.ban_on", c.Policy.BanOn, "scan", "suspicious")
	oneOf("policy.decoys", c.Policy.Decoys, "ban-responsive", "ban-all", "ban-none")
	if c.Policy.MaxBansPerMinute < 1 {
		bad("policy.max_bans_per_minute", "must be at least 1")
	}
	if c.Policy.BanTime.D() < time.Second {
		bad("policy.ban_time", "must be at least 1s")
	}
	e := c.Policy.Escalation
	if e.Factor < 1 {
		bad("policy.escalation.factor", "must be at least 1 (1: no escalation)")
	}
	if e.PermanentAfter < 0 {
		bad("policy.escalation.permanent_after", "must be 0 (never) or more")
	}
	if e.MaxBanTime.D() < c.Policy.BanTime.D() {
		bad("policy.escalation.max_ban_time", "must be at least ban_time (%s)", c.Policy.BanTime)
	}
	if e.Period.D() <= 0 {
		bad("policy.escalation.period", "must be positive")
	}
	for _, p := range c.Policy.SSHPorts {
		if p == 0 {
			bad("policy.ssh_ports", "port 0 is not a port")
		}
	}
	if c.Firewall.Table == "" || len(c.Firewall.Table) > 64 || strings.ContainsAny(c.Firewall.Table, " \t/\"") {
		bad("firewall.table", "%q is not a usable table name", c.Firewall.Table)
	}
	if t := c.Firewall.Throttle; t.Enabled && (t.Rate < 1 || t.Burst < 1) {
		bad("firewall.throttle", "rate and burst must be at least 1 (or set enabled: false)")
	}
	b := c.Bait
	if b.Trigger < 0 {
		bad("bait.trigger", "must be 0 or more")
	}
	if b.Window.D() <= 0 {
		bad("bait.window", "must be positive")
	}
	if b.Advanced.TCPBelow < 0 || b.Advanced.TCPBelow > 65536 || b.Advanced.UDPBelow < 0 || b.Advanced.UDPBelow > 65536 {
		bad("bait.advanced", "tcp_below and udp_below must be between 0 and 65536")
	}
	if len(b.Banner) > 4096 {
		bad("bait.banner", "longer than 4096 bytes")
	}
	for i, h := range c.Hooks {
		path := fmt.Sprintf("hooks[%d]", i)
		switch {
		case len(h.Command) == 0 || h.Command[0] == "":
			bad("hooks", "%s: command must name a program (a list: [program, arg, ...])", path)
		case !strings.HasPrefix(h.Command[0], "/"):
			bad("hooks", "%s: the program %q must be an absolute path (no PATH lookup, no shell)", path, h.Command[0])
		}
		for _, on := range h.On {
			if on != "ban" && on != "unban" {
				bad("hooks", "%s: on: %q is not ban or unban", path, on)
			}
		}
		if h.Order != "" && h.Order != "before" && h.Order != "after" {
			bad("hooks", "%s: order: %q is not before or after", path, h.Order)
		}
		if h.Timeout.D() < 0 || h.Timeout.D() > time.Hour {
			bad("hooks", "%s: timeout must be between 0 (default 10s) and 1h", path)
		}
	}
	if hd := c.Enforcers.HostsDeny; hd.Enabled && (hd.Path == "" || !strings.Contains(hd.Line, "$TARGET$") || strings.ContainsAny(hd.Line, "\n\r")) {
		bad("enforcers.hosts_deny", "needs a path and a one-line entry containing $TARGET$")
	}
	errs = append(errs, c.validateIssue5(name, root)...)
	errs = append(errs, c.validateOutbound(name, root)...)
	errs = append(errs, c.validateFlows(name, root)...)
	if c.Store.Retention.D() < time.Hour {
		bad("store.retention", "must be at least 1h")
	}
	return errs
}

// DetectConfig converts the detect section.
func (c *Config) DetectConfig() detect.Config {
	d := detect.DefaultConfig()
	d.Sensitivity = detect.Sensitivity(c.Detect.Sensitivity)
	d.Theta0, d.Theta1 = c.Detect.Theta0, c.Detect.Theta1
	d.Alpha, d.Beta = c.Detect.Alpha, c.Detect.Beta
	d.AnswerTimeout = c.Detect.AnswerTimeout.D()
	d.RetransmitWindow = c.Detect.RetransmitWindow.D()
	d.MaxSources = c.Detect.MaxSources
	d.MaxAttempts = c.Detect.MaxAttempts
	d.IdleForget = c.Detect.IdleForget.D()
	d.SlowMemory = c.Detect.SlowMemory.D()
	d.BaitTrigger = c.Bait.Trigger
	d.BaitWindow = c.Bait.Window.D()
	t := c.Detect.Threshold
	d.Threshold = detect.Threshold{Attempts: t.Attempts, DistinctPorts: t.DistinctPorts, Window: t.Window.D()}
	if len(t.Ports) > 0 {
		d.Threshold.Port = t.Ports.Contains
	}
	return d
}

// CountryFeed is the firewall set that holds lists.geoip.deny's networks,
// beside the feeds; no feed may take its name.
const CountryFeed = "country"

// validateIssue5 checks the firewall-log, list, feed and alert settings.
func (c *Config) validateIssue5(name string, root *yaml.Node) []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &Error{File: name, Line: lineOf(root, path), Msg: path + ": " + fmt.Sprintf(format, args...)})
	}
	switch k := c.Sensor.KernelLog; {
	case k == "", k == "kmsg", k == "journal", strings.HasPrefix(k, "/"):
	default:
		bad("sensor.kernel_log", "%q is not \"\", kmsg, journal or an absolute file path", k)
	}
	if !c.Sensor.Packet && len(c.Sensor.NFLog.Groups) == 0 && c.Sensor.KernelLog == "" && c.Firewall.Logging != "auto" {
		bad("sensor.packet", "with the packet sensor off, name a firewall log to read (sensor.nflog, sensor.kernel_log or firewall.logging: auto)")
	}
	if c.Firewall.Logging != "off" && c.Firewall.Logging != "auto" {
		bad("firewall.logging", "%q is not off or auto", c.Firewall.Logging)
	}
	if c.Firewall.Logging == "auto" && !c.Firewall.Enabled {
		bad("firewall.logging", "auto adds a rule to scanwarden's table, which needs firewall.enabled: true")
	}
	if c.Firewall.Logging == "auto" && c.Firewall.LogGroup == 0 {
		bad("firewall.log_group", "must be 1-65535 with logging: auto")
	}
	if slices.Contains(c.Sensor.NFLog.Groups, c.Firewall.LogGroup) && c.Firewall.Logging == "auto" {
		bad("sensor.nflog.groups", "group %d is firewall.log_group, scanwarden's own; a group is one or the other", c.Firewall.LogGroup)
	}
	t := c.Detect.Threshold
	if t.Attempts < 0 || t.DistinctPorts < 1 || t.Window.D() <= 0 {
		bad("detect.threshold", "attempts must be 0 (off) or more, distinct_ports at least 1, window positive")
	}
	for i, pf := range c.Firewall.PortFlood {
		if pf.Port == 0 || (pf.Proto != "tcp" && pf.Proto != "udp") || pf.Hits < 1 || pf.Seconds < 1 {
			bad("firewall.portflood", "entry %d: want {port: 1-65535, proto: tcp|udp, hits: >=1, seconds: >=1}", i)
		}
	}
	for i, cl := range c.Firewall.ConnLimit {
		if cl.Port == 0 || cl.Limit < 1 {
			bad("firewall.connlimit", "entry %d: want {port: 1-65535, limit: >=1}", i)
		}
	}
	l := c.Lists
	if len(l.AllowHosts) > 0 && l.DynDNSInterval.D() < 10*time.Second {
		bad("lists.dyndns_interval", "must be at least 10s")
	}
	for _, h := range l.AllowHosts {
		if h == "" || strings.ContainsAny(h, " /\t") {
			bad("lists.allow_hosts", "%q is not a host name", h)
		}
	}
	seen := map[string]bool{}
	for i, f := range l.Feeds {
		switch {
		case f.Name == "" || len(f.Name) > 24 || strings.Trim(f.Name, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "":
			bad("lists.feeds", "feed %d: name %q must be 1-24 of a-z, 0-9, - and _", i, f.Name)
		case seen[f.Name]:
			bad("lists.feeds", "feed %q named twice", f.Name)
		case f.Name == CountryFeed:
			bad("lists.feeds", "feed name %q is taken by lists.geoip.deny", f.Name)
		case (f.URL == "") == (f.File == ""):
			bad("lists.feeds", "feed %q: give exactly one of url and file", f.Name)
		case f.URL != "" && !strings.HasPrefix(f.URL, "https://") && !strings.HasPrefix(f.URL, "http://"):
			bad("lists.feeds", "feed %q: url must be http(s)", f.Name)
		case f.Interval.D() < time.Minute:
			bad("lists.feeds", "feed %q: interval must be at least 1m", f.Name)
		case f.Max < 0:
			bad("lists.feeds", "feed %q: max must be 0 (all) or more", f.Name)
		}
		seen[f.Name] = true
	}
	g := l.GeoIP
	if (len(g.Deny) > 0 || len(g.Allow) > 0) && g.Database == "" {
		bad("lists.geoip", "deny and allow need a database")
	}
	for _, cc := range append(append([]string{}, g.Deny...), g.Allow...) {
		if len(cc) != 2 || strings.ToUpper(cc) != cc {
			bad("lists.geoip", "%q is not an ISO 3166 country code (two capital letters)", cc)
		}
	}
	a := c.Alerts
	for _, on := range a.On {
		if on != "ban" && on != "watch" && on != "finding" {
			bad("alerts.on", "%q is not ban, watch or finding", on)
		}
	}
	if a.Digest.D() < time.Second || a.MaxPerHour < 1 {
		bad("alerts", "digest must be at least 1s and max_per_hour at least 1")
	}
	if e := a.Email; e.Enabled {
		if len(e.To) == 0 || e.Host == "" || e.Port < 1 || e.Port > 65535 {
			bad("alerts.email", "needs to, host and port")
		}
		if e.Security != "starttls" && e.Security != "tls" && e.Security != "none" {
			bad("alerts.email.security", "%q is not starttls, tls or none", e.Security)
		}
	}
	if w := a.Webhook; w.Enabled && !strings.HasPrefix(w.URL, "https://") && !strings.HasPrefix(w.URL, "http://") {
		bad("alerts.webhook.url", "must be an http(s) URL")
	}
	return errs
}

// validateFlows checks the flows section.
func (c *Config) validateFlows(name string, root *yaml.Node) []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &Error{File: name, Line: lineOf(root, path), Msg: path + ": " + fmt.Sprintf(format, args...)})
	}
	f := c.Flows
	if f.Enabled != "auto" && f.Enabled != "on" && f.Enabled != "off" {
		bad("flows.enabled", "%q is not auto, on or off", f.Enabled)
	}
	if f.Dir != "" && !filepath.IsAbs(f.Dir) {
		bad("flows.dir", "%q is not an absolute path", f.Dir)
	}
	if p := f.Partition.D(); p < time.Hour || p > 7*24*time.Hour || (24*time.Hour)%p != 0 && p%(24*time.Hour) != 0 {
		bad("flows.partition", "%v: must be between 1h and 7d and divide a day or be whole days", p)
	}
	if k := f.Keep.D(); k != 0 && k < f.Partition.D() {
		bad("flows.keep", "%v is shorter than one partition (%v); 0 keeps everything", k, f.Partition.D())
	}
	return errs
}

// validateOutbound checks the outbound section.
func (c *Config) validateOutbound(name string, root *yaml.Node) []error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &Error{File: name, Line: lineOf(root, path), Msg: path + ": " + fmt.Sprintf(format, args...)})
	}
	o := c.Outbound
	if o.EBPF != "auto" && o.EBPF != "off" {
		bad("outbound.ebpf", "%q is not auto or off", o.EBPF)
	}
	if o.Conntrack != "auto" && o.Conntrack != "on" && o.Conntrack != "off" {
		bad("outbound.conntrack", "%q is not auto, on or off", o.Conntrack)
	}
	switch o.Response {
	case "alert":
	case "throttle", "block":
		if !c.Firewall.Enabled {
			bad("outbound.response", "%s needs firewall.enabled: true (it is an nftables rule in scanwarden's table)", o.Response)
		}
		if o.For.D() < time.Second {
			bad("outbound.for", "must be at least 1s")
		}
	default:
		bad("outbound.response", "%q is not alert, throttle or block", o.Response)
	}
	if o.Restrict != "user" && o.Restrict != "cgroup" {
		bad("outbound.restrict", "%q is not user or cgroup", o.Restrict)
	}
	if o.Response == "throttle" && (o.Throttle.Rate < 1 || o.Throttle.Burst < 1) {
		bad("outbound.throttle", "rate and burst must be at least 1")
	}
	return errs
}
