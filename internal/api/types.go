package api

import (
	"time"

	"github.com/scanwarden/scanwarden/internal/decision"
	"github.com/scanwarden/scanwarden/internal/report"
)

// Status is what `scanwarden status` shows.
type Status struct {
	Version      string        `json:"version"`
	PID          int           `json:"pid"`
	Started      time.Time     `json:"started"`
	Uptime       string        `json:"uptime"`
	DryRun       bool          `json:"dry_run"`
	Firewall     string        `json:"firewall"` // "nftables table inet scanwarden", or "disabled"
	StateDir     string        `json:"state_dir"`
	Interfaces   []string      `json:"interfaces"`    // empty: all
	PacketSensor bool          `json:"packet_sensor"` // false: sensor.packet is off
	ActiveBans   int           `json:"active_bans"`
	Sources      int           `json:"sources"`     // tracked by the detector
	MaxSources   int           `json:"max_sources"` // the cap
	HeapBytes    uint64        `json:"heap_bytes"`  // Go heap in use
	Sensor       SensorStatus  `json:"sensor"`      // packets seen, dropped by the kernel
	Detector     DetectorStats `json:"detector"`    // attempts, evictions
	Decisions    DecisionStats `json:"decisions"`   // since start
	Guards       Guards        `json:"guards"`      // what is never blocked
	Listeners    int           `json:"listeners"`   // listening sockets known
	DroppedByFW  uint64        `json:"dropped_by_firewall_packets"`
	Parts        []Part        `json:"parts,omitempty"` // more sensors, feeds
	Notes        []string      `json:"notes,omitempty"` // warnings worth a look
}

// Part is how one more part of the daemon is doing: a sensor besides the
// packet sensor (NFLOG, the kernel log, bait ports) or a blocklist feed.
type Part struct {
	Name    string            `json:"name"`    // "nflog", "kernel log /var/log/kern.log", "feed spamhaus"
	Summary string            `json:"summary"` // one line for people
	Counts  map[string]uint64 `json:"counts,omitempty"`
	Problem string            `json:"problem,omitempty"` // the last failure, "" when well
}

// SensorStatus counts what the packet sensor did.
type SensorStatus struct {
	Packets     uint64 `json:"packets"`
	Probes      uint64 `json:"probes"`
	KernelDrops uint64 `json:"kernel_drops"`
	Ignored     uint64 `json:"ignored"`      // from the ignore list
	WhileBanned uint64 `json:"while_banned"` // probes from banned sources, not analysed
}

// DetectorStats is the detector's counters.
type DetectorStats struct {
	Probes      uint64 `json:"probes"`
	Attempts    uint64 `json:"attempts"`
	Retransmits uint64 `json:"retransmits"`
	Evicted     uint64 `json:"evicted"`
	Findings    uint64 `json:"findings"`
}

// DecisionStats counts decisions since start.
type DecisionStats struct {
	Bans       uint64 `json:"bans"`
	NotActed   uint64 `json:"not_acted"`
	RateCapped uint64 `json:"rate_capped"`
}

// Guards lists what is never blocked.
type Guards struct {
	Addresses   []string `json:"addresses"`
	Gateways    []string `json:"gateways"`
	Nameservers []string `json:"nameservers"`
	SSHPeers    []string `json:"ssh_peers"`
	Allow       []string `json:"allow"`
}

// Ban is one active ban, for `list`.
type Ban struct {
	Target    string    `json:"target"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires,omitzero"` // zero: permanent
	Remaining string    `json:"remaining"`        // "59m12s" or "permanent"
	Offence   int       `json:"offence,omitempty"`
	By        string    `json:"by"`
	Reason    string    `json:"reason"`
	FindingID string    `json:"finding_id,omitempty"`
	InKernel  bool      `json:"in_kernel"`
	Undo      string    `json:"undo"` // the command that lifts it
}

// Outbound is a scan this host, or a client behind its NAT, made: reported,
// never banned.
type Outbound struct {
	Src       string `json:"src"`
	Direction string `json:"direction"` // outbound or forwarded
	Verdict   string `json:"verdict"`
	ScanType  string `json:"scan_type"`
	Ports     int    `json:"ports"`
	Hosts     int    `json:"hosts"`
	Attempts  int    `json:"attempts"`
	LastSeen  string `json:"last_seen"`
	// Who: the process (outbound) or the internal client (forwarded), in
	// words.
	Who string `json:"who"`
	// Response: what outbound.response did about it.
	Response  string `json:"response"`
	FindingID string `json:"finding_id"`
}

// Explain is everything known about one address.
type Explain struct {
	Address   string               `json:"address"`
	Verdict   string               `json:"verdict"` // the live detector's current view, "" if not tracked
	Live      *report.JSONFinding  `json:"live,omitempty"`
	Findings  []report.JSONFinding `json:"findings,omitempty"` // stored, newest first
	Decisions []decision.Decision  `json:"decisions,omitempty"`
	Ban       *Ban                 `json:"ban,omitempty"` // active ban covering the address
	Allowed   string               `json:"allowed,omitempty"`
	Ignored   bool                 `json:"ignored,omitempty"`
	Guard     string               `json:"guard,omitempty"`
	Country   string               `json:"country,omitempty"` // ISO code, from lists.geoip.database
	Undo      string               `json:"undo,omitempty"`
}

// Grep is every place an address appears.
type Grep struct {
	Address   string               `json:"address"`
	Bans      []Ban                `json:"bans,omitempty"`
	Allow     []ListEntry          `json:"allow,omitempty"`
	Ignore    []ListEntry          `json:"ignore,omitempty"`
	Decisions []decision.Decision  `json:"decisions,omitempty"`
	Findings  []report.JSONFinding `json:"findings,omitempty"`
	Guard     string               `json:"guard,omitempty"`
	Country   string               `json:"country,omitempty"`
	Live      *report.JSONFinding  `json:"live,omitempty"`
}

// ListEntry is an allow- or ignore-list entry.
type ListEntry struct {
	Prefix  string    `json:"prefix"`
	Origin  string    `json:"origin"` // "config" or who added it
	Comment string    `json:"comment,omitempty"`
	Added   time.Time `json:"added,omitzero"`
}

// BanResult answers ban, unban and allow.
type BanResult struct {
	Decision decision.Decision `json:"decision"`
	Message  string            `json:"message"`
	Undo     string            `json:"undo,omitempty"`
}
