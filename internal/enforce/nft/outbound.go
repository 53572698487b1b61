package nft

import (
	"encoding/binary"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Outbound restrictions answer a scan that starts here: this host, or a
// client a router forwards for, scanning others. The kernel restricts the
// source's new connections, by itself and until a timeout, like a ban:
//
//   - a local user (the socket's owner, meta skuid),
//   - a cgroup v2 (a systemd unit, a container: socket cgroupv2), or
//   - a forwarded client address (ip saddr in the forward hook),
//
// each either blocked (its new connections are dropped) or throttled (to
// Outbound.Rate new connections a second after a burst of Outbound.Burst,
// per restricted source, the rest dropped). Only new flows are touched
// (ct state new, and TCP segments conntrack calls invalid, which is what
// FIN, NULL, Xmas and stray ACK probes are): connections established
// before the restriction keep working. With Config.Outbound.Enable, Setup
// adds:
//
//	set out_uid_block      { type uid; flags timeout; }
//	set out_uid_throttle   { type uid; flags timeout; }
//	set out_uid_meter      { type uid; flags dynamic,timeout; timeout 10s; }
//	set out_cgroup_block   { type cgroupsv2; flags timeout; }    (and _throttle, _meter)
//	set out_client4_block  { type ipv4_addr; flags timeout; }    (and _throttle, _meter)
//	set out_client6_block  { type ipv6_addr; flags timeout; }    (and _throttle, _meter)
//	chain outbound_output {
//		type filter hook output priority filter - 5; policy accept;
//		ct state new jump outbound_local
//		meta l4proto tcp ct state invalid jump outbound_local
//	}
//	chain outbound_forward {
//		type filter hook forward priority filter - 5; policy accept;
//		ct state new jump outbound_routed
//		meta l4proto tcp ct state invalid jump outbound_routed
//	}
//	chain outbound_local {
//		meta skuid @out_uid_block counter drop
//		meta skuid @out_uid_throttle update @out_uid_meter { meta skuid limit rate over 10/second burst 20 packets } counter drop
//		socket cgroupv2 level 1 @out_cgroup_block counter drop          (levels 1 to CgroupLevels)
//		socket cgroupv2 level 1 @out_cgroup_throttle update @out_cgroup_meter { ... } counter drop
//	}
//	chain outbound_routed {
//		ip saddr @out_client4_block counter drop
//		ip saddr @out_client4_throttle update @out_client4_meter { ip saddr limit rate over 10/second burst 20 packets } counter drop
//		(the same for ip6 saddr)
//	}
//
// Why priority -5: ct state needs conntrack, which runs at -200 on both
// hooks; -5 is still before the host's own filter chains (0), as for the
// input chain (extras.go). The throttle's output chain (priority raw) runs
// before conntrack and cannot be used.
//
// Why one cgroup set for all levels: `socket cgroupv2 level L` loads the id
// of the socket's cgroup's ancestor at depth L, and cgroup ids are unique
// in the whole hierarchy (64-bit, never reused), so a rule per level
// looking up the same set matches a restricted cgroup and everything below
// it, whatever its depth, without the caller saying the depth. A socket
// whose cgroup is shallower than L does not match that rule.

// Outbound configures outbound restrictions.
type Outbound struct {
	// Enable creates the sets and chains; without it RestrictOutbound
	// returns ErrOutboundOff.
	Enable bool
	// Rate and Burst bound a throttled source: new connections a second,
	// and how many may come at once. Defaults 10 and 20 (DefaultOutbound*).
	Rate  uint32
	Burst uint32
	// CgroupLevels is the deepest cgroup level matched (default 8, at most
	// 255, the kernel's limit); each level is two rules, evaluated only for
	// new flows.
	CgroupLevels uint32
	// CgroupRoot is where the cgroup v2 hierarchy is mounted; empty: read
	// from /proc/self/mountinfo (/sys/fs/cgroup on pure v2 systems,
	// /sys/fs/cgroup/unified on hybrid ones).
	CgroupRoot string
}

// Defaults for Outbound. A throttled source is one the detector has
// already seen scanning, so the numbers bound a scanner, not a user: at
// 10 new connections a second a 1 000-port nmap scan of one host takes
// 100 s instead of well under one (nmap -T4 sends hundreds of probes a
// second), while a program that opens a handful of connections at a time
// (a package manager, a browser on one site) stays within the burst.
// Eight cgroup levels cover systemd user services
// (user.slice/user-1000.slice/user@1000.service/app.slice/x.service is
// level 5) and Kubernetes containers (level 4) with room to spare.
const (
	DefaultOutboundRate   = 10
	DefaultOutboundBurst  = 20
	DefaultCgroupLevels   = 8
	maxCgroupLevel        = 255 // NFTA_SOCKET_LEVEL: the kernel rejects more
	outboundPriority      = -5
	outOutputChain        = "outbound_output"
	outForwardChain       = "outbound_forward"
	outLocalChain         = "outbound_local"
	outRoutedChain        = "outbound_routed"
	commentOutNew         = "scanwarden: outbound: new flows: is their source restricted?"
	commentOutInvalid     = "scanwarden: outbound: TCP probes conntrack calls invalid (FIN, NULL, Xmas, ACK)"
	commentOutBlockPrefix = "scanwarden: outbound: block new connections of restricted "
	commentOutThrotPrefix = "scanwarden: outbound: throttle new connections of restricted "
)

// OutboundMode is how a source is restricted.
type OutboundMode int

const (
	// OutboundThrottle limits the source's new connections to
	// Outbound.Rate a second (burst Outbound.Burst).
	OutboundThrottle OutboundMode = iota + 1
	// OutboundBlock drops all of the source's new connections.
	OutboundBlock
)

func (m OutboundMode) String() string {
	switch m {
	case OutboundThrottle:
		return "throttle"
	case OutboundBlock:
		return "block"
	}
	return fmt.Sprintf("OutboundMode(%d)", int(m))
}

var outModes = [2]OutboundMode{OutboundBlock, OutboundThrottle}

// outKind is one kind of restricted source.
type outKind int

const (
	kindUID outKind = iota
	kindCgroup
	kindClient4
	kindClient6
)

// Uids and cgroup ids are keys in host byte order (as meta skuid and
// socket cgroupv2 load them); the set says so in its user data, or nft
// would print them byte-swapped (the kernel does not care).
var outKinds = [...]struct {
	name  string
	key   nftables.SetDatatype
	order binaryutil.ByteOrder
	whose string // for rule comments
}{
	kindUID:     {"uid", nftables.TypeUID, binaryutil.NativeEndian, "users"},
	kindCgroup:  {"cgroup", nftables.TypeCGroupV2, binaryutil.NativeEndian, "cgroups"},
	kindClient4: {"client4", nftables.TypeIPAddr, nil, "forwarded clients"},
	kindClient6: {"client6", nftables.TypeIP6Addr, nil, "forwarded clients"},
}

func outSetName(k outKind, m OutboundMode) string {
	return "out_" + outKinds[k].name + "_" + m.String()
}

func outMeterName(k outKind) string { return "out_" + outKinds[k].name + "_meter" }

func (e *Enforcer) outboundOn() bool { return e.cfg.Outbound.Enable }

// outSet is the set holding sources of kind k restricted in mode m, as the
// element calls need it.
func (e *Enforcer) outSet(k outKind, m OutboundMode) *nftables.Set {
	return &nftables.Set{Table: e.table, Name: outSetName(k, m), KeyType: outKinds[k].key, KeyByteOrder: outKinds[k].order,
		HasTimeout: true}
}

// outboundSets returns the restriction and meter sets.
func (e *Enforcer) outboundSets() []*nftables.Set {
	if !e.outboundOn() {
		return nil
	}
	var out []*nftables.Set
	for k := range outKinds {
		for _, m := range outModes {
			out = append(out, e.outSet(outKind(k), m))
		}
		out = append(out, &nftables.Set{Table: e.table, Name: outMeterName(outKind(k)), KeyType: outKinds[k].key,
			KeyByteOrder: outKinds[k].order, Dynamic: true, HasTimeout: true, Timeout: throttleTimeout})
	}
	return out
}

// outboundChains returns the two hooked chains, then the two they jump to.
func (e *Enforcer) outboundChains() []*nftables.Chain {
	if !e.outboundOn() {
		return nil
	}
	accept := nftables.ChainPolicyAccept
	prio := nftables.ChainPriority(outboundPriority)
	return []*nftables.Chain{
		{Name: outOutputChain, Table: e.table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookOutput, Priority: &prio, Policy: &accept},
		{Name: outForwardChain, Table: e.table, Type: nftables.ChainTypeFilter,
			Hooknum: nftables.ChainHookForward, Priority: &prio, Policy: &accept},
		{Name: outLocalChain, Table: e.table},
		{Name: outRoutedChain, Table: e.table},
	}
}

func isOutboundChain(name string) bool {
	switch name {
	case outOutputChain, outForwardChain, outLocalChain, outRoutedChain:
		return true
	}
	return false
}

// outboundRules returns the rules of one of the outbound chains.
func (e *Enforcer) outboundRules(chain *nftables.Chain, sets setMap) []*nftables.Rule {
	rule := func(comment string, x ...expr.Any) *nftables.Rule {
		return &nftables.Rule{Table: chain.Table, Chain: chain, Exprs: x,
			UserData: userdata.AppendString(nil, userdata.TypeComment, comment)}
	}
	switch chain.Name {
	case outOutputChain, outForwardChain:
		target := outLocalChain
		if chain.Name == outForwardChain {
			target = outRoutedChain
		}
		jump := &expr.Verdict{Kind: expr.VerdictJump, Chain: target}
		invalid := []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryNative(expr.CtStateBitINVALID), Xor: binaryNative(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryNative(0)},
			jump,
		}
		return []*nftables.Rule{rule(commentOutNew, append(ctNew(), jump)...), rule(commentOutInvalid, invalid...)}
	case outLocalChain:
		out := e.restrictRules(rule, kindUID, []expr.Any{&expr.Meta{Key: expr.MetaKeySKUID, Register: 1}}, sets)
		for level := uint32(1); level <= e.cfg.Outbound.CgroupLevels; level++ {
			load := []expr.Any{&expr.Socket{Key: expr.SocketKeyCgroupv2, Level: level, Register: 1}}
			out = append(out, e.restrictRules(rule, kindCgroup, load, sets)...)
		}
		return out
	case outRoutedChain:
		var out []*nftables.Rule
		for i, f := range limitFamilies("") {
			out = append(out, e.restrictRules(rule, kindClient4+outKind(i), f.source(), sets)...)
		}
		return out
	}
	return nil
}

// restrictRules are the block and the throttle rule for sources of kind k,
// whose key load puts in register 1.
func (e *Enforcer) restrictRules(rule func(string, ...expr.Any) *nftables.Rule, k outKind, load []expr.Any, sets setMap) []*nftables.Rule {
	lookup := func(m OutboundMode) []expr.Any {
		name := outSetName(k, m)
		return append(load[:len(load):len(load)], &expr.Lookup{SourceRegister: 1, SetName: name, SetID: sets.id(name)})
	}
	meter := outMeterName(k)
	throttle := append(lookup(OutboundThrottle),
		&expr.Dynset{SrcRegKey: 1, SetName: meter, SetID: sets.id(meter), Operation: unix.NFT_DYNSET_OP_UPDATE,
			Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: uint64(e.cfg.Outbound.Rate), Unit: expr.LimitTimeSecond,
				Burst: e.cfg.Outbound.Burst, Over: true}}},
		&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
	return []*nftables.Rule{
		rule(commentOutBlockPrefix+outKinds[k].whose, append(lookup(OutboundBlock), &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})...),
		rule(commentOutThrotPrefix+outKinds[k].whose, throttle...),
	}
}

// outboundDefaults fills in the defaults and checks the limits.
func outboundDefaults(o *Outbound) error {
	if !o.Enable {
		return nil
	}
	if o.Rate == 0 {
		o.Rate = DefaultOutboundRate
	}
	if o.Burst == 0 {
		o.Burst = DefaultOutboundBurst
	}
	if o.CgroupLevels == 0 {
		o.CgroupLevels = DefaultCgroupLevels
	}
	if o.CgroupLevels > maxCgroupLevel {
		return fmt.Errorf("outbound cgroup levels %d: the kernel matches at most %d", o.CgroupLevels, maxCgroupLevel)
	}
	return nil
}

// uidKey and cgroupKey encode keys as meta skuid and socket cgroupv2 load
// them: in host byte order.
func uidKey(uid uint32) []byte   { return binary.NativeEndian.AppendUint32(nil, uid) }
func cgroupKey(id uint64) []byte { return binary.NativeEndian.AppendUint64(nil, id) }
func keyUID(b []byte) uint32     { return binary.NativeEndian.Uint32(b) }
func keyCgroup(b []byte) uint64  { return binary.NativeEndian.Uint64(b) }
