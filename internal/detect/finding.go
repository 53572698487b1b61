package detect

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/scanwarden/scanwarden/internal/probe"
)

// Verdict is the detector's judgement of one source.
type Verdict uint8

// Verdicts, in increasing order of severity so they compare with <.
const (
	Benign Verdict = iota
	Suspicious
	Scan
)

func (v Verdict) String() string {
	switch v {
	case Suspicious:
		return "suspicious"
	case Scan:
		return "scan"
	}
	return "benign"
}

// ParseVerdict is the inverse of Verdict.String.
func ParseVerdict(s string) (Verdict, bool) {
	switch s {
	case "benign":
		return Benign, true
	case "suspicious":
		return Suspicious, true
	case "scan":
		return Scan, true
	}
	return Benign, false
}

// ScanType names the probes a scan used, as nmap's options do.
type ScanType string

// Scan types. ACK and Window scans send identical probes (nmap -sA and -sW
// differ only in how nmap reads the answers), so the packets can only ever
// show "ack"; TypeWindow exists for sensors that know more.
const (
	TypeNone    ScanType = "none"
	TypeSYN     ScanType = "syn"     // half-open: raw SYN, no handshake
	TypeConnect ScanType = "connect" // full handshake through the OS stack
	TypeFIN     ScanType = "fin"
	TypeNULL    ScanType = "null"
	TypeXmas    ScanType = "xmas"
	TypeACK     ScanType = "ack"
	TypeMaimon  ScanType = "maimon"
	TypeWindow  ScanType = "window"
	TypeUDP     ScanType = "udp"
	TypeMixed   ScanType = "mixed"
)

// Class says how a scan covers its targets.
type Class string

// Classes (DESIGN.md, detect).
const (
	ClassNone        Class = "none"
	ClassVertical    Class = "vertical"    // one host, many ports
	ClassHorizontal  Class = "horizontal"  // many hosts, one port (a sweep)
	ClassBlock       Class = "block"       // many hosts, many ports
	ClassDistributed Class = "distributed" // several sources sharing one scan of a target
)

// Finding is the detector's account of one source: the verdict, the
// evidence behind it and one sentence a human can act on.
type Finding struct {
	ID        string // stable for the life of the source's record: src and first-seen time
	Src       netip.Addr
	Direction probe.Direction
	Verdict   Verdict
	ScanType  ScanType
	Class     Class
	Tool      string // "nmap", "masscan", "zmap", "hping3", or "" when the packets do not say

	Ports       int  // distinct destination ports contacted
	Hosts       int  // distinct destination hosts contacted
	Saturated   bool // the source outgrew exact tracking; Ports/Hosts are lower bounds
	Packets     int  // packets from the source the detector considered
	Attempts    int  // connection attempts, retransmissions folded in
	Retransmits int  // packets that were retransmissions of an earlier attempt
	Failed      int  // first contacts that failed (closed, dropped, unanswered)
	Open        int  // first contacts answered by a listener
	Stealth     int  // probes no real TCP stack sends (FIN, NULL, Xmas without a connection)
	// Responsive: the source reacted to our answers (reset a half-open
	// connection or completed a handshake), so something lives at the
	// address. A spoofed decoy that does not exist never does.
	Responsive bool

	FirstSeen         time.Time
	LastSeen          time.Time
	DetectedAt        time.Time // when the verdict first reached scan (zero if never)
	DetectedAtAttempt int       // the attempt at which it did (0 if never)

	Reason   string
	Evidence Evidence

	// Actor says who on this host made an outbound scan. The daemon fills
	// it in (internal/attribute): the detector knows packets, not
	// processes. nil when not looked up.
	Actor *Actor

	// Client, for a forwarded finding on a router, is the machine behind
	// it as this router knows it (the daemon fills it in). nil when not
	// looked up.
	Client *Client
}

// Client is the source of a forwarded scan as the router it passes
// through knows it.
type Client struct {
	IP  netip.Addr
	MAC string // from the neighbour table; "" when the address is not on a link of ours
	// NAT: this host translates the client's connections (masquerade or
	// source NAT), so it is an internal client, not a stranger passing
	// through.
	NAT bool
}

// Sentence says in words who the client is.
func (c *Client) Sentence() string {
	if c == nil {
		return ""
	}
	s := "Forwarded for " + c.IP.String()
	if c.MAC != "" {
		s += " (MAC " + c.MAC + ")"
	}
	if c.NAT {
		return s + ", an internal client behind this host's NAT."
	}
	return s + "."
}

// Actor is who made an outbound scan: the owners of its sockets, or, when
// no socket of it was found (raw-socket scanners bypass TCP sockets), the
// processes that could have.
type Actor struct {
	Exact     bool      // Processes own the scan's sockets; false: candidates, an inference
	How       string    // how they were found, in words
	Processes []Process // owners, or candidates
}

// Process is a local process.
type Process struct {
	PID       int
	User      string
	UID       uint32
	Command   string
	Exe       string
	Cgroup    string
	Unit      string // systemd unit
	Container string // container ID
}

// Sentence says who in words, for the finding's reason.
func (a *Actor) Sentence() string {
	if a == nil {
		return ""
	}
	if len(a.Processes) == 0 {
		return "No process could be named (" + a.How + ")."
	}
	var b strings.Builder
	if a.Exact {
		b.WriteString("Made by ")
	} else {
		b.WriteString("No socket of the scan was open when it was found; likely made by one of the processes holding raw or packet sockets: ")
	}
	for i, p := range a.Processes {
		if i == 3 {
			fmt.Fprintf(&b, " and %d more", len(a.Processes)-3)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.describe())
	}
	b.WriteString(".")
	return b.String()
}

func (p Process) describe() string {
	cmd := p.Command
	if cmd == "" {
		cmd = "a process"
	}
	var parts []string
	if p.PID > 0 {
		parts = append(parts, fmt.Sprintf("PID %d", p.PID))
	}
	if p.User != "" {
		parts = append(parts, "user "+p.User)
	}
	if p.Container != "" {
		parts = append(parts, "container "+shortID(p.Container))
	} else if p.Unit != "" {
		parts = append(parts, "unit "+p.Unit)
	}
	if len(parts) == 0 {
		return cmd
	}
	return cmd + " (" + strings.Join(parts, ", ") + ")"
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Evidence is the detail behind a finding, for `explain` and the store.
type Evidence struct {
	Targets      []netip.Addr      // first few destination hosts
	OpenPorts    []PortProto       // first few ports answered open
	FailedPorts  []PortProto       // first few ports that failed
	FailedHosts  []netip.Addr      // the last few hosts a first contact to failed, newest first
	ProbeTypes   map[ScanType]int  // first contacts by probe type
	LogLR        float64           // log likelihood ratio of the sequential test
	Score        int               // weighted failed first contacts (privileged ports weigh more)
	Decoys       []netip.Addr      // other sources sending the same probes in lockstep
	Group        []netip.Addr      // other members of a distributed scan
	Fingerprints map[string]int    // tool fingerprints seen, by probe
	Outcomes     map[string]int    // first contacts by outcome: open, closed, dropped, unanswered
	Fragments    int               // later IP fragments (not parsed)
	BaitHits     int               // contacts with bait ports (attempts)
	BaitPorts    []PortProto       // the first few bait ports touched
	BaitModes    []string          // "connect", "advanced"
	Extra        map[string]string // sensor- or policy-specific notes
}

// PortProto is a destination port with its protocol.
type PortProto struct {
	Port  uint16
	Proto probe.Proto
}

// MarshalText renders the verdict's name (in logs and JSON).
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }
