// Package decision defines Decision, what the policy stage hands to the
// enforcers and the store: ban, lift or allow an address or prefix, why,
// for how long, and which finding caused it. Decisions are plain values with
// stable IDs so they can be stored, shown and (later) shared between hosts.
//
// It knows nothing of packets, detection internals or firewalls.
package decision

import (
	"crypto/rand"
	"encoding/hex"
	"net/netip"
	"time"
)

// Kind is what a decision does.
type Kind string

// Kinds.
const (
	Ban   Kind = "ban"   // block the target until Expires (forever when zero)
	Unban Kind = "unban" // lift any ban on the target
	Allow Kind = "allow" // add the target to the allow list (and lift bans)
	Watch Kind = "watch" // a finding that was not acted upon: dry-run, guarded, rate-capped
)

// Decision is one policy decision.
type Decision struct {
	ID        string       `json:"id"`
	Kind      Kind         `json:"kind"`
	Target    netip.Prefix `json:"target"` // a single address is a /32 or /128
	Created   time.Time    `json:"created"`
	Expires   time.Time    `json:"expires,omitzero"` // zero: permanent (for bans)
	Reason    string       `json:"reason"`
	FindingID string       `json:"finding_id,omitempty"`
	Offence   int          `json:"offence,omitempty"` // 1 for a first ban, 2 for the next within the escalation period, ...
	By        string       `json:"by"`                // "detector", "cli", "import", ...
	DryRun    bool         `json:"dry_run,omitempty"`
	// NotActed says why a ban the detector asked for was not carried out
	// (Kind is then Watch): "dry-run", "allow list: 10.0.0.0/8",
	// "guard: default gateway", "rate cap: 60 bans/minute".
	NotActed string `json:"not_acted,omitempty"`
}

// Permanent reports whether a ban never expires.
func (d *Decision) Permanent() bool { return d.Kind == Ban && d.Expires.IsZero() }

// Duration is how long a ban lasts from its creation; 0 when permanent.
func (d *Decision) Duration() time.Duration {
	if d.Expires.IsZero() {
		return 0
	}
	return d.Expires.Sub(d.Created)
}

// Active reports whether a ban is in force at t.
func (d *Decision) Active(t time.Time) bool {
	return d.Kind == Ban && (d.Expires.IsZero() || t.Before(d.Expires))
}

// NewID returns a random decision ID (128 bits, hex).
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// HostPrefix turns an address into the prefix that holds only it.
func HostPrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen())
}
